"""Recovery at open: torn tails truncated, damaged entries counted and skipped, the ack
checkpoint honoured (and its loss survived)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from spoolkit import read_all, records, segment_files, settings

from marketd.spool import Spool
from marketd.spool import format as fmt
from marketd.spool.checkpoint import CHECKPOINT_FILE


def _fill(directory: Path, count: int, **kw: int) -> None:
    with Spool.open(settings(directory, **kw)) as spool:
        spool.append(records(1, count))


def _entry_offsets(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes()
    entries, _, why = fmt.scan(data, fmt.SEGMENT_HEADER_SIZE, len(data), 1 << 30)
    assert why is fmt.Scan.END
    return [(p0 - fmt.ENTRY_HEADER_SIZE, p1) for _, p0, p1 in entries]


@pytest.mark.parametrize("cut", [1, fmt.ENTRY_HEADER_SIZE - 1, fmt.ENTRY_HEADER_SIZE + 3, -1])
def test_torn_tail_is_truncated(tmp_path: Path, cut: int) -> None:
    _fill(tmp_path, 5, segment_bytes=1 << 16)
    (path,) = segment_files(tmp_path)
    start, end = _entry_offsets(path)[-1]
    size = path.stat().st_size
    os.truncate(path, start + cut if cut > 0 else end + cut)  # cut the last entry short
    with Spool.open(settings(tmp_path, segment_bytes=1 << 16)) as spool:
        st = spool.statistics()
        assert st.truncated_bytes == (start + cut if cut > 0 else end + cut) - start
        assert st.corrupted_entries == 0
        assert path.stat().st_size == start
        assert [r.seq for _, r in read_all(spool)] == [1, 2, 3, 4]
        spool.append(records(6, 2))  # appends go on behind the truncated tail
        assert [r.seq for _, r in read_all(spool)] == [6, 7]
    assert size > start


def test_zero_filled_tail_after_power_loss_is_truncated(tmp_path: Path) -> None:
    _fill(tmp_path, 5, segment_bytes=1 << 16)
    (path,) = segment_files(tmp_path)
    with path.open("ab") as f:
        f.write(bytes(3000))
    with Spool.open(settings(tmp_path, segment_bytes=1 << 16)) as spool:
        assert spool.statistics().truncated_bytes == 3000
        assert [r.seq for _, r in read_all(spool)] == [1, 2, 3, 4, 5]


def _flip(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))


@pytest.mark.parametrize("where", ["payload", "length", "magic"])
def test_flipped_bytes_in_the_middle_are_counted_and_skipped(tmp_path: Path, where: str) -> None:
    _fill(tmp_path, 60)  # 4 KiB segments: several
    victim = segment_files(tmp_path)[1]  # a sealed segment in the middle
    offsets = _entry_offsets(victim)
    start, end = offsets[2]
    lost = int.from_bytes(victim.read_bytes()[start + 12 : start + 20], "little")
    _flip(victim, {"payload": end - 5, "length": start + 9, "magic": start}[where])
    with Spool.open(settings(tmp_path)) as spool:
        got = read_all(spool)
        assert [r.seq for _, r in got] == [n for n in range(1, 61) if n != lost]
        st = spool.statistics()
        assert st.corrupted_entries == 1
        assert st.corrupted_bytes == end - start
        assert st.records_pending == 59  # the lost one is not pending
        spool.ack(got[-1][0])
        st = spool.statistics()
        assert (st.records_pending, st.acknowledged) == (0, 59)


def test_damage_in_the_last_segment_middle_is_skipped_not_truncated(tmp_path: Path) -> None:
    _fill(tmp_path, 10, segment_bytes=1 << 16)
    (path,) = segment_files(tmp_path)
    start, _ = _entry_offsets(path)[4]
    _flip(path, start + 30)
    with Spool.open(settings(tmp_path, segment_bytes=1 << 16)) as spool:
        assert [r.seq for _, r in read_all(spool)] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
        st = spool.statistics()
        assert (st.corrupted_entries, st.truncated_bytes) == (1, 0)


def test_a_damaged_segment_header_is_counted_entries_still_read(tmp_path: Path) -> None:
    _fill(tmp_path, 10, segment_bytes=1 << 16)
    (path,) = segment_files(tmp_path)
    _flip(path, 3)
    with Spool.open(settings(tmp_path, segment_bytes=1 << 16)) as spool:
        assert [r.seq for _, r in read_all(spool)] == list(range(1, 11))
        assert spool.statistics().corrupted_entries == 1


def test_reopen_resumes_after_the_checkpointed_ack(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path)) as spool:
        spool.append(records(1, 100))
        got = read_all(spool)
        spool.ack(got[62][0])
        # not synced, not closed: a kill -9 now (the page cache survives)
        spool._close_fds()
    with Spool.open(settings(tmp_path)) as spool:
        st = spool.statistics()
        assert (st.ack_seq, st.records_pending, st.next_seq) == (63, 37, 101)
        assert [r.seq for _, r in read_all(spool)] == list(range(64, 101))
        spool.append(records(101, 1))
        assert [r.seq for _, r in spool.read(5)] == [101]


def test_segments_acked_but_not_deleted_before_a_crash_go_at_open(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path)) as spool:
        spool.append(records(1, 100))
        kept = {p.name: p.read_bytes() for p in segment_files(tmp_path)}
        spool.ack(read_all(spool)[79][0])
    for name, data in kept.items():  # as if the deletions had not happened
        (tmp_path / name).write_bytes(data)
    with Spool.open(settings(tmp_path)) as spool:
        assert [r.seq for _, r in read_all(spool)] == list(range(81, 101))
        assert len(segment_files(tmp_path)) < len(kept)


def test_a_spoiled_checkpoint_replays_everything_present(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path, segment_bytes=1 << 16)) as spool:
        spool.append(records(1, 20))
        spool.ack(read_all(spool)[9][0])
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"\xff" * 1024)
    with Spool.open(settings(tmp_path, segment_bytes=1 << 16)) as spool:
        assert spool.statistics().checkpoint_corrupted
        assert [r.seq for _, r in read_all(spool)] == list(range(1, 21))


def test_one_torn_checkpoint_slot_falls_back_to_the_other(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path, segment_bytes=1 << 16)) as spool:
        spool.append(records(1, 20))
        got = read_all(spool)
        spool.ack(got[4][0])  # generation 1: slot 1
        spool.ack(got[9][0])  # generation 2: slot 0
    _flip(tmp_path / CHECKPOINT_FILE, 20)  # spoil slot 0 (the newest)
    with Spool.open(settings(tmp_path, segment_bytes=1 << 16)) as spool:
        st = spool.statistics()
        assert st.ack_seq == 5
        assert not st.checkpoint_corrupted
        assert [r.seq for _, r in read_all(spool)] == list(range(6, 21))


def test_a_segment_torn_at_creation_is_removed(tmp_path: Path) -> None:
    _fill(tmp_path, 30)
    last = segment_files(tmp_path)[-1]
    seq_next = 31
    (tmp_path / fmt.segment_name(seq_next)).write_bytes(b"MKDSP")  # torn header
    with Spool.open(settings(tmp_path)) as spool:
        assert [r.seq for _, r in read_all(spool)] == list(range(1, 31))
        spool.append(records(31, 2))
        assert [r.seq for _, r in read_all(spool)] == [31, 32]
    assert last.exists()


def test_an_unreadable_segment_header_only_file_at_the_tail(tmp_path: Path) -> None:
    _fill(tmp_path, 3, segment_bytes=1 << 16)
    (tmp_path / fmt.segment_name(4)).write_bytes(fmt.segment_header())  # empty segment
    with Spool.open(settings(tmp_path, segment_bytes=1 << 16)) as spool:
        spool.append(records(4, 1))
        assert [r.seq for _, r in read_all(spool)] == [1, 2, 3, 4]
