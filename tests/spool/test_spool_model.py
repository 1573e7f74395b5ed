"""Random append / read / ack / rewind / sync / reopen / crash sequences against an
in-memory model: what is read is always the model's next records, in order."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from spoolkit import record, settings

from marketd.spool import Position, Spool, SpoolFull


class SpoolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.settings = settings(self.dir, segment_bytes=4096, max_bytes=24 * 1024)
        self.spool = Spool.open(self.settings)
        self.appended: list[int] = []  # record numbers, in append order
        self.acked = 0  # how many of them are acknowledged (a prefix)
        self.read = 0  # how many have been read since the last rewind/reopen
        self.positions: list[Position] = []  # of records read, not acked
        self.next = 1

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.dir)

    @rule(count=st.integers(0, 30), size=st.integers(0, 700))
    def append(self, count: int, size: int) -> None:
        batch = [record(n, size) for n in range(self.next, self.next + count)]
        try:
            self.spool.append(batch)
        except SpoolFull:
            assert self.spool.statistics().full
            return
        self.appended.extend(r.seq for r in batch)
        self.next += count

    @rule(count=st.integers(1, 50))
    def read_some(self, count: int) -> None:
        got = self.spool.read(count)
        want = self.appended[self.read : self.read + count]
        assert [r.seq for _, r in got] == want
        assert all(r == record(r.seq, len(r.value)) for _, r in got)
        self.positions.extend(p for p, _ in got)
        self.read += len(got)

    @precondition(lambda self: self.positions)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.positions) - 1))
        self.spool.ack(self.positions[i])
        self.acked = self.read - len(self.positions) + i + 1
        del self.positions[: i + 1]

    @rule()
    def rewind(self) -> None:
        self.spool.rewind()
        self._back_to_ack()

    @rule()
    def sync(self) -> None:
        assert self.spool.sync() == self.spool.statistics().next_seq - 1

    @rule(clean=st.booleans())
    def reopen(self, clean: bool) -> None:
        if clean:
            self.spool.close()
        else:
            self.spool._close_fds()  # kill -9: no sync, the page cache survives
        self.spool = Spool.open(self.settings)
        self._back_to_ack()

    def _back_to_ack(self) -> None:
        self.read = self.acked
        self.positions = []

    @invariant()
    def statistics_agree(self) -> None:
        s = self.spool.statistics()
        assert s.records_pending == len(self.appended) - self.acked
        assert s.records_unread == len(self.appended) - self.read
        assert s.bytes <= self.settings.max_bytes
        assert s.bytes == sum(p.stat().st_size for p in self.dir.glob("*.seg"))
        assert s.corrupted_entries == 0
        assert s.truncated_bytes == 0


SpoolModel.TestCase.settings = hsettings(max_examples=150, stateful_step_count=40, deadline=None)
test_spool_model = SpoolModel.TestCase
