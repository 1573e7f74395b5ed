"""The spool's on-disk format over bytes (pure): names, headers, entries, scan, resync.

Entries are built here byte by byte from the documented layout, independently of
``encode_entries``, so a change to the layout fails these tests rather than passing both
sides of a round trip.
"""

from __future__ import annotations

import struct
import zlib

import msgspec
import pytest
from spoolkit import record

from marketd.data.records import Market, Record
from marketd.spool import format as fmt


def entry(seq: int, payload: bytes, *, magic: bytes = fmt.ENTRY_MAGIC) -> bytes:
    """One entry as the module doc describes it: magic | crc32 | length | seq | payload."""
    body = struct.pack("<IQ", len(payload), seq) + payload
    return magic + struct.pack("<I", zlib.crc32(body)) + body


def forged_header(length: int, seq: int = 1) -> bytes:
    """An entry header announcing ``length`` payload bytes (checksum of the header part)."""
    body = struct.pack("<IQ", length, seq)
    return fmt.ENTRY_MAGIC + struct.pack("<I", zlib.crc32(body)) + body


def small(n: int) -> Record:
    return record(n, size=16)


# -- segment names ----------------------------------------------------------------------


def test_segment_name_is_twenty_digits_and_parses_back() -> None:
    assert fmt.segment_name(42) == "00000000000000000042.seg"
    assert fmt.parse_segment_name("00000000000000000042.seg") == 42
    assert fmt.parse_segment_name(fmt.segment_name(0)) == 0
    assert fmt.parse_segment_name(fmt.segment_name(10**19)) == 10**19


@pytest.mark.parametrize(
    "name",
    [
        "42.seg",
        "0" * 21 + ".seg",
        "0000000000000000004x.seg",
        "-0000000000000000042.seg",
        "00000000000000000042.sig",
        "00000000000000000042.seg.tmp",  # a temporary file next to segments
        "00000000000000000042.",
        "00000000000000000042",
        "00000000000000000042seg",
        "checkpoint.json",
        # Unicode digits that str.isdigit() accepts: not names segment_name() writes.
        "\u00b2" * 20 + ".seg",
        "\u0660" * 19 + "\u0667.seg",
    ],
)
def test_other_names_are_not_segments(name: str) -> None:
    assert fmt.parse_segment_name(name) is None


# -- segment header ---------------------------------------------------------------------


def test_segment_header_bytes() -> None:
    head = b"MKDSPOOL" + (1).to_bytes(2, "little") + bytes(2)
    expected = head + zlib.crc32(head).to_bytes(4, "little")
    assert fmt.segment_header() == expected
    assert fmt.SEGMENT_HEADER_SIZE == len(expected) == 16


def test_a_valid_header_checks_with_or_without_entries_behind_it() -> None:
    header = fmt.segment_header()
    assert fmt.check_segment_header(header) is None
    assert fmt.check_segment_header(header + entry(1, b"x")) is None


@pytest.mark.parametrize("size", [0, 1, 15])
def test_a_short_header_is_reported(size: int) -> None:
    assert fmt.check_segment_header(fmt.segment_header()[:size]) == "short segment header"


@pytest.mark.parametrize("offset", range(16))
def test_any_flipped_header_byte_is_a_bad_header(offset: int) -> None:
    header = bytearray(fmt.segment_header())
    header[offset] ^= 0x01
    assert fmt.check_segment_header(bytes(header)) == "bad segment header"


def test_another_magic_with_a_valid_checksum_is_a_bad_header() -> None:
    head = b"MKDSPOOX" + struct.pack("<HH", 1, 0)
    assert fmt.check_segment_header(head + struct.pack("<I", zlib.crc32(head))) == (
        "bad segment header"
    )


def test_another_format_version_is_named() -> None:
    head = b"MKDSPOOL" + struct.pack("<HH", 2, 0)
    header = head + struct.pack("<I", zlib.crc32(head))
    assert fmt.check_segment_header(header) == "segment format version 2, this marketd reads 1"


# -- encoding ---------------------------------------------------------------------------


def test_entries_are_appended_in_the_documented_layout_with_dense_seqs() -> None:
    buf = bytearray(b"prefix")
    records = [small(1), small(2), small(3)]
    ends = fmt.encode_entries(records, 7, buf)
    expected = b"prefix" + b"".join(
        entry(seq, msgspec.msgpack.encode(r)) for seq, r in zip((7, 8, 9), records, strict=True)
    )
    assert bytes(buf) == expected
    sizes = [fmt.ENTRY_HEADER_SIZE + len(msgspec.msgpack.encode(r)) for r in records]
    assert ends == [6 + sizes[0], 6 + sizes[0] + sizes[1], len(expected)]


