"""WebSocket text frames built by the sender itself (RFC 6455 §5.2): the gateway's fan-out
writer (:mod:`marketd.gateway.fanout`) and the fake exchange's connections
(:mod:`marketd.fakex.wsconn`) frame their messages here and write the bytes straight to
the socket.

A server's frames are not masked, so a text frame is a 2-, 4- or 10-byte header and the
UTF-8 text: built once per message, the same bytes can go to every client. The frames
carry no reserved bit, so they are valid whatever extension the connection negotiated
(with permessage-deflate, RFC 7692 §6: RSV1 clear is a message sent uncompressed).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

FIN_TEXT: Final = 0x81
"""First header byte of an unfragmented text frame: FIN, no reserved bit, opcode 1."""

_SHORT_HEADERS: Final = [bytes((FIN_TEXT, n)) for n in range(126)]
_MEDIUM_HEADER: Final = struct.Struct(">BBH")  # 126, then a 16-bit length
_LONG_HEADER: Final = struct.Struct(">BBQ")  # 127, then a 64-bit length


def text_frame_header(size: int) -> bytes:
    """The header of an unmasked, unfragmented text frame of ``size`` payload bytes."""
    if size < 0:
        raise ValueError("a frame's payload size is not negative")
    if size < 126:
        return _SHORT_HEADERS[size]
    if size < 65_536:
        return _MEDIUM_HEADER.pack(FIN_TEXT, 126, size)
    return _LONG_HEADER.pack(FIN_TEXT, 127, size)


def text_frames(texts: Iterable[str]) -> bytes:
    """``texts`` as consecutive unmasked, unfragmented WebSocket text frames, one each."""
    # The headers inline rather than through text_frame_header: the fake exchange frames
    # thousands of messages a second with this.
    short, medium, long = _SHORT_HEADERS, _MEDIUM_HEADER.pack, _LONG_HEADER.pack
    parts: list[bytes] = []
    add = parts.append
    for text in texts:
        data = text.encode()
        size = len(data)
        if size < 126:
            add(short[size])
        elif size < 65_536:
            add(medium(FIN_TEXT, 126, size))
        else:
            add(long(FIN_TEXT, 127, size))
        add(data)
    return b"".join(parts)
