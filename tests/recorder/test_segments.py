"""Recording segments (marketd.recorder): round trips, rotation, indexes,
filtering, retention, and damage (torn tails, flipped bytes, bad headers) read without
an exception; segments of format version 1 still read.

The damage tests find blocks and build groups (version 2) and records (version 1) from
the layout the module documents, independently of the module's encoder, so a change to
the layout fails here.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import zlib
from pathlib import Path

import attrs
import pytest
import zstandard

from marketd.recorder import (
    Entry,
    ReadStatistics,
    RecorderError,
    SegmentWriter,
    directory_summary,
    index_of,
    read,
    read_blocks,
)
from marketd.recorder.format import parse_segment_name

T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000
CLEAN = ReadStatistics(
    entries=0,
    segments_read=0,
    segments_skipped=0,
    corrupt_blocks=0,
    corrupt_records=0,
    torn_tails=0,
    unreadable_segments=0,
)


def ws(ns: int, stream: str = "btcusdt@aggTrade", payload: bytes = b"{}") -> Entry:
    return Entry(ns, "ws", "usdm-0", stream, payload)


def rest(ns: int, path: str = "/fapi/v1/depth?symbol=BTCUSDT&limit=1000") -> Entry:
    return Entry(ns, "rest", "rest", path, b'{"lastUpdateId":1,"bids":[],"asks":[]}')


def segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".seg.zst"))


def index_file(segment: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(Path(f"{segment}.idx.json").read_text())
    return loaded


def expected_index(entries: list[Entry], size: int) -> dict[str, object]:
    streams: dict[str, int] = {}
    for e in entries:
        streams[f"{e.kind}:{e.stream}"] = streams.get(f"{e.kind}:{e.stream}", 0) + 1
    return {
        "version": 1,
        "first_ns": min(e.received_ns for e in entries),
        "last_ns": max(e.received_ns for e in entries),
        "entries": len(entries),
        "bytes": size,
        "streams": streams,
    }


def block_offsets(segment: Path) -> list[tuple[int, int]]:
    """(start, end) of each block, from the documented layout: a 24 B file header, then
    per block a 24 B header whose third u32 is the frame's length, then the frame."""
    data = segment.read_bytes()
    out, pos = [], 24
    while pos < len(data):
        (length,) = struct.unpack_from("<I", data, pos + 8)
        out.append((pos, pos + 24 + length))
        pos += 24 + length
    return out


def crash_image(directory: Path, to: Path) -> Path:
    """What a crash leaves: the files as they are, no index for the open segment."""
    shutil.copytree(directory, to, ignore=shutil.ignore_patterns("lock"))
    return to


def mixed_entries(n: int) -> list[Entry]:
    rng = random.Random(7)
    payloads = [b"", bytes(range(256)), b"\x00" * 40, "ü€𝄞".encode(), b'{"e":"aggTrade"}']
    streams = ["btcusdt@aggTrade", "ethusdt@depth@100ms", "bücher@流", "x"]
    out = []
    for i in range(n):
        ns = T0 + i * 1_000_000
        if i % 7 == 3:
            out.append(Entry(ns, "rest", "rest-0", f"/fapi/v1/depth?symbol=Ä{i % 3}", b"[]" * i))
        else:
            payload = payloads[i % len(payloads)] + rng.randbytes(rng.randrange(0, 30))
            out.append(Entry(ns, "ws", f"usdm-{i % 2}", streams[i % len(streams)], payload))
    return out


# -- round trip and indexes -------------------------------------------------------------


def test_round_trip_of_both_kinds_keeps_every_byte_and_the_order(tmp_path: Path) -> None:
    entries = mixed_entries(5000)
    with SegmentWriter(tmp_path, max_block_bytes=16 * 1024) as writer:
        for i, entry in enumerate(entries):
            writer.append(entry)
            if i % 1000 == 999:
                writer.flush()
        mid = writer.statistics()
    assert mid.entries_written + mid.entries_buffered == 5000
    reading = read(tmp_path)
    assert list(reading) == entries
    assert reading.statistics() == attrs.evolve(CLEAN, entries=5000, segments_read=1)
    (segment,) = segments(tmp_path)
    assert index_file(segment) == expected_index(entries, segment.stat().st_size)
    stats = writer.statistics()
    assert (stats.entries_written, stats.entries_buffered, stats.segments_finished) == (
        5000,
        0,
        1,
    )
    assert stats.bytes_written == segment.stat().st_size
    assert stats.current_segment is None


