"""A real ``kill -9``: every synced record is there after restart, exactly once, in order;
records not acked are delivered again; nothing acked before the last report is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from spoolkit import read_all, settings

from marketd.spool import Spool

HERE = Path(__file__).parent


def _run_and_kill(directory: Path, min_reports: int) -> tuple[int, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, str(HERE / "spool_writer.py"), str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    synced = acked = 0
    reports = 0
    deadline = time.monotonic() + 60
    try:
        for line in child.stdout:
            if not line.startswith("synced "):
                continue  # the spool's own log lines
            synced, acked = (int(x) for x in line.split()[1::2])
            reports += 1
            if reports >= min_reports:
                child.send_signal(signal.SIGKILL)  # mid-loop: appending, acking or syncing
                break
            assert time.monotonic() < deadline, "the writer is too slow"
        for line in child.stdout:  # lines written before the kill landed
            if line.startswith("synced ") and len(line.split()) == 4:
                synced, acked = (int(x) for x in line.split()[1::2])
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return synced, acked


def test_kill_9_loses_nothing_synced_and_redelivers_unacked(tmp_path: Path) -> None:
    for round_ in range(3):  # each child carries on from what the last one left
        synced, acked = _run_and_kill(tmp_path, min_reports=150 + 37 * round_)
        assert synced > acked
        with Spool.open(settings(tmp_path, segment_bytes=1 << 16, max_bytes=1 << 30)) as spool:
            st = spool.statistics()
            got = read_all(spool, batch=5000)
        seqs = [r.seq for _, r in got]
        # Exactly once, in order: the records after the checkpointed ack, contiguous.
        assert seqs == list(range(st.ack_seq + 1, st.ack_seq + 1 + len(seqs)))
        assert [p.seq for p, _ in got] == seqs
        assert seqs[-1] >= synced  # every synced record is there (and more: page cache)
        assert st.ack_seq >= acked  # nothing reported acked comes again
        assert st.records_pending == len(seqs)
        assert st.corrupted_entries == 0
