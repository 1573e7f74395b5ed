"""The on-disk format of recordings (raw frames as received, for replay and backtests):
entries, records, blocks, file headers, segment names and the layout's constants. Pure
functions over bytes, no file I/O; the writer (:mod:`.writer`) and the reader
(:mod:`.reader`) build on it.

An :class:`Entry` is one thing marketd received: a WebSocket frame (``kind`` "ws",
``stream`` the stream name, ``connection`` the connection that carried it, e.g.
"usdm-0") or a REST response (``kind`` "rest", ``stream`` the request path and query,
e.g. "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"), with ``received_ns`` and the payload
bytes exactly as received.

A recording is a directory holding::

    <first received_ns, 20 digits>-<seq, 6+ digits>.seg.zst   a segment: entries
    <segment name>.idx.json                                   its index, once finished
    lock                                                      flock: one writer at a time

The first number is the ``received_ns`` of the segment's first entry; ``seq`` counts the
directory's segments (1 + the highest present when the writer opens), so names sort by
time and never collide. Segments are read in (first received_ns, seq) order.

Segment layout (integers little-endian, crc32 is zlib's). Every part is a zstd frame, the
headers being zstd *skippable* frames, so ``zstd -dc <segment>`` prints the records::

    file header (24 B):  u32 0x184D2A50 | u32 16 | b"MKDRECSG" | u16 format version
                         | u16 0 | u32 crc32(the 12 B before)
    block*:
      header (24 B):     u32 0x184D2A51 | u32 16 | u32 frame length | u32 raw length
                         | u32 crc32(frame) | u32 crc32(the 12 B before)
      frame:             one zstd frame (content size set) of raw length bytes: record*
    record:              u32 crc32(length and body) | u32 length | body (length B)
    body:                u64 received_ns | u8 kind (0 "ws", 1 "rest") | u16 len(connection)
                         | u16 len(stream) | connection utf-8 | stream utf-8 | payload

A block holds the entries appended between two flushes. Nothing is fsynced per block: a
crash loses the unflushed entries and may tear the last block (or leave zeros), but every
block before it stays readable.

Index (JSON, ``version`` 1), written atomically when :class:`~.writer.SegmentWriter`
finishes a segment: ``first_ns`` / ``last_ns`` the lowest / highest ``received_ns``
(``null`` if none), ``entries``, ``bytes`` (the segment file's size) and ``streams``
(entries per ``"<kind>:<stream>"``). An index whose ``bytes`` differs from the file's
size, or that does not parse, is ignored. A segment without a valid index (the one being
written, or one a crash left) is scanned instead; :func:`~.reader.index_of` builds its
index by scanning.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import Final

import msgspec
import zstandard

MiB: Final = 1024 * 1024
GiB: Final = 1024 * MiB

KINDS: Final = ("ws", "rest")  # the kind byte is the index in this tuple
_KIND_CODE: Final = {kind: code for code, kind in enumerate(KINDS)}

FORMAT_VERSION: Final = 1
INDEX_VERSION: Final = 1
SEGMENT_MAGIC: Final = b"MKDRECSG"
SEGMENT_SUFFIX: Final = ".seg.zst"
INDEX_SUFFIX: Final = ".idx.json"
LOCK_FILE: Final = "lock"
_FILE_FRAME: Final = 0x184D2A50  # zstd skippable-frame magics (0x184D2A5?)
_BLOCK_FRAME: Final = 0x184D2A51
_BLOCK_HEADER = struct.Struct("<IIIIII")
HEADER_SIZE: Final = 24  # both headers
_BLOCK_PREFIX: Final = struct.pack("<II", _BLOCK_FRAME, 16)
_RECORD = struct.Struct("<II")  # crc32, length
_LENGTH = struct.Struct("<I")
_BODY = struct.Struct("<QBHH")  # received_ns, kind, len(connection), len(stream)
MAX_RECORD: Final = 64 * MiB  # a record's body
# A block is flushed once it holds max_block_bytes (at most MAX_RECORD), so its raw size
# stays below two records' worth; anything larger is damage.
MAX_BLOCK_RAW: Final = 2 * (MAX_RECORD + _RECORD.size)
_MAX_FRAME: Final = MAX_BLOCK_RAW + MAX_BLOCK_RAW // 128 + MiB  # above zstd's bound
_NAME = re.compile(r"([0-9]{20})-([0-9]{6,})" + re.escape(SEGMENT_SUFFIX))
_crc32 = zlib.crc32


class Entry(msgspec.Struct, frozen=True, gc=False):
    """One raw frame or REST response as received (see the module documentation)."""

    received_ns: int
    kind: str  # "ws" or "rest"
    connection: str
    stream: str  # the stream name ("ws"), the request path and query ("rest")
    payload: bytes


def segment_name(first_ns: int, seq: int) -> str:
    return f"{first_ns:020d}-{seq:06d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    """``(first received_ns, seq)`` of a segment's file name, ``None`` for other files."""
    match = _NAME.fullmatch(name)
    return None if match is None else (int(match[1]), int(match[2]))


