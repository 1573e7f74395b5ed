"""The hot tail: a reader that keeps up gets the appended records from memory, with the
same positions a read from the files gives; one that falls behind reads the files."""

from __future__ import annotations

from pathlib import Path

import pytest
from spoolkit import read_all, records, settings

from marketd.spool import Spool
from marketd.spool import spool as spool_module


def test_records_from_memory_carry_the_positions_the_files_give(tmp_path: Path) -> None:
    appended = [records(first, 37) for first in range(1, 1000, 37)]  # many 4 KiB segments
    with Spool.open(settings(tmp_path)) as spool:
        hot = []
        for batch in appended:
            spool.append(batch)
            hot += spool.read(1000)
        # The very objects appended: nothing was read back from the files.
        assert [id(r) for _, r in hot] == [id(r) for batch in appended for r in batch]
        assert spool.statistics().records_unread == 0
    with Spool.open(settings(tmp_path)) as reopened:  # nothing acked: all read from disk
        cold = read_all(reopened)
    assert [p for p, _ in hot] == [p for p, _ in cold]
    assert [r for _, r in hot] == [r for _, r in cold]
    assert [p.seq for p, _ in cold] == list(range(1, 1000))


def test_a_reader_that_falls_behind_reads_the_files_then_catches_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "HOT_TAIL_RECORDS", 100)
    with Spool.open(settings(tmp_path)) as spool:
        first = records(1, 60)
        spool.append(first)
        got = spool.read(10)
        assert [id(r) for _, r in got] == [id(r) for r in first[:10]]
        spool.append(records(61, 60))  # 50 unread + 60 > 100: the memory copy is dropped
        behind = read_all(spool, batch=7)
        assert [r.seq for _, r in behind] == list(range(11, 121))
        assert all(a is not b for (_, a), b in zip(behind, first[10:], strict=False))
        assert [p.seq for p, _ in behind] == list(range(11, 121))
        # Caught up: the next appends are handed over from memory again.
        latest = records(121, 5)
        spool.append(latest)
        again = spool.read(100)
        assert [id(r) for _, r in again] == [id(r) for r in latest]
        assert again[0][0].end > behind[-1][0].end or again[0][0].segment > behind[-1][0].segment
        spool.ack(again[-1][0])
        assert spool.statistics().records_pending == 0


def test_rewind_drops_the_memory_copy_and_rereads_what_is_unacked(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path)) as spool:
        batch = records(1, 30)
        spool.append(batch)
        got = spool.read(30)
        spool.ack(got[9][0])
        spool.append(records(31, 5))  # unread, in memory
        spool.rewind()
        again = read_all(spool)
        assert [r.seq for _, r in again] == list(range(11, 36))
        assert [p for p, _ in again[:20]] == [p for p, _ in got[10:]]