def test_a_segment_is_a_plain_zstd_stream_of_the_documented_records(tmp_path: Path) -> None:
    entries = [ws(T0, "ä@b", b"\x00\xff"), rest(T0 + 5)]
    with SegmentWriter(tmp_path) as writer:
        writer.append(entries[0])
        writer.flush()
        writer.append(entries[1])
    (segment,) = segments(tmp_path)
    assert parse_segment_name(segment.name) == (T0, 1)
    assert segment.name == f"{T0:020d}-000001.seg.zst"
    assert segment.read_bytes()[:24] == file_header(2)
    with segment.open("rb") as f:
        raw = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
    assert raw == group(entries[:1]) + group(entries[1:])


def test_a_group_holds_the_entries_of_one_kind_and_connection_column_by_column(
    tmp_path: Path,
) -> None:
    frames = [
        Entry(T0, "ws", "usdm-0", "a@trade", b'{"stream":"a@trade"}'),
        Entry(T0 + 1, "ws", "usdm-0", "", b'{"result":null,"id":1}'),
        Entry(T0 + 2, "ws", "usdm-0", "a@trade", b"x"),
        Entry(T0 + 3, "ws", "usdm-1", "a@trade", b"y"),
        rest(T0 + 4),
        Entry(T0 + 5, "ws", "usdm-1", "b@depth", b""),
    ]
    with SegmentWriter(tmp_path) as writer:
        for entry in frames:
            writer.append(entry)
    (segment,) = segments(tmp_path)
    with segment.open("rb") as f:
        raw = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
    groups = [frames[:3], frames[3:4], frames[4:5], frames[5:]]
    assert raw == b"".join(map(group, groups))
    assert list(read(tmp_path)) == frames


def group(entries: list[Entry]) -> bytes:
    """A group (version 2) as the module doc lays it out: entries of one kind and
    connection, their streams in the table in order of appearance."""
    first = entries[0]
    connection = first.connection.encode()
    table = list(dict.fromkeys(e.stream for e in entries))
    kind = {"ws": 0, "rest": 1}[first.kind]
    body = struct.pack("<BHIH", kind, len(connection), len(entries), len(table)) + connection
    for stream in table:
        body += struct.pack("<H", len(stream.encode())) + stream.encode()
    body += b"".join(struct.pack("<Q", e.received_ns) for e in entries)
    index = {stream: i for i, stream in enumerate(table)}
    body += b"".join(struct.pack("<H", index[e.stream]) for e in entries)
    body += b"".join(struct.pack("<I", len(e.payload)) for e in entries)
    body += b"".join(e.payload for e in entries)
    return struct.pack("<I", len(body)) + body


def record(entry: Entry) -> bytes:
    """A record of format version 1 as the module doc lays it out."""
    connection, stream = entry.connection.encode(), entry.stream.encode()
    kind = {"ws": 0, "rest": 1}[entry.kind]
    body = struct.pack("<QBHH", entry.received_ns, kind, len(connection), len(stream))
    body += connection + stream + entry.payload
    length = struct.pack("<I", len(body))
    return struct.pack("<I", zlib.crc32(length + body)) + length + body


def block(raw: bytes) -> bytes:
    """A block as the module doc lays it out."""
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(raw)
    head = struct.pack("<III", len(frame), len(raw), zlib.crc32(frame))
    return struct.pack("<II", 0x184D2A51, 16) + head + struct.pack("<I", zlib.crc32(head)) + frame


def file_header(version: int) -> bytes:
    head = struct.pack("<8sHH", b"MKDRECSG", version, 0)
    return struct.pack("<II", 0x184D2A50, 16) + head + struct.pack("<I", zlib.crc32(head))


