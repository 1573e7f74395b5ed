"""The spool stage when the spool is full: intake waits, nothing is lost or reordered, and
a batch larger than the whole bound still goes through, part by part."""

from __future__ import annotations

from pathlib import Path

import trio
from spoolkit import records, settings

from marketd.records import Record
from marketd.spool.stage import SpoolStage


async def test_a_batch_larger_than_the_bound_goes_through_in_order_as_acks_free_space(
    tmp_path: Path,
) -> None:
    # 4 KiB segments, 8 KiB bound: about 30 records of 200 B fit; batches hold 100.
    stage = SpoolStage(settings(tmp_path, segment_bytes=4096, max_bytes=8192))
    batches = [records(first, 100, size=200) for first in range(1, 501, 100)]
    rec_send, rec_recv = trio.open_memory_channel[list[Record]](0)
    pub_send, pub_recv = trio.open_memory_channel[list[Record]](0)
    out: list[int] = []
    saw_full = False

    async def publisher() -> None:
        nonlocal saw_full
        async with pub_recv:
            async for got in pub_recv:
                saw_full = saw_full or stage.full
                await trio.sleep(0.01)  # a slow Kafka
                out.extend(r.seq for r in got)
                stage.on_settled(got)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(stage.serve, rec_recv, pub_send)
            nursery.start_soon(publisher)
            async with rec_send:
                for batch in batches:
                    await rec_send.send(batch)
    await stage.close()
    assert out == list(range(1, 501))
    assert saw_full
    assert not stage.full
    assert stage.rejected == 0


async def test_a_record_larger_than_the_whole_spool_is_dropped_loudly(tmp_path: Path) -> None:
    stage = SpoolStage(settings(tmp_path, segment_bytes=4096, max_bytes=8192))
    huge = records(2, 1, size=16384)
    rec_send, rec_recv = trio.open_memory_channel[list[Record]](0)
    pub_send, pub_recv = trio.open_memory_channel[list[Record]](10)
    out: list[int] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(stage.serve, rec_recv, pub_send)
            async with rec_send:
                await rec_send.send([*records(1, 1), *huge, *records(3, 1)])
            async with pub_recv:
                async for got in pub_recv:
                    out.extend(r.seq for r in got)
                    stage.on_settled(got)
    await stage.close()
    assert out == [1, 3]
    assert stage.rejected == 1
