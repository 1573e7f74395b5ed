"""The records of format version 1 (read only; see :mod:`.format` for the layout)."""

from __future__ import annotations

import struct
import zlib
from typing import Final

from marketd.recorder.format import KINDS, Entry

_RECORD: Final = struct.Struct("<II")  # crc32, length
_BODY: Final = struct.Struct("<QBHH")  # received_ns, kind, len(connection), len(stream)
_crc32 = zlib.crc32


def decode_records(raw: bytes) -> tuple[list[Entry], bool]:
    """The entries of a version 1 block's raw bytes, and whether it ended with a bad
    record (the entries after a bad record are not decoded: a bad length leaves no place
    to resume)."""
    out: list[Entry] = []
    end = len(raw)
    pos = 0
    with memoryview(raw) as view:
        while pos < end:
            if end - pos < _RECORD.size + _BODY.size:
                return out, True
            crc, length = _RECORD.unpack_from(raw, pos)
            stop = pos + _RECORD.size + length
            if length < _BODY.size or stop > end or _crc32(view[pos + 4 : stop]) != crc:
                return out, True
            received_ns, code, n_connection, n_stream = _BODY.unpack_from(raw, pos + 8)
            at = pos + _RECORD.size + _BODY.size
            payload_at = at + n_connection + n_stream
            if code >= len(KINDS) or payload_at > stop:
                return out, True
            try:
                connection = str(raw[at : at + n_connection], "utf-8")
                stream = str(raw[at + n_connection : payload_at], "utf-8")
            except UnicodeDecodeError:
                return out, True
            out.append(Entry(received_ns, KINDS[code], connection, stream, raw[payload_at:stop]))
            pos = stop
    return out, False