def test_no_records_append_nothing() -> None:
    buf = bytearray(b"x")
    assert fmt.encode_entries([], 5, buf) == []
    assert buf == b"x"


def test_payload_is_the_record_fields_in_declaration_order() -> None:
    buf = bytearray()
    r = Record("t", b"k", b"v", (("h", b"1"),), 5, Market.USDM, "trade", "BTCUSDT", 9)
    fmt.encode_entries([r], 1, buf)
    payload = bytes(buf[fmt.ENTRY_HEADER_SIZE :])
    fields = ["t", b"k", b"v", [["h", b"1"]], 5, "usdm", "trade", "BTCUSDT", 9]
    assert msgspec.msgpack.decode(payload) == fields
    assert fmt.decode_record(payload) == r


def test_decode_record_rejects_a_payload_that_is_not_a_record() -> None:
    with pytest.raises(msgspec.DecodeError):
        fmt.decode_record(b"\xc1")
    with pytest.raises(msgspec.ValidationError):
        fmt.decode_record(msgspec.msgpack.encode([1, 2]))


def _record_with_payload(length: int) -> Record:
    """A record whose msgpack payload is exactly ``length`` bytes (length > 64 KiB)."""
    empty = len(msgspec.msgpack.encode(msgspec.structs.replace(small(1), value=b"")))
    # An empty bin is 2 bytes (bin8); a large one has a 5-byte header (bin32).
    r = msgspec.structs.replace(small(1), value=bytes(length - empty - 3))
    assert len(msgspec.msgpack.encode(r)) == length
    return r


def test_a_payload_of_max_payload_bytes_is_the_largest_accepted() -> None:
    buf = bytearray()
    ends = fmt.encode_entries([_record_with_payload(fmt.MAX_PAYLOAD)], 1, buf)
    assert ends == [fmt.ENTRY_HEADER_SIZE + fmt.MAX_PAYLOAD]
    del buf
    with pytest.raises(ValueError, match=f"{fmt.MAX_PAYLOAD + 1} B exceeds the spool's entry"):
        fmt.encode_entries([_record_with_payload(fmt.MAX_PAYLOAD + 1)], 1, bytearray())


# -- scanning ---------------------------------------------------------------------------


def _three() -> tuple[bytes, list[int]]:
    """Three entries (seq 5, 6, 7) behind a 3-byte lead-in, and each entry's end."""
    parts = [b"abc", entry(5, b"first"), entry(6, b""), entry(7, b"third!")]
    ends = []
    size = 0
    for part in parts:
        size += len(part)
        ends.append(size)
    return b"".join(parts), ends[1:]


def test_scan_returns_seq_payload_start_and_end_of_each_entry() -> None:
    data, (e1, e2, e3) = _three()
    h = fmt.ENTRY_HEADER_SIZE
    got = fmt.scan(data, 3, len(data), 100)
    assert got == ([(5, 3 + h, e1), (6, e1 + h, e2), (7, e2 + h, e3)], e3, fmt.Scan.END)
    assert data[3 + h : e1] == b"first"
    assert data[e2 + h : e3] == b"third!"


def test_scan_accepts_a_memoryview() -> None:
    data, _ = _three()
    assert fmt.scan(memoryview(data), 3, len(data), 100) == fmt.scan(data, 3, len(data), 100)


def test_scan_stops_after_max_entries() -> None:
    data, (e1, e2, _) = _three()
    h = fmt.ENTRY_HEADER_SIZE
    assert fmt.scan(data, 3, len(data), 2) == (
        [(5, 3 + h, e1), (6, e1 + h, e2)],
        e2,
        fmt.Scan.LIMIT,
    )
    assert fmt.scan(data, 3, len(data), 0) == ([], 3, fmt.Scan.LIMIT)
    # Nothing left to read is the end, whatever the limit.
    assert fmt.scan(data, e1, e1, 0) == ([], e1, fmt.Scan.END)


def test_scan_of_a_range_reads_only_that_range() -> None:
    data, (e1, e2, _) = _three()
    assert fmt.scan(data, e1, e2, 100) == ([(6, e2, e2)], e2, fmt.Scan.END)


