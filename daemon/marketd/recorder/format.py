"""The on-disk format of recordings (raw frames as received, for replay and backtests):
entries, the connection markers, segment names, file headers, blocks and the layout's
constants. Pure functions over bytes, no file I/O. The groups a version 2 block holds are
:mod:`.groups`, the records of version 1 :mod:`.v1`; the writer (:mod:`.writer`) and the
reader (:mod:`.reader`) build on them.

Entries
-------
An :class:`Entry` is one thing marketd received: a WebSocket frame (``kind`` "ws",
``connection`` the connection plan that carried it, e.g. "usdm-0") or a REST response
(``kind`` "rest", ``connection`` the base URL, ``stream`` the request path and query,
e.g. "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"), with ``received_ns`` (wall clock) and
the payload bytes exactly as received. A "ws" entry's ``stream`` is:

* the stream name at the start of a data frame (``{"stream":"<name>",...``, Binance's
  combined streams; "" for a data frame that does not start so, e.g. garbage);
* "" for the frames the connection handles itself and never hands on as data: Binance's
  control frames (subscription replies such as ``{"result":null,"id":1}``, error replies,
  ``serverShutdown`` — also when it comes as ``{"stream":"!serverShutdown",...}``) and
  marketd's own connection markers below.

The entries of one connection are in the order the connection handed them on, which is
the order they were received, except around a make-before-break handover (rotation,
``serverShutdown``): the old connection's entries come first, up to its ``closed`` marker,
then the new one's from its ``connected`` marker (its frames that repeat the old
connection's last ones are not recorded; ``received_ns`` may step back there).

Connection markers are "ws" entries with stream "" whose payload is a JSON object with
the key ``"marketd"`` first (Binance never sends that key; it starts ``{"marketd":``)::

    {"marketd":"connected","url":"wss://.../stream?streams=..."}
        the WebSocket handshake succeeded (what follows is this connection's, from its
        subscription replies on);
    {"marketd":"closed","code":1001,"reason":"...","by":"exchange"}
        the connection ended, after its last frame: the close code and reason (``null``
        if none) of the exchange's close frame — 1006 when the connection dropped
        without one, marketd's own 1000 when it closed and no reply came — and ``by``
        "exchange" (the exchange closed it or it dropped) or "marketd" (marketd closed
        it: a rotation, a handover after ``serverShutdown``, staleness, an error
        reply, a stop).

A connection that never completed its handshake records nothing. ``payload_marker``
tells a marker from a frame.

A recording is a directory holding::

    <first received_ns, 20 digits>-<seq, 6+ digits>.seg.zst   a segment: entries
    <segment name>.idx.json                                   its index, once finished
    lock                                                      flock: one writer at a time

The first number is the ``received_ns`` of the segment's first entry; ``seq`` counts the
directory's segments (1 + the highest present when the writer opens), so names sort by
time and never collide. Segments are read in (first received_ns, seq) order.

Segments
--------
Integers little-endian, crc32 is zlib's. Every part is a zstd frame, the headers being
zstd *skippable* frames, so ``zstd -dc <segment>`` prints the blocks' contents::

    file header (24 B):  u32 0x184D2A50 | u32 16 | b"MKDRECSG" | u16 format version
                         | u16 0 | u32 crc32(the 12 B before)
    block*:
      header (24 B):     u32 0x184D2A51 | u32 16 | u32 frame length | u32 raw length
                         | u32 crc32(frame) | u32 crc32(the 12 B before)
      frame:             one zstd frame (content size set) of raw length bytes

The writer writes format version 2; the reader reads versions 1 and 2. The raw bytes of a
block are, in version 2, groups: the consecutive entries of one kind and connection,
column by column (one header per group instead of per entry, and similar bytes next to
each other for zstd)::

    group:  u32 length of the rest of the group | u8 kind (0 "ws", 1 "rest")
            | u16 len(connection) | u32 n (entries) | u16 m (streams) | connection utf-8
            | m times: u16 len(stream) | stream utf-8      the group's stream table
            | n times: u64 received_ns                      the entries, column by column
            | n times: u16 stream (its index in the table)
            | n times: u32 len(payload)
            | the n payloads, one after the other

and in version 1, records, each with its own crc32::

    record: u32 crc32(length and body) | u32 length | body (length B)
    body:   u64 received_ns | u8 kind | u16 len(connection) | u16 len(stream)
            | connection utf-8 | stream utf-8 | payload

Version 2 has no checksum per entry: the block's crc32 covers its compressed frame, and
a group whose lengths, counts or stream indexes do not add up is damage (counted like a
bad record of version 1: the rest of its block is skipped).

A block holds the entries appended between two flushes. Nothing is fsynced per block: a
crash loses the unflushed entries and may tear the last block (or leave zeros), but every
block before it stays readable.

Index (JSON, ``version`` 1), written atomically when :class:`~.writer.SegmentWriter`
finishes a segment: ``first_ns`` / ``last_ns`` the lowest / highest ``received_ns``
(``null`` if none), ``entries``, ``bytes`` (the segment file's size) and ``streams``
(entries per ``"<kind>:<stream>"``; control frames and markers count as ``"ws:"``). An
index whose ``bytes`` differs from the file's size, or that does not parse, is ignored.
A segment without a valid index (the one being written, or one a crash left) is scanned
instead; :func:`~.reader.index_of` builds its index by scanning.
"""

from __future__ import annotations

import itertools
import json
import re
import struct
import zlib
from typing import Any, Final, Literal

import msgspec
import zstandard

