"""The detector's branch of the pipeline: each batch is offered to it on the way to the sink.

The in-process detector needs a few event kinds (mini tickers by default) of its markets
out of everything the collector publishes. It is a fan-out branch, not a stage in series:
the last market-data stage (the books, else the normalizer) sends its batches through a
:class:`TeeSendChannel` (:meth:`Tap.tee`), which hands each batch on to the main channel
(the spool or the sink) and then the wanted subset to the detector's bounded channel. No
task and no channel hop is added to the main path.

Backpressure: a full detector channel holds the sender, so a slow detector slows the
pipeline; the detector never loses a tick, and never sees records it would only skip.
Each such wait is counted (``marketd_tap_waits_total``). The branch receives in the main
channel's order, whichever task sends (the normalizer's backfills send too).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import TypeVar

import attrs
import trio
from prometheus_client.core import Metric

from marketd.data.records import Market, Record, RecordBatch
from marketd.obs.metrics import counter

T = TypeVar("T")


@attrs.frozen
class TapStatistics:
    records: int  # records handed to the detector's channel
    waits: int  # sends that waited for room in the detector's channel (backpressure)


class Tap:
    """What the detector wants, and the counts of what it was offered."""

    def __init__(self, kinds: Collection[str], markets: Collection[Market]) -> None:
        self.kinds = frozenset(kinds)
        self.markets = frozenset(markets)
        self.records = 0
        self.waits = 0

    def select(self, batch: list[Record]) -> list[Record] | None:
        """The records of ``batch`` the detector wants, with their ticks when the batch
        carries them (:class:`RecordBatch`); None if there are none."""
        kinds, markets = self.kinds, self.markets
        wanted: list[Record]
        if type(batch) is RecordBatch:
            wanted = batch.select(kinds, markets)
        else:
            wanted = [r for r in batch if r.kind in kinds and r.market in markets]
        self.records += len(wanted)
        return wanted or None

    def tee(
        self,
        main: trio.MemorySendChannel[list[Record]],
        branch: trio.MemorySendChannel[list[Record]],
    ) -> TeeSendChannel[list[Record]]:
        """A send channel for the last market-data stage: every batch to ``main``, what
        the detector wants to ``branch``. It owns both ends (closing it closes them)."""
        return TeeSendChannel(main, branch, self.select, self._waited, trio.StrictFIFOLock())

    def _waited(self) -> None:
        self.waits += 1

    def statistics(self) -> TapStatistics:
        return TapStatistics(records=self.records, waits=self.waits)

    def metrics(self) -> Iterable[Metric]:
        st = self.statistics()
        yield counter(
            "marketd_tap_records_total",
            "Records handed to the in-process detector (its event kinds and markets).",
            (),
            {(): st.records},
        )
        yield counter(
            "marketd_tap_waits_total",
            "Batches the pipeline held until the in-process detector had room for them "
            "(backpressure: no tick is dropped).",
            (),
            {(): st.waits},
        )


class TeeSendChannel(trio.abc.SendChannel[T]):
    """Sends each value to ``main``, then ``select(value)`` (unless None) to ``branch``,
    waiting for room in either. Clones share the lock that keeps the branch in the main
    channel's order when several tasks send."""

    def __init__(
        self,
        main: trio.MemorySendChannel[T],
        branch: trio.MemorySendChannel[T],
        select: Callable[[T], T | None],
        waited: Callable[[], None],
        lock: trio.StrictFIFOLock,
    ) -> None:
        self._main = main
        self._branch = branch
        self._select = select
        self._waited = waited
        self._lock = lock

    async def send(self, value: T) -> None:
        async with self._lock:
            await self._main.send(value)
            selected = self._select(value)
            if selected is not None:
                try:
                    self._branch.send_nowait(selected)
                except trio.WouldBlock:
                    self._waited()
                    await self._branch.send(selected)

    def clone(self) -> TeeSendChannel[T]:
        return TeeSendChannel(
            self._main.clone(), self._branch.clone(), self._select, self._waited, self._lock
        )

    def close(self) -> None:
        self._main.close()
        self._branch.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()