def test_an_empty_payload_entry_is_exactly_a_header() -> None:
    data = entry(9, b"")
    assert len(data) == fmt.ENTRY_HEADER_SIZE
    assert fmt.scan(data, 0, len(data), 10) == ([(9, 20, 20)], 20, fmt.Scan.END)


@pytest.mark.parametrize("cut", [1, fmt.ENTRY_HEADER_SIZE - 1, fmt.ENTRY_HEADER_SIZE, 24])
def test_an_entry_cut_short_is_short_not_bad(cut: int) -> None:
    data, (e1, _, _) = _three()  # the first entry has 5 payload bytes: 25 in all
    end = 3 + cut
    assert fmt.scan(data[:end], 3, end, 100) == ([], 3, fmt.Scan.SHORT)
    assert fmt.scan(data[: e1 + 1], 3, e1 + 1, 100)[1:] == (e1, fmt.Scan.SHORT)


def test_scan_honours_end_inside_the_data() -> None:
    data, (e1, e2, e3) = _three()
    # The bytes behind `end` are there, but an entry crossing `end` is short.
    assert fmt.scan(data, 3, e3 - 1, 100)[1:] == (e2, fmt.Scan.SHORT)
    assert fmt.scan(data, 3, e1 + 5, 100)[1:] == (e1, fmt.Scan.SHORT)


def test_a_length_up_to_max_payload_waits_for_more_bytes_beyond_it_is_bad() -> None:
    data = forged_header(fmt.MAX_PAYLOAD)
    assert fmt.scan(data, 0, len(data), 10) == ([], 0, fmt.Scan.SHORT)
    data = forged_header(fmt.MAX_PAYLOAD + 1)
    assert fmt.scan(data, 0, len(data), 10) == ([], 0, fmt.Scan.BAD)


@pytest.mark.parametrize("where", ["magic", "crc", "length", "seq", "payload"])
def test_a_damaged_entry_is_bad_at_its_offset(where: str) -> None:
    data, (e1, e2, _) = _three()
    offset = {"magic": 0, "crc": 4, "length": 8, "seq": 12, "payload": 22}[where]
    damaged = bytearray(data)
    damaged[e2 + offset] ^= 0x04  # the third entry; the checksum covers length and seq
    h = fmt.ENTRY_HEADER_SIZE
    assert fmt.scan(bytes(damaged), 3, len(data), 100) == (
        [(5, 3 + h, e1), (6, e1 + h, e2)],
        e2,
        fmt.Scan.BAD,
    )


def test_a_zero_filled_tail_is_bad() -> None:
    data = entry(1, b"x") + bytes(100)
    assert fmt.scan(data, 0, len(data), 10) == ([(1, 20, 21)], 21, fmt.Scan.BAD)


# -- resynchronising ----------------------------------------------------------------------


def test_resync_finds_the_next_valid_entry_after_garbage() -> None:
    good = entry(3, b"payload")
    data = b"\x00junk" + good + entry(4, b"")
    assert fmt.resync(data, 0, len(data)) == 5


def test_resync_looks_from_the_byte_after_pos() -> None:
    data = entry(1, b"a") + entry(2, b"b")
    # A valid entry at `pos` itself is not "after" it: the next one is.
    assert fmt.resync(data, 0, len(data)) == len(entry(1, b"a"))
    shifted = b"?" + data
    assert fmt.resync(shifted, 0, len(shifted)) == 1


def test_resync_skips_a_magic_that_does_not_start_a_valid_entry() -> None:
    fake = fmt.ENTRY_MAGIC + b"\x00" * 30
    data = b"x" + fake + entry(8, b"real")
    assert fmt.resync(data, 0, len(data)) == 1 + len(fake)


def test_resync_needs_the_whole_entry_before_end() -> None:
    good = entry(3, b"payload")
    data = b"junk" + good
    assert fmt.resync(data, 0, len(data)) == 4
    assert fmt.resync(data, 0, len(data) - 1) is None
    assert fmt.resync(memoryview(data), 0, len(data) - 1) is None
    assert fmt.resync(data, 4, len(data)) is None  # nothing after the entry at pos
    assert fmt.resync(b"no entries here", 0, 15) is None


def test_resync_accepts_a_memoryview() -> None:
    data = b"\xff\xfe" + entry(3, b"p") + b"tail"
    assert fmt.resync(memoryview(data), 0, len(data)) == 2
