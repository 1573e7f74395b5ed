"""The spool stage: when the spool is full intake waits, nothing is lost or reordered, and
a batch larger than the whole bound still goes through, part by part; a slow fsync does
not hold up intake."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio
from spoolkit import records, settings

from marketd.data.records import Market, Record
from marketd.spool import Spool
from marketd.spool import format as format_module
from marketd.spool import stage as stage_module
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


async def test_a_slow_fsync_does_not_hold_up_intake_and_the_checkpoint_matches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync takes 0.3 s here: the writer keeps appending meanwhile, and every checkpoint
    written names, for its spool seq, exactly the highest trade id appended up to it."""
    real_sync = Spool.sync
    syncing = 0
    appended_while_syncing = 0

    def slow_sync(self: Spool) -> int:
        nonlocal syncing
        syncing += 1
        try:
            time.sleep(0.3)
            return real_sync(self)
        finally:
            syncing -= 1

    checkpoints: list[tuple[int, dict[tuple[Market, str, str], int]]] = []
    real_write = stage_module.write_checkpoint

    def recording_write(directory: str, upto: int, ids: dict[tuple[Market, str, str], int]) -> None:
        checkpoints.append((upto, dict(ids)))
        real_write(directory, upto, ids)

    monkeypatch.setattr(Spool, "sync", slow_sync)
    monkeypatch.setattr(stage_module, "write_checkpoint", recording_write)
    stage = SpoolStage(settings(tmp_path, sync_interval_s=0.05))
    rec_send, rec_recv = trio.open_memory_channel[list[Record]](0)
    pub_send, pub_recv = trio.open_memory_channel[list[Record]](1000)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(stage.serve, rec_recv, pub_send)
            async with rec_send:
                for first in range(1, 401, 10):  # 40 batches over ~1 s
                    await rec_send.send(records(first, 10))
                    if syncing:
                        appended_while_syncing += 1
                    await trio.sleep(0.025)
            async with pub_recv:
                async for got in pub_recv:
                    stage.on_settled(got)
    await stage.close()
    assert appended_while_syncing >= 10  # intake went on during the fsyncs
    assert stage.durable.is_set()
    assert len(checkpoints) >= 2
    key = (Market.USDM, "trade", "BTCUSDT")  # spoolkit: odd seqs are USD-M, even spot
    for upto, ids in checkpoints:
        # spool seq n holds record n: the highest USD-M id at or below upto.
        assert ids[key] == (upto if upto % 2 else upto - 1)
    assert checkpoints[-1][0] == 400


async def test_a_record_beyond_the_entry_limit_is_dropped_loudly_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The entry limit (64 MiB) lowered to 1 KiB: a 4 KiB record exceeds it while the spool
    # (1 MiB bound) has room; before, a plain ValueError crashed the stage on every restart.
    monkeypatch.setattr(format_module, "MAX_PAYLOAD", 1024)
    stage = SpoolStage(settings(tmp_path, segment_bytes=65536, max_bytes=1 << 20))
    rec_send, rec_recv = trio.open_memory_channel[list[Record]](0)
    pub_send, pub_recv = trio.open_memory_channel[list[Record]](10)
    out: list[int] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(stage.serve, rec_recv, pub_send)
            async with rec_send:
                batch = [*records(1, 2), *records(3, 1, size=4096), *records(4, 2)]
                await rec_send.send(batch)
            async with pub_recv:
                async for got in pub_recv:
                    out.extend(r.seq for r in got)
                    stage.on_settled(got)
    await stage.close()
    assert out == [1, 2, 4, 5]
    assert stage.rejected == 1
