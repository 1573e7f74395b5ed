"""Append, read and ack in order across segment rollover; the bound; statistics."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from spoolkit import read_all, record, records, segment_files, settings

from marketd.config.validators import InvalidValue
from marketd.spool import AckWindow, Position, Spool, SpoolError, SpoolFull, SpoolSettings
from marketd.spool import format as fmt


def test_order_across_rollover_and_acks_delete_segments(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path)) as spool:
        for first in range(1, 1001, 50):
            spool.append(records(first, 50))
        assert len(segment_files(tmp_path)) > 20  # 4 KiB segments: many rollovers
        got = read_all(spool, batch=77)
        assert [r.seq for _, r in got] == list(range(1, 1001))
        assert got == sorted(got)
        assert [p.seq for p, _ in got] == list(range(1, 1001))
        assert all(p.end <= os.path.getsize(tmp_path / fmt.segment_name(p.segment)) for p, _ in got)
        st = spool.statistics()
        assert (st.records_pending, st.records_unread, st.appended) == (1000, 0, 1000)
        assert st.oldest_pending_age_s > 0

        spool.ack(got[499][0])
        st = spool.statistics()
        assert (st.records_pending, st.acknowledged, st.ack_seq) == (500, 500, 500)
        # Every segment wholly below the ack is gone; the one holding seq 501 remains.
        firsts = [int(p.name[:20]) for p in segment_files(tmp_path)]
        assert firsts[0] <= 501 < (firsts[1] if len(firsts) > 1 else 10**9)
        assert st.bytes == sum(p.stat().st_size for p in segment_files(tmp_path))

        spool.ack(got[-1][0])
        assert spool.statistics().records_pending == 0
        assert len(segment_files(tmp_path)) == 1  # only the active segment stays
        assert spool.statistics().oldest_pending_age_s == 0.0
        spool.append(records(1001, 3))
        assert [r.seq for _, r in spool.read(10)] == [1001, 1002, 1003]


def test_records_round_trip_exactly(tmp_path: Path) -> None:
    originals = [record(n, size=n * 37 % 900) for n in range(1, 200)]
    with Spool.open(settings(tmp_path)) as spool:
        spool.append(originals)
        assert [r for _, r in read_all(spool)] == originals


def test_an_entry_larger_than_a_segment_gets_a_segment_of_its_own(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path)) as spool:
        spool.append([record(1), record(2, size=20_000), record(3)])
        assert [r.seq for _, r in read_all(spool)] == [1, 2, 3]
    with Spool.open(settings(tmp_path)) as spool:
        assert [r.value for _, r in read_all(spool)][1] == record(2, size=20_000).value


def test_ack_beyond_what_was_read_is_refused(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path)) as spool:
        spool.append(records(1, 10))
        got = spool.read(5)
        with pytest.raises(ValueError, match="read only up to 5"):
            spool.ack(Position(6, got[0][0].segment, 0))
        spool.ack(got[2][0])
        spool.ack(got[1][0])  # older: no-op
        assert spool.statistics().ack_seq == 3


def test_rewind_reads_unacked_again(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path)) as spool:
        spool.append(records(1, 100))
        got = read_all(spool)
        spool.ack(got[39][0])
        spool.rewind()
        assert [r.seq for _, r in read_all(spool)] == list(range(41, 101))


def test_full_spool_refuses_whole_batches_until_acks_free_space(tmp_path: Path) -> None:
    s = settings(tmp_path, segment_bytes=4096, max_bytes=16384)
    with Spool.open(s) as spool:
        n = 0
        refused = False
        while not refused:
            try:
                spool.append(records(n + 1, 5))
            except SpoolFull as exc:
                refused = "max_bytes" in str(exc)
            else:
                n += 5
        st = spool.statistics()
        assert st.full
        assert st.refused_appends == 1
        assert st.bytes <= 16384
        assert st.bytes > 16384 - 4096  # usable: at least max_bytes - segment_bytes
        got = read_all(spool)
        assert [r.seq for _, r in got] == list(range(1, n + 1))  # the refused batch: none
        spool.ack(got[-1][0])
        assert not spool.statistics().full
        spool.append(records(n + 1, 5))
        assert [r.seq for _, r in spool.read(10)] == list(range(n + 1, n + 6))


def test_a_batch_larger_than_the_bound_is_refused(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path, max_bytes=8192)) as spool:
        with pytest.raises(SpoolFull):
            spool.append(records(1, 100))
        assert spool.statistics().appended == 0
        assert read_all(spool) == []


def test_one_process_per_directory(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path)), pytest.raises(SpoolError, match="in use"):
        Spool.open(settings(tmp_path))
    Spool.open(settings(tmp_path)).close()  # released by close


def test_closed_spool_refuses_use(tmp_path: Path) -> None:
    spool = Spool.open(settings(tmp_path))
    spool.close()
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.append(records(1, 1))


def test_sync_reports_the_durable_seq_and_runs_beside_appends(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path)) as spool:
        assert spool.sync() == 0
        spool.append(records(1, 10))
        assert spool.sync() == 10
        errors: list[BaseException] = []
        stop = threading.Event()

        def syncing() -> None:
            try:
                while not stop.is_set():
                    spool.sync()
            except BaseException as exc:  # reported below
                errors.append(exc)

        t = threading.Thread(target=syncing)
        t.start()
        try:
            for first in range(11, 3011, 20):
                spool.append(records(first, 20))
                if first % 200 == 11:
                    spool.ack(read_all(spool)[-1][0])
        finally:
            stop.set()
            t.join()
        assert not errors
        assert spool.sync() == 3010
        assert spool.statistics().synced_seq == 3010


def test_appends_and_syncs_are_counted(tmp_path: Path) -> None:
    """The per-batch work, whatever the records: each append (one write), each sync that
    had something to make durable (one that had nothing is not an fsync)."""
    with Spool.open(settings(tmp_path)) as spool:
        spool.sync()  # the new segment's directory entry
        base = spool.statistics().syncs
        spool.sync()  # nothing to do
        assert spool.statistics().syncs == base
        spool.append(records(1, 10))
        spool.append(records(11, 1))
        spool.append([])
        st = spool.statistics()
        assert (st.appends, st.appended, st.syncs) == (2, 11, base)
        spool.sync()
        spool.sync()  # nothing new
        assert spool.statistics().syncs == base + 1
        spool.ack(read_all(spool)[-1][0])  # the ack checkpoint to make durable
        spool.sync()
        spool.sync()
        assert spool.statistics().syncs == base + 2


def test_ack_window_acks_the_settled_prefix_only(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path)) as spool:
        spool.append(records(1, 6))
        window = AckWindow()
        sent = window.sent(spool.read(6))
        assert window.settled([sent[1], sent[2]]) is None  # record 1 is still out
        pos = window.settled([sent[0]])
        assert pos is not None
        assert pos.seq == 3
        assert window.settled(sent[4:]) is None
        pos = window.settled([sent[3]])
        assert pos is not None
        assert pos.seq == 6
        assert len(window) == 0


def test_settings_bound_must_hold_two_segments() -> None:
    with pytest.raises(InvalidValue, match="2 \\* segment_bytes"):
        SpoolSettings(segment_bytes=1 << 20, max_bytes=1 << 20)
    assert record(1).__struct_fields__ == fmt.RECORD_FIELDS


def test_metrics_pass_promtool(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.registry import Collector

    with Spool.open(settings(tmp_path)) as spool:
        spool.append(records(1, 10))

        class _C(Collector):
            def collect(self):  # type: ignore[no-untyped-def]
                return spool.metrics()

        registry = CollectorRegistry()
        registry.register(_C())
        text = generate_latest(registry)
        assert b"marketd_spool_records_pending 10.0" in text
        assert b"marketd_spool_records_appended_total 10.0" in text
        assert b"marketd_spool_appends_total 1.0" in text
        spool.sync()
        text = generate_latest(registry)
        assert b"marketd_spool_syncs_total 1.0" in text
        if (promtool := shutil.which("promtool")) is None:
            pytest.skip("promtool not installed")
        subprocess.run([promtool, "check", "metrics"], input=text, check=True)


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    import resource
    import signal

    with Spool.open(settings(tmp_path, segment_bytes=1 << 16)) as spool:
        spool.append(records(1, 10))
        before = {p.name: p.read_bytes() for p in segment_files(tmp_path)}
        size = max(p.stat().st_size for p in segment_files(tmp_path))
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 3000, hard))
        try:  # the write stops part-way (a short write, then EFBIG)
            with pytest.raises(SpoolError, match="cannot write"):
                spool.append(records(11, 60))
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, old)
        assert {p.name: p.read_bytes() for p in segment_files(tmp_path)} == before
        assert spool.statistics().next_seq == 11
        spool.append(records(11, 60))
        assert [r.seq for _, r in read_all(spool)] == list(range(1, 71))
