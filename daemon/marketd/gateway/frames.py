"""WebSocket frames the gateway builds itself (RFC 6455 §5.2), for :mod:`marketd.gateway.fanout`.

A server's frames are not masked, so a text frame is a 2-, 4- or 10-byte header and the
UTF-8 text: built once per message, the same bytes can go to every client. The frames
carry no reserved bit, so they are valid whatever extension the connection negotiated
(with permessage-deflate, RFC 7692 §6: RSV1 clear is a message sent uncompressed).
The fake exchange frames its market data the same way
(:func:`marketd.fakex.wsconn.text_frames`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

FIN_TEXT: Final = 0x81
"""First header byte of an unfragmented text frame: FIN, no reserved bit, opcode 1."""

_SHORT_HEADERS: Final = [bytes((FIN_TEXT, n)) for n in range(126)]


def text_frame_header(size: int) -> bytes:
    """The header of an unmasked, unfragmented text frame of ``size`` payload bytes."""
    if size < 0:
        raise ValueError("a frame's payload size is not negative")
    if size < 126:
        return _SHORT_HEADERS[size]
    if size < 65_536:
        return bytes((FIN_TEXT, 126)) + size.to_bytes(2, "big")
    return bytes((FIN_TEXT, 127)) + size.to_bytes(8, "big")


def text_frames(texts: Iterable[str]) -> bytes:
    """``texts`` as consecutive unmasked, unfragmented WebSocket text frames, one each."""
    parts: list[bytes] = []
    for text in texts:
        data = text.encode()
        parts.append(text_frame_header(len(data)))
        parts.append(data)
    return b"".join(parts)
