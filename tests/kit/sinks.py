"""A sink for in-process daemons whose output a test reads (:class:`marketd.pipeline.sink.Sink`).

``Daemon(settings, sink=ChannelSink(capacity))`` ends the pipeline in a bounded channel
the test reads from ``sink.batches``, as slowly as it likes: a slow reader slows the
pipeline, as a slow Kafka would. The channel ends when the daemon has drained.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import attrs
import trio
from prometheus_client.core import Metric

from marketd.data.records import Record


@attrs.frozen
class ChannelSinkStatistics:
    delivered: int
    connected: bool = True


class ChannelSink:
    name: ClassVar[str] = "test-channel"
    remote: ClassVar[bool] = False

    def __init__(self, capacity: int) -> None:
        self._out, self.batches = trio.open_memory_channel[list[Record]](capacity)
        self.delivered = 0

    async def serve(
        self,
        batches: trio.abc.ReceiveChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with batches, self._out:
            task_status.started()
            async for batch in batches:
                await self._out.send(batch)
                self.delivered += len(batch)

    def statistics(self) -> ChannelSinkStatistics:
        return ChannelSinkStatistics(self.delivered)

    def metrics(self) -> Iterable[Metric]:
        return ()