def file_header() -> bytes:
    head = struct.pack("<II8sHH", _FILE_FRAME, 16, SEGMENT_MAGIC, FORMAT_VERSION, 0)
    return head + struct.pack("<I", _crc32(head[8:]))


def file_header_ok(data: bytes) -> bool:
    # Every field of the header is fixed by the format version: compare the bytes.
    return data[:HEADER_SIZE] == _HEADER_BYTES


_HEADER_BYTES: Final = file_header()


def encode_record(entry: Entry) -> bytes:
    """One record (see the layout); ``ValueError`` for an entry the format cannot hold."""
    code = _KIND_CODE.get(entry.kind)
    if code is None:
        raise ValueError(f"entry kind {entry.kind!r} is none of {KINDS}")
    if not 0 <= entry.received_ns < 1 << 64:
        raise ValueError(f"received_ns {entry.received_ns} is outside 0 .. 2**64-1")
    connection = entry.connection.encode()
    stream = entry.stream.encode()
    if len(connection) > 0xFFFF or len(stream) > 0xFFFF:
        raise ValueError("an entry's connection and stream take at most 65535 bytes each")
    length = _BODY.size + len(connection) + len(stream) + len(entry.payload)
    if length > MAX_RECORD:
        raise ValueError(f"an entry of {length} B exceeds the recorder's {MAX_RECORD} B")
    head = struct.pack("<I", length) + _BODY.pack(
        entry.received_ns, code, len(connection), len(stream)
    )
    crc = _crc32(entry.payload, _crc32(stream, _crc32(connection, _crc32(head))))
    return b"".join((struct.pack("<I", crc), head, connection, stream, entry.payload))


def encode_frames(
    connection: str, frames: Sequence[str], received_ns: Sequence[int], streams: Sequence[str]
) -> Iterator[tuple[int, str, bytes]]:
    """``(received_ns, stream, record)`` of WebSocket frames of one connection: the bytes
    :func:`encode_record` makes for each, with the connection encoded once and one CRC
    call per record (the recorder's hot path)."""
    conn = connection.encode()
    n_conn = len(conn)
    if n_conn > 0xFFFF:
        raise ValueError("an entry's connection takes at most 65535 bytes")
    fixed = _BODY.size + n_conn
    pack_length, pack_body, crc32 = _LENGTH.pack, _BODY.pack, _crc32
    for frame, ns, name in zip(frames, received_ns, streams, strict=True):
        stream = name.encode()
        payload = frame.encode()
        length = fixed + len(stream) + len(payload)
        if len(stream) > 0xFFFF or length > MAX_RECORD or not 0 <= ns < 1 << 64:
            yield ns, name, encode_record(Entry(ns, "ws", connection, name, payload))  # says why
            continue
        body = b"".join((pack_length(length), pack_body(ns, 0, n_conn, len(stream)), conn,
                         stream, payload))  # fmt: skip
        yield ns, name, pack_length(crc32(body)) + body


def decode_records(raw: bytes) -> tuple[list[Entry], bool]:
    """The entries of a block's raw bytes, and whether it ended with a bad record (the
    entries after a bad record are not decoded: a bad length leaves no place to resume)."""
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


def encode_block(raw: bytes | bytearray, compressor: zstandard.ZstdCompressor) -> bytes:
    """A block header and the zstd frame of ``raw`` (records)."""
    frame = compressor.compress(raw)
    head = struct.pack("<III", len(frame), len(raw), _crc32(frame))
    return _BLOCK_PREFIX + head + struct.pack("<I", _crc32(head)) + frame


def parse_block_header(data: bytes) -> tuple[int, int, int] | None:
    """``(frame length, raw length, frame crc32)`` of a valid block header, else ``None``."""
    if len(data) < HEADER_SIZE or data[:8] != _BLOCK_PREFIX:
        return None
    _, _, frame_length, raw_length, frame_crc, crc = _BLOCK_HEADER.unpack_from(data)
    if crc != _crc32(data[8:20]) or raw_length > MAX_BLOCK_RAW or frame_length > _MAX_FRAME:
        return None
    return frame_length, raw_length, frame_crc


def resync(data: bytes) -> int | None:
    """The offset of the first valid block header in ``data``."""
    at = -1
    while (at := data.find(_BLOCK_PREFIX, at + 1)) >= 0:
        if parse_block_header(data[at : at + HEADER_SIZE]) is not None:
            return at
    return None
