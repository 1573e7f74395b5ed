"""A pass-through stage that copies the records one consumer wants onto its own channel.

The detector needs a few event kinds (mini tickers by default) out of everything the
collector publishes. The tap hands every batch on unchanged and sends the wanted subset
to the detector's bounded channel: a slow detector slows the pipeline (backpressure),
it never loses ticks, and it never sees records it would only skip.
"""

from __future__ import annotations

from collections.abc import Collection

import trio

from marketd.pipeline.records import Market, Record


async def serve_tap(
    records_in: trio.abc.ReceiveChannel[list[Record]],
    records_out: trio.abc.SendChannel[list[Record]],
    tapped_out: trio.abc.SendChannel[list[Record]],
    kinds: Collection[str],
    markets: Collection[Market],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until ``records_in`` ends, then close both outputs."""
    wanted_kinds, wanted_markets = frozenset(kinds), frozenset(markets)
    async with records_in, records_out, tapped_out:
        task_status.started()
        async for batch in records_in:
            tapped = [r for r in batch if r.kind in wanted_kinds and r.market in wanted_markets]
            await records_out.send(batch)
            if tapped:
                await tapped_out.send(tapped)
