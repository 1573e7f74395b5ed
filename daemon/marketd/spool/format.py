"""The spool's on-disk format: pure functions over bytes, no file I/O.

A segment file is named ``<first seq, 20 digits>.seg`` and holds::

    segment header (16 B): b"MKDSPOOL" | u16 format version | u16 0 | u32 crc32(bytes 0..12)
    entry*:                magic (4 B) | u32 crc32 | u32 length | u64 seq | payload (length B)

Integers are little-endian. An entry's crc32 (zlib) covers ``length``, ``seq`` and the
payload, so a torn, zero-filled or flipped entry fails the check. ``seq`` is the record's
spool sequence number: dense, increasing across segments, never reused in a directory.
The payload is a msgpack array of the :class:`~marketd.data.records.Record` fields in
declaration order (``RECORD_FIELDS``; the market as its string value).

After a bad entry the scanner resynchronises on the next offset holding the entry magic
and a valid checksum; what lies between is counted as corrupted.
"""

from __future__ import annotations

import enum
import struct
import zlib
from typing import Final

import msgspec

from marketd.data.records import Record

SEGMENT_MAGIC: Final = b"MKDSPOOL"
FORMAT_VERSION: Final = 1
_SEGMENT = struct.Struct("<8sHHI")
SEGMENT_HEADER_SIZE: Final = _SEGMENT.size  # 16
SEGMENT_SUFFIX: Final = ".seg"

ENTRY_MAGIC: Final = b"\xd3MS\x01"
_ENTRY = struct.Struct("<4sIIQ")
ENTRY_HEADER_SIZE: Final = _ENTRY.size  # 20
MAX_PAYLOAD: Final = 64 * 1024 * 1024
_LENGTH_SEQ = struct.Struct("<IQ")
_MAGIC_CRC = struct.Struct("<4sI")

RECORD_FIELDS: Final = (
    "topic", "key", "value", "headers", "received_ns", "market", "kind", "symbol", "seq",
)  # fmt: skip
if Record.__struct_fields__ != RECORD_FIELDS:  # pragma: no cover - a guard for editors
    raise ImportError(
        "marketd.data.records.Record changed: bump spool FORMAT_VERSION and update RECORD_FIELDS"
    )

_encoder = msgspec.msgpack.Encoder()
_encode = _encoder.encode
_decoder = msgspec.msgpack.Decoder(Record)  # array_like: the same bytes as a field tuple
_crc32 = zlib.crc32


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    stem, dot, suffix = name.partition(".")
    # isdigit() alone accepts non-ASCII digits: int() rejects some (U+00B2, raising), and
    # parses others (U+0667) to a number whose segment_name() is another file.
    if dot + suffix != SEGMENT_SUFFIX or len(stem) != 20 or not (stem.isascii() and stem.isdigit()):
        return None
    return int(stem)


def segment_header() -> bytes:
    head = SEGMENT_MAGIC + struct.pack("<HH", FORMAT_VERSION, 0)
    return head + struct.pack("<I", _crc32(head))


def check_segment_header(data: bytes) -> str | None:
    """``None`` if ``data`` starts with a valid header of this format, else the problem."""
    if len(data) < SEGMENT_HEADER_SIZE:
        return "short segment header"
    magic, version, _, crc = _SEGMENT.unpack_from(data)
    if magic != SEGMENT_MAGIC or crc != _crc32(data[:12]):
        return "bad segment header"
    if version != FORMAT_VERSION:
        return f"segment format version {version}, this marketd reads {FORMAT_VERSION}"
    return None


class EntryTooLarge(ValueError):
    """A record whose entry would exceed :data:`MAX_PAYLOAD` (nothing of its batch is
    written); ``index`` is its place in the batch."""

    def __init__(self, index: int, length: int) -> None:
        super().__init__(f"a record of {length} B exceeds the spool's entry limit")
        self.index = index


def encode_entries(records: list[Record], first_seq: int, buf: bytearray) -> list[int]:
    """Append one entry per record to ``buf``; return each entry's end offset in it.
    :class:`EntryTooLarge` for a record beyond the entry limit (nothing appended then)."""
    payloads = list(map(_encode, records))
    if payloads and max(map(len, payloads)) > MAX_PAYLOAD:
        index = next(i for i, p in enumerate(payloads) if len(p) > MAX_PAYLOAD)
        raise EntryTooLarge(index, len(payloads[index]))
    ends: list[int] = []
    append = ends.append
    pack_length_seq, pack_magic_crc, crc32 = _LENGTH_SEQ.pack, _MAGIC_CRC.pack, _crc32
    seq = first_seq
    for payload in payloads:
        length_seq = pack_length_seq(len(payload), seq)
        seq += 1
        # The crc of length | seq | payload, without joining them first.
        buf += pack_magic_crc(ENTRY_MAGIC, crc32(payload, crc32(length_seq)))
        buf += length_seq
        buf += payload
        append(len(buf))
    return ends


def decode_record(payload: bytes | memoryview) -> Record:
    """Raises ``msgspec.DecodeError`` (or ``ValidationError``) on an undecodable payload."""
    return _decoder.decode(payload)


class Scan(enum.Enum):
    END = "end"  # every byte up to ``end`` parsed
    LIMIT = "limit"  # ``max_entries`` reached
    SHORT = "short"  # an entry continues past ``end`` (a torn tail if ``end`` is the file's)
    BAD = "bad"  # bad magic, impossible length or checksum mismatch at the returned offset


def scan(
    data: bytes | memoryview, pos: int, end: int, max_entries: int
) -> tuple[list[tuple[int, int, int]], int, Scan]:
    """Parse entries in ``data[pos:end]``: ``([(seq, payload_start, entry_end)], stop, why)``."""
    out: list[tuple[int, int, int]] = []
    unpack_from = _ENTRY.unpack_from
    while True:
        if pos == end:
            return out, pos, Scan.END
        if len(out) >= max_entries:
            return out, pos, Scan.LIMIT
        if end - pos < ENTRY_HEADER_SIZE:
            return out, pos, Scan.SHORT
        magic, crc, length, seq = unpack_from(data, pos)
        if magic != ENTRY_MAGIC or length > MAX_PAYLOAD:
            return out, pos, Scan.BAD
        stop = pos + ENTRY_HEADER_SIZE + length
        if stop > end:
            return out, pos, Scan.SHORT
        if _crc32(data[pos + 8 : stop]) != crc:
            return out, pos, Scan.BAD
        out.append((seq, pos + ENTRY_HEADER_SIZE, stop))
        pos = stop


def resync(data: bytes | memoryview, pos: int, end: int) -> int | None:
    """The first offset after ``pos`` (below ``end``) where a whole valid entry starts."""
    raw = bytes(data[:end]) if isinstance(data, memoryview) else data
    at = pos
    while (at := raw.find(ENTRY_MAGIC, at + 1, end)) >= 0:
        if scan(raw, at, end, 1)[0]:
            return at
    return None
