"""The end of the recorder role's pipeline (:mod:`marketd.roles`): a sink that publishes
nothing.

A recorder-only process decodes what its feeds receive so that its trade backfill and
book snapshots run (their REST responses belong in the recording), but it publishes
nothing: the records end here, counted (``statistics().delivered``, for the statistics
log line). It has no metric families of its own; the recorder's say what was recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import attrs
import trio
from prometheus_client.core import Metric

from marketd.data.records import Record


@attrs.frozen
class DiscardStatistics:
    delivered: int  # records taken and dropped
    connected: bool = True  # nothing outside the process to reach


@attrs.define
class Discard:
    name: ClassVar[str] = "discard"
    remote: ClassVar[bool] = False
    records: int = 0

    def statistics(self) -> DiscardStatistics:
        return DiscardStatistics(delivered=self.records)

    def metrics(self) -> Iterable[Metric]:
        return ()

    async def serve(
        self,
        batches: trio.abc.ReceiveChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Take ``batches`` until the channel ends, and drop them."""
        async with batches:
            task_status.started()
            async for batch in batches:
                self.records += len(batch)