def test_rotation_by_receive_time_with_exact_indexes(tmp_path: Path) -> None:
    # One entry every 100 ms; a segment spans at most 1 s: entries 0..10, 11..21, ...
    entries = [ws(T0 + i * SECOND // 10, f"s{i % 3}") for i in range(35)]
    with SegmentWriter(tmp_path, max_segment_s=1.0) as writer:
        for entry in entries:
            writer.append(entry)
    files = segments(tmp_path)
    groups = [entries[0:11], entries[11:22], entries[22:33], entries[33:35]]
    assert [f.name for f in files] == [
        f"{g[0].received_ns:020d}-{n:06d}.seg.zst" for n, g in enumerate(groups, 1)
    ]
    for f, group in zip(files, groups, strict=True):
        assert index_file(f) == expected_index(group, f.stat().st_size)
        assert index_of(f) == index_file(f)
    assert list(read(tmp_path)) == entries
    assert writer.statistics().segments_finished == 4


def test_rotation_by_size_after_the_block_that_passes_the_limit(tmp_path: Path) -> None:
    rng = random.Random(1)
    entries = [ws(T0 + i, "b", rng.randbytes(100)) for i in range(200)]  # incompressible
    with SegmentWriter(tmp_path, max_segment_bytes=2500) as writer:
        for i, entry in enumerate(entries):
            writer.append(entry)
            if i % 10 == 9:
                writer.flush()  # blocks of 10 entries, ~1.2 kB compressed
    files = segments(tmp_path)
    assert len(files) > 3
    done = 0
    for n, f in enumerate(files, 1):
        blocks = block_offsets(f)
        size = f.stat().st_size
        if f != files[-1]:  # finished by size: right after the block that passed the limit
            assert size > 2500 >= blocks[-1][0]
        group = entries[done : done + 10 * len(blocks)]
        assert parse_segment_name(f.name) == (group[0].received_ns, n)
        assert index_file(f) == expected_index(group, size)
        done += len(group)
    assert done == 200
    assert list(read(tmp_path)) == entries


# -- filtering by index -------------------------------------------------------------------


def three_segments(directory: Path) -> list[list[Entry]]:
    """Three segments of 1 s each (10 s apart), each with its own stream."""
    groups = [[ws(T0 + k * 10 * SECOND + i, f"stream{k}") for i in range(50)] for k in range(3)]
    with SegmentWriter(directory, max_segment_s=1.0) as writer:
        for group in groups:
            for entry in group:
                writer.append(entry)
    return groups


def spoil(segment: Path) -> None:
    """Flip every byte of the segment past its file header (same size: its index holds)."""
    data = bytearray(segment.read_bytes())
    for i in range(24, len(data)):
        data[i] ^= 0x5A
    segment.write_bytes(bytes(data))


def test_a_range_skips_segments_by_their_index_without_opening_them(tmp_path: Path) -> None:
    groups = three_segments(tmp_path)
    first = segments(tmp_path)[0]
    spoil(first)
    reading = read(tmp_path, start_ns=T0 + 10 * SECOND + 10, end_ns=T0 + 20 * SECOND + 5)
    assert list(reading) == groups[1][10:] + groups[2][:5]
    assert reading.statistics() == attrs.evolve(
        CLEAN, entries=45, segments_read=2, segments_skipped=1
    )
    # The spoiled segment is noticed as soon as a range needs it.
    reading = read(tmp_path, end_ns=T0 + 5)
    assert list(reading) == []
    assert reading.statistics() == attrs.evolve(
        CLEAN, segments_read=1, segments_skipped=2, corrupt_blocks=1
    )


def test_a_stream_filter_skips_segments_without_the_stream(tmp_path: Path) -> None:
    groups = three_segments(tmp_path)
    spoil(segments(tmp_path)[0])
    reading = read(tmp_path, streams={"stream2", "nowhere"})
    assert list(reading) == groups[2]
    assert reading.statistics() == attrs.evolve(
        CLEAN, entries=50, segments_read=1, segments_skipped=2
    )


def test_a_stale_index_is_not_trusted(tmp_path: Path) -> None:
    groups = three_segments(tmp_path)
    first = segments(tmp_path)[0]
    with first.open("ab") as f:
        f.write(b"\x00" * 10)  # the index's byte count no longer matches: scanned
    reading = read(tmp_path, streams={"stream1"})
    assert list(reading) == groups[1]
    assert reading.statistics() == attrs.evolve(
        CLEAN, entries=50, segments_read=2, segments_skipped=1, torn_tails=1
    )


# -- retention ----------------------------------------------------------------------------


def test_retention_by_total_bytes_deletes_the_oldest(tmp_path: Path) -> None:
    rng = random.Random(2)
    entries = [ws(T0 + i * SECOND // 10, "t", rng.randbytes(200)) for i in range(100)]
    # The same recording without retention, for the segments' sizes.
    for directory, limit in ((tmp_path / "all", 2**40), (tmp_path / "kept", 7000)):
        with SegmentWriter(directory, max_segment_s=1.0, max_total_bytes=limit) as writer:
            for entry in entries:
                writer.append(entry)
    every = segments(tmp_path / "all")
    # When the last segment started (24 B), the oldest went until the rest fit 7000 B.
    kept = 1
    while sum(f.stat().st_size for f in every[-1 - kept : -1]) + 24 <= 7000:
        kept += 1
    files = segments(tmp_path / "kept")
    assert [f.name for f in files] == [f.name for f in every[-kept:]]
    assert 2 <= kept < len(every)
    assert writer.statistics().segments_deleted == len(every) - kept
    assert sorted(p.name for p in (tmp_path / "kept").glob("*.idx.json")) == [
        f"{f.name}.idx.json" for f in files
    ]
    first_kept = parse_segment_name(files[0].name)
    assert first_kept is not None
    assert list(read(tmp_path / "kept")) == [e for e in entries if e.received_ns >= first_kept[0]]


def test_retention_never_deletes_the_segment_being_written(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, max_segment_s=1.0, max_total_bytes=1)
    try:
        for i in range(50):
            writer.append(ws(T0 + i * SECOND // 2, payload=str(i).encode()))
            writer.flush()
            current = writer.statistics().current_segment
            assert [f.name for f in segments(tmp_path)] == [current]
        # Segments of 3 entries (0, 0.5 and 1 s after the first): the last holds 2.
        assert [e.payload for e in read(tmp_path)] == [b"48", b"49"]
    finally:
        writer.close()
    assert writer.statistics().segments_deleted == 16


def test_retention_by_age_of_the_newest_entry(tmp_path: Path) -> None:
    # Segments of 1 s: [0, 1], [2, 3], ... [18, 19] (in seconds after T0).
    entries = [ws(T0 + i * SECOND, payload=bytes([i])) for i in range(20)]
    with SegmentWriter(tmp_path, max_segment_s=1.0, max_age_s=5.0) as writer:
        for entry in entries:
            writer.append(entry)
    # The last start was at 18 s: segments ending before 13 s went ([12, 13] stays).
    assert [parse_segment_name(f.name) for f in segments(tmp_path)] == [
        (T0 + s * SECOND, s // 2 + 1) for s in (12, 14, 16, 18)
    ]
    assert [e.payload[0] for e in read(tmp_path)] == list(range(12, 20))
    assert writer.statistics().segments_deleted == 6


def test_a_reopened_writer_continues_and_retains_unindexed_segments(tmp_path: Path) -> None:
    first = SegmentWriter(tmp_path)
    first.append(ws(T0, payload=b"a"))
    first.flush()
    crashed = crash_image(tmp_path, tmp_path / "crashed")
    first.close()
    with SegmentWriter(crashed, max_age_s=10.0) as second:
        second.append(ws(T0 + 5 * SECOND, payload=b"b"))
        second.append(ws(T0 + 9 * SECOND, payload=b"c"))
    with SegmentWriter(crashed, max_age_s=10.0, max_segment_s=1.0) as third:
        # The unindexed first segment (its last entry at 0 s) is taken to end where the
        # second begins (5 s): still within 10 s of 12 s, past them at 16 s.
        third.append(ws(T0 + 12 * SECOND, payload=b"d"))
        assert third.statistics().segments_deleted == 0
        third.append(ws(T0 + 16 * SECOND, payload=b"e"))
        assert third.statistics().segments_deleted == 1
    assert [f.name for f in segments(crashed)] == [
        f"{T0 + 5 * SECOND:020d}-000002.seg.zst",
        f"{T0 + 12 * SECOND:020d}-000003.seg.zst",
        f"{T0 + 16 * SECOND:020d}-000004.seg.zst",
    ]
    assert [e.payload for e in read(crashed)] == [b"b", b"c", b"d", b"e"]


# -- damage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cut", "torn"),
    [
        ("mid-frame", 1),
        ("mid-header", 1),
        ("at a block end", 0),
    ],
)
def test_a_torn_tail_loses_only_the_last_block(tmp_path: Path, cut: str, torn: int) -> None:
    entries = [ws(T0 + i, "s", f"payload {i}".encode()) for i in range(350)]
    writer = SegmentWriter(tmp_path / "rec")
    try:
        for n, entry in enumerate(entries):
            writer.append(entry)
            if n % 100 == 99:
                writer.flush()  # three blocks of 100, 50 entries left buffered
        crashed = crash_image(tmp_path / "rec", tmp_path / "crashed")
    finally:
        writer.close()
    (segment,) = segments(crashed)
    assert not Path(f"{segment}.idx.json").exists()
    starts = [start for start, _ in block_offsets(segment)]
    size = {"mid-frame": segment.stat().st_size - 7, "mid-header": starts[2] + 10}
    with segment.open("r+b") as f:
        f.truncate(size.get(cut, starts[2]))
    reading = read(crashed)
    assert list(reading) == entries[:200]
    assert reading.statistics() == attrs.evolve(
        CLEAN, entries=200, segments_read=1, torn_tails=torn
    )
    assert index_of(segment) == expected_index(entries[:200], segment.stat().st_size)


def test_zeros_past_the_last_block_are_a_torn_tail(tmp_path: Path) -> None:
    entries = [ws(T0 + i) for i in range(10)]
    with SegmentWriter(tmp_path) as writer:
        for entry in entries:
            writer.append(entry)
    (segment,) = segments(tmp_path)
    with segment.open("ab") as f:
        f.write(bytes(4096))  # what a power loss leaves of blocks never synced
    reading = read(tmp_path)
    assert list(reading) == entries
    assert reading.statistics() == attrs.evolve(CLEAN, entries=10, segments_read=1, torn_tails=1)


def test_an_unindexed_segment_is_scanned_to_the_index_a_close_writes(tmp_path: Path) -> None:
    entries = mixed_entries(700)
    writer = SegmentWriter(tmp_path / "rec")
    try:
        for entry in entries:
            writer.append(entry)
        writer.flush()
        crashed = crash_image(tmp_path / "rec", tmp_path / "crashed")
    finally:
        writer.close()
    (closed,) = segments(tmp_path / "rec")
    (unindexed,) = segments(crashed)
    assert index_of(unindexed) == index_file(closed)
    assert list(read(crashed)) == entries
    summary = directory_summary(crashed)
    assert summary["scanned"] == 1
    assert (summary["entries"], summary["segments"]) == (700, 1)


@pytest.mark.parametrize("where", ["frame", "header"])
def test_a_flipped_byte_costs_its_block_only(tmp_path: Path, where: str) -> None:
    entries = [ws(T0 + i, "s", f"payload {i}".encode()) for i in range(300)]
    with SegmentWriter(tmp_path) as writer:
        for n, entry in enumerate(entries):
            writer.append(entry)
            if n % 100 == 99:
                writer.flush()
    (segment,) = segments(tmp_path)
    start, end = block_offsets(segment)[1]
    at = start + 12 if where == "header" else (start + 24 + end) // 2  # its raw length
    data = bytearray(segment.read_bytes())
    data[at] ^= 0x01
    segment.write_bytes(bytes(data))
    reading = read(tmp_path)
    assert list(reading) == entries[:100] + entries[200:]
    # The flip left the index's byte count true: the segment is read, not scanned twice.
    assert reading.statistics() == attrs.evolve(
        CLEAN, entries=200, segments_read=1, corrupt_blocks=1
    )


def test_a_version_1_segment_reads_as_it_always_did(tmp_path: Path) -> None:
    entries = mixed_entries(300)
    data = file_header(1) + block(b"".join(map(record, entries[:100])))
    data += block(b"".join(map(record, entries[100:])))
    segment = tmp_path / f"{T0:020d}-000001.seg.zst"
    segment.write_bytes(data)
    later = [ws(T0 + SECOND * 3600 + i) for i in range(3)]
    with SegmentWriter(tmp_path) as writer:  # a version 2 segment beside it
        for entry in later:
            writer.append(entry)
    reading = read(tmp_path)
    assert list(reading) == entries + later
    assert reading.statistics() == attrs.evolve(CLEAN, entries=303, segments_read=2)
    assert index_of(segment) == expected_index(entries, len(data))


def test_a_bad_record_costs_the_rest_of_its_block(tmp_path: Path) -> None:
    first = [ws(T0 + i, "s", b"first") for i in range(3)]
    second = [ws(T0 + 10 + i, "s", b"second") for i in range(3)]
    third = [rest(T0 + 20)]
    bad = bytearray(record(second[1]))
    bad[-1] ^= 0x01  # the payload: the record's crc32 fails
    raw_second = record(second[0]) + bytes(bad) + record(second[2])
    data = (
        file_header(1)
        + block(b"".join(map(record, first)))
        + block(raw_second)
        + block(record(third[0]))
    )
    (tmp_path / f"{T0:020d}-000001.seg.zst").write_bytes(data)
    # A length beyond the block: the same.
    lying = bytearray(record(ws(T0 + 30)))
    lying[4:8] = struct.pack("<I", 10_000)
    (tmp_path / f"{T0 + 30:020d}-000002.seg.zst").write_bytes(
        file_header(1) + block(bytes(lying)) + block(record(ws(T0 + 31)))
    )
    reading = read(tmp_path)
    assert list(reading) == [*first, second[0], *third, ws(T0 + 31)]
    assert reading.statistics() == attrs.evolve(
        CLEAN, entries=6, segments_read=2, corrupt_records=2
    )


def lie(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


@pytest.mark.parametrize(
    "damage",
    [
        "group length beyond the block",
        "more entries than bytes",
        "payload lengths not adding up",
        "stream index beyond the table",
        "stream table beyond the group",
        "connection not utf-8",
        "kind unknown",
        "a tail too short for a header",
    ],
)
def test_a_bad_group_costs_the_rest_of_its_block(tmp_path: Path, damage: str) -> None:
    """The block's crc32 covers the compressed bytes; a group whose own numbers do not add
    up (what a writer bug would leave) is caught too, and only its block's rest is lost."""
    first = [ws(T0 + i, "s", b"first") for i in range(3)]
    bad_ones = [Entry(T0 + 10 + i, "ws", "usdm-1", "t", b"second") for i in range(2)]
    after_bad = [rest(T0 + 20)]
    third = [ws(T0 + 30, "s", b"third")]
    good = group(bad_ones)
    # The header (13 B): u32 length, u8 kind, u16 len(connection), u32 n, u16 m; then
    # "usdm-1", the table (u16 1, "t"), 2 x u64, 2 x u16 stream, 2 x u32 length, payloads.
    table = 13 + 6
    columns = table + 3
    spoiled = {
        "group length beyond the block": lie(good, 0, "<I", 10_000),
        "more entries than bytes": lie(good, 7, "<I", 1_000),
        "payload lengths not adding up": lie(good, columns + 16 + 4 + 4, "<I", 5),
        "stream index beyond the table": lie(good, columns + 16 + 2, "<H", 1),
        "stream table beyond the group": lie(good, table, "<H", 999),
        "connection not utf-8": good[:13] + b"\xff" + good[14:],
        "kind unknown": lie(good, 4, "<B", 7),
        "a tail too short for a header": b"\x01\x00",
    }[damage]
    raw = group(first) + spoiled + group(after_bad)
    data = file_header(2) + block(raw) + block(group(third))
    (tmp_path / f"{T0:020d}-000001.seg.zst").write_bytes(data)
    reading = read(tmp_path)
    assert list(reading) == first + third
    assert reading.statistics() == attrs.evolve(
        CLEAN, entries=4, segments_read=1, corrupt_records=1
    )


@pytest.mark.parametrize(
    "content",
    [b"not a segment at all, just some text of some length", b"", b"MKD"],
)
def test_a_file_with_a_bad_header_is_counted_and_skipped(tmp_path: Path, content: bytes) -> None:
    entries = [ws(T0 + i) for i in range(5)]
    with SegmentWriter(tmp_path) as writer:
        for entry in entries:
            writer.append(entry)
    (tmp_path / f"{T0 - 1:020d}-000000.seg.zst").write_bytes(content)
    forged = file_header(3) + block(group([ws(T0 + 99)]))  # a version this reader lacks
    (tmp_path / f"{T0 + 99:020d}-000009.seg.zst").write_bytes(forged)
    reading = read(tmp_path)
    assert list(reading) == entries
    assert reading.statistics() == attrs.evolve(
        CLEAN, entries=5, segments_read=1, unreadable_segments=2
    )


# -- summary, arguments, compression --------------------------------------------------------


def test_directory_summary_from_the_indexes(tmp_path: Path) -> None:
    groups = three_segments(tmp_path)
    rest_entry = rest(T0 + 40 * SECOND)
    with SegmentWriter(tmp_path) as writer:
        writer.append(rest_entry)
    files = segments(tmp_path)
    assert directory_summary(tmp_path) == {
        "directory": str(tmp_path),
        "segments": 4,
        "scanned": 0,
        "first_ns": T0,
        "last_ns": T0 + 40 * SECOND,
        "entries": 151,
        "bytes": sum(f.stat().st_size for f in files),
        "streams": {
            "rest:/fapi/v1/depth?symbol=BTCUSDT&limit=1000": 1,
            **{f"ws:stream{k}": len(g) for k, g in enumerate(groups)},
        },
    }


def test_bad_arguments_raise_and_bad_entries_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="after end_ns"):
        read(tmp_path, start_ns=2, end_ns=1)
    with pytest.raises(TypeError, match="collection"):
        read(tmp_path, streams="btcusdt@aggTrade")
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "missing")
    with pytest.raises(ValueError, match="max_age_s"):
        SegmentWriter(tmp_path, max_age_s=0)
    with SegmentWriter(tmp_path) as writer:
        with pytest.raises(RecorderError, match="in use"):
            SegmentWriter(tmp_path)
        for bad in (
            Entry(T0, "fix", "c", "s", b""),
            Entry(-1, "ws", "c", "s", b""),
            Entry(T0, "ws", "c", "s" * 70_000, b""),
            Entry(T0, "ws", "c", "\udcff", b""),
        ):
            with pytest.raises(ValueError):  # noqa: PT011 - each has its own message
                writer.append(bad)
        writer.append(ws(T0))
    assert list(read(tmp_path)) == [ws(T0)]
    with pytest.raises(RecorderError, match="closed"):
        writer.append(ws(T0))


def test_aggtrade_frames_compress_to_a_few_bytes_each(tmp_path: Path) -> None:
    rng = random.Random(3)
    price = 67_000.0
    entries = []
    for i in range(10_000):
        price += rng.choice((-0.1, 0.0, 0.1))
        ns = T0 + i * 3_000_000 + rng.randrange(1_000_000)
        event_ms = ns // 1_000_000 - rng.randrange(5, 40)
        first_id = 5_100_000_000 + 3 * i
        data = (
            f'{{"e":"aggTrade","E":{event_ms},"a":{2_400_000_000 + i},"s":"BTCUSDT",'
            f'"p":"{price:.1f}","q":"{rng.randrange(1, 5000) / 1000:.3f}","f":{first_id},'
            f'"l":{first_id + rng.randrange(3)},"T":{event_ms - 1},'
            f'"m":{rng.choice(("true", "false"))}}}'
        )
        payload = f'{{"stream":"btcusdt@aggTrade","data":{data}}}'.encode()
        entries.append(Entry(ns, "ws", "usdm-0", "btcusdt@aggTrade", payload))
    with SegmentWriter(tmp_path) as writer:
        for n, entry in enumerate(entries):
            writer.append(entry)
            if n % 1000 == 999:  # a flush a second or so, as the daemon would
                writer.flush()
    size = writer.statistics().bytes_written
    raw = sum(len(e.payload) for e in entries) / len(entries)
    per_entry = size / len(entries)
    print(f"aggTrade: {raw:.0f} B raw, {per_entry:.1f} B/entry on disk ({raw / per_entry:.1f}x)")
    assert per_entry < 40
    assert list(read(tmp_path)) == entries


def test_append_frames_writes_the_bytes_append_writes(tmp_path: Path) -> None:
    frames = [f'{{"stream":"s{i % 3}","data":{{"a":{i}}}}}' for i in range(3000)]
    times = [1_000_000_000 + i * 50_000_000 for i in range(3000)]  # 150 s: rotates at 60 s
    streams = [f"s{i % 3}" for i in range(3000)]
    one, many = tmp_path / "one", tmp_path / "many"
    with SegmentWriter(one, max_segment_s=60, max_block_bytes=4096) as w:
        for f, t, s in zip(frames, times, streams, strict=True):
            w.append(Entry(t, "ws", "usdm-0", s, f.encode()))
    with SegmentWriter(many, max_segment_s=60, max_block_bytes=4096) as w:
        for i in range(0, 3000, 700):
            w.append_frames("usdm-0", frames[i : i + 700], times[i : i + 700], streams[i : i + 700])
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in many.iterdir())
    assert len([n for n in names if n.endswith(".seg.zst")]) == 3
    for name in names:
        if name != "lock":
            assert (one / name).read_bytes() == (many / name).read_bytes(), name


@pytest.mark.parametrize("seed", range(6))
def test_append_frames_cuts_batches_where_entry_by_entry_would(tmp_path: Path, seed: int) -> None:
    """Batches cut by blocks (small ones here), segments (by time and size), new streams
    in the middle of a batch, non-ASCII frames, control frames (stream "") between them:
    the bytes are those of appending entry by entry."""
    rng = random.Random(seed)
    names = ["a@trade", "b@depth@100ms", "", "ü@流", *(f"s{i}@trade" for i in range(20))]
    batches = []
    ns = T0
    for _ in range(120):
        n = rng.randrange(1, 40)
        streams = [rng.choice(names[: rng.randrange(1, len(names))]) for _ in range(n)]
        frames = []
        for stream in streams:
            body = "é" * rng.randrange(3) + "x" * rng.randrange(0, 300)
            frames.append(f'{{"stream":"{stream}","data":"{body}"}}')
        times = []
        for _ in streams:
            ns += rng.randrange(0, SECOND // 20)
            times.append(ns)
        batches.append((f"usdm-{rng.randrange(2)}", frames, times, streams))
    options = {
        "max_segment_s": 2.0,
        "max_segment_bytes": 6000,
        "max_block_bytes": rng.choice((200, 1500, 4096)),
    }
    one, many = tmp_path / "one", tmp_path / "many"
    with SegmentWriter(one, **options) as w:
        for connection, frames, times, streams in batches:
            for f, t, s in zip(frames, times, streams, strict=True):
                w.append(Entry(t, "ws", connection, s, f.encode()))
    with SegmentWriter(many, **options) as w:
        for batch in batches:
            w.append_frames(*batch)
    names_one = sorted(p.name for p in one.iterdir())
    assert names_one == sorted(p.name for p in many.iterdir())
    assert len([n for n in names_one if n.endswith(".seg.zst")]) > 3
    for name in names_one:
        if name != "lock":
            assert (one / name).read_bytes() == (many / name).read_bytes(), name
    expected = [
        Entry(t, "ws", c, s, f.encode())
        for c, frames, times, streams in batches
        for f, t, s in zip(frames, times, streams, strict=True)
    ]
    assert list(read(many)) == expected


@pytest.mark.slow
def test_a_group_whose_stream_table_is_full_goes_on_in_a_new_one(tmp_path: Path) -> None:
    """65,535 streams at most per group (u16 indexes): the next new stream opens a group."""
    n = 65_536 + 10
    streams = [f"s{i}" for i in range(n)]
    frames = [f'{{"stream":"{s}"}}' for s in streams]
    times = [T0 + i for i in range(n)]
    one, many = tmp_path / "one", tmp_path / "many"
    with SegmentWriter(one, max_block_bytes=64 * 1024 * 1024) as w:
        for f, t, s in zip(frames, times, streams, strict=True):
            w.append(Entry(t, "ws", "c", s, f.encode()))
    with SegmentWriter(many, max_block_bytes=64 * 1024 * 1024) as w:
        w.append_frames("c", frames[:10], times[:10], streams[:10])
        w.append_frames("c", frames[10:], times[10:], streams[10:])
    (segment,) = segments(one)
    assert segment.read_bytes() == segments(many)[0].read_bytes()
    with segment.open("rb") as f:
        raw = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
    expected = [
        Entry(t, "ws", "c", s, f.encode()) for f, t, s in zip(frames, times, streams, strict=True)
    ]
    assert raw == group(expected[:65_535]) + group(expected[65_535:])
    assert list(read(many)) == expected


@pytest.mark.parametrize(
    ("bounds", "streams"),
    [
        ((None, None), None),
        ((T0 + 57_500_000, T0 + 351_000_000), None),  # cuts groups within
        ((None, None), {"btcusdt@aggTrade", "x", "/fapi/v1/depth?symbol=Ä1"}),
        ((T0 + 120_000_000, None), {"bücher@流"}),
        ((T0 + 9 * SECOND, None), None),  # nothing
    ],
)
def test_blocks_as_columns_hold_what_read_reads(
    tmp_path: Path, bounds: tuple[int | None, int | None], streams: set[str] | None
) -> None:
    """read_blocks: the entries read gives, in order, as columns of one kind and
    connection each, over both format versions, with a damaged block counted alike."""
    entries = mixed_entries(400)
    old = file_header(1) + block(b"".join(map(record, entries[:150])))
    (tmp_path / f"{T0:020d}-000001.seg.zst").write_bytes(old)
    with SegmentWriter(tmp_path, max_block_bytes=2_000) as writer:
        for entry in entries[150:]:
            writer.append(entry)
    newer = segments(tmp_path)[1]
    data = bytearray(newer.read_bytes())
    first, last = block_offsets(newer)[1]
    data[(first + last) // 2] ^= 0xFF  # a flipped byte in a version 2 block
    newer.write_bytes(bytes(data))
    start, end = bounds
    reading = read(tmp_path, start_ns=start, end_ns=end, streams=streams)
    expected = list(reading)
    blocks = read_blocks(tmp_path, start_ns=start, end_ns=end, streams=streams)
    got = list(blocks)
    assert [e for b in got for c in b for e in c.entries()] == expected
    assert all(len(c) for b in got for c in b)  # no empty columns or blocks
    for columns in (c for b in got for c in b):
        assert len(columns.ids) == len(columns.payloads) == len(columns)
        assert {e.kind for e in columns.entries()} == {columns.kind}
    assert blocks.statistics() == reading.statistics()
    if bounds == (None, None):  # every segment read
        assert reading.statistics().corrupt_blocks == 1
        assert 0 < len(expected) < 400