MiB: Final = 1024 * 1024
GiB: Final = 1024 * MiB

KINDS: Final = ("ws", "rest")  # the kind byte is the index in this tuple
KIND_CODE: Final = {kind: code for code, kind in enumerate(KINDS)}

FORMAT_VERSION: Final = 2
READABLE_VERSIONS: Final = (1, 2)
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
# An entry's payload, stream and connection together (with its share of the layout).
MAX_RECORD: Final = 64 * MiB
# A block is flushed once it holds max_block_bytes (at most MAX_RECORD), so its raw size
# stays below two entries' worth; anything larger is damage.
MAX_BLOCK_RAW: Final = 2 * (MAX_RECORD + 8)
_MAX_FRAME: Final = MAX_BLOCK_RAW + MAX_BLOCK_RAW // 128 + MiB  # above zstd's bound
_NAME = re.compile(r"([0-9]{20})-([0-9]{6,})" + re.escape(SEGMENT_SUFFIX))
_crc32 = zlib.crc32


class Entry(msgspec.Struct, frozen=True, gc=False):
    """One raw frame or REST response as received (see the module documentation)."""

    received_ns: int
    kind: str  # "ws" or "rest"
    connection: str
    stream: str  # the stream name ("ws"; "" for control frames), the path and query ("rest")
    payload: bytes


class Columns:
    """Consecutive entries of one ``kind`` and ``connection``, column by column: their
    ``received_ns``, their streams (``ids``, indexes into the table ``streams``) and
    ``payloads``. What a version 2 block's group holds, handed on whole to readers that
    take many entries at a time (a backtest) without an :class:`Entry` each."""

    __slots__ = ("connection", "ids", "kind", "ns", "payloads", "streams")

    def __init__(
        self,
        kind: str,
        connection: str,
        streams: list[str],
        ns: list[int],
        ids: list[int],
        payloads: list[bytes],
    ) -> None:
        self.kind = kind
        self.connection = connection
        self.streams = streams
        self.ns = ns
        self.ids = ids
        self.payloads = payloads

    def __len__(self) -> int:
        return len(self.ns)

    def entries(self, start: int = 0, stop: int | None = None) -> list[Entry]:
        """The entries (those from ``start`` to ``stop``, as in a slice) one by one."""
        end = len(self.ns) if stop is None else stop
        n = max(0, end - start)
        return list(
            map(
                Entry,
                self.ns[start:end],
                itertools.repeat(self.kind, n),
                itertools.repeat(self.connection, n),
                map(self.streams.__getitem__, self.ids[start:end]),
                self.payloads[start:end],
            )
        )

    def select(self, keep: list[bool]) -> Columns:
        """The entries whose ``keep`` is true (one flag per entry)."""
        return Columns(
            self.kind,
            self.connection,
            self.streams,
            list(itertools.compress(self.ns, keep)),
            list(itertools.compress(self.ids, keep)),
            list(itertools.compress(self.payloads, keep)),
        )


def columns_of(entries: list[Entry]) -> list[Columns]:
    """``entries`` as columns, one per run of a kind and connection."""
    out: list[Columns] = []
    for (kind, connection), run in itertools.groupby(entries, lambda e: (e.kind, e.connection)):
        group = list(run)
        table: dict[str, int] = {}
        ids = [table.setdefault(e.stream, len(table)) for e in group]
        ns = [e.received_ns for e in group]
        payloads = [e.payload for e in group]
        out.append(Columns(kind, connection, list(table), ns, ids, payloads))
    return out


# -- connection markers ------------------------------------------------------------------

MARKER_PREFIX: Final = b'{"marketd":'


def connected_marker(url: str) -> str:
    """The payload of a ``connected`` marker (see the module documentation)."""
    return json.dumps({"marketd": "connected", "url": url}, separators=(",", ":"))


def closed_marker(code: int | None, reason: str | None, by: Literal["exchange", "marketd"]) -> str:
    """The payload of a ``closed`` marker (see the module documentation)."""
    shape = {"marketd": "closed", "code": code, "reason": reason, "by": by}
    return json.dumps(shape, separators=(",", ":"))


def payload_marker(payload: bytes) -> dict[str, Any] | None:
    """The marker a payload is (``{"marketd": "connected", ...}``), ``None`` for a frame."""
    if not payload.startswith(MARKER_PREFIX):
        return None
    try:
        found = json.loads(payload)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


# -- segment names and headers -----------------------------------------------------------


def segment_name(first_ns: int, seq: int) -> str:
    return f"{first_ns:020d}-{seq:06d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    """``(first received_ns, seq)`` of a segment's file name, ``None`` for other files."""
    match = _NAME.fullmatch(name)
    return None if match is None else (int(match[1]), int(match[2]))


def file_header(version: int = FORMAT_VERSION) -> bytes:
    head = struct.pack("<II8sHH", _FILE_FRAME, 16, SEGMENT_MAGIC, version, 0)
    return head + struct.pack("<I", _crc32(head[8:]))


# Every field of a header is fixed by its format version: compare the bytes.
_HEADERS: Final = {file_header(v): v for v in READABLE_VERSIONS}


def file_version(data: bytes) -> int | None:
    """The format version of a valid file header this module reads, else ``None``."""
    return _HEADERS.get(bytes(data[:HEADER_SIZE]))


# -- blocks ------------------------------------------------------------------------------


def encode_block(raw: bytes | bytearray, compressor: zstandard.ZstdCompressor) -> bytes:
    """A block header and the zstd frame of ``raw`` (groups)."""
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
