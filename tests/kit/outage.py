"""What a publisher says about its connection while Kafka is away: ``/readyz`` and
``marketd_kafka_connected`` read ``statistics().connected``, so a publisher that claims
to be connected between its retries makes readiness flap during an outage."""

from __future__ import annotations

from typing import Protocol

import trio

from marketd.kafka.delivery import PublisherStatistics


class _Publisher(Protocol):
    def statistics(self) -> PublisherStatistics: ...


class ConnectionWatch:
    """Samples ``connected`` every ``interval`` s from the first failed attempt until
    :meth:`stop`; run :meth:`watch` in a nursery."""

    def __init__(self, publisher: _Publisher, interval: float = 0.02) -> None:
        self.publisher, self.interval = publisher, interval
        self.samples: list[bool] = []  # after the first failure
        self._stopped = trio.Event()

    @property
    def claimed_connected(self) -> int:
        return sum(self.samples)

    async def watch(self) -> None:
        while not self._stopped.is_set():
            st = self.publisher.statistics()
            if st.failed_attempts:
                self.samples.append(st.connected)
            with trio.move_on_after(self.interval):
                await self._stopped.wait()

    def stop(self) -> None:
        self._stopped.set()
