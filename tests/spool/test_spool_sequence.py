"""The last trade ids kept with the spool (marketd.spool.sequence) and the stage that writes
them: a restarted daemon starts each symbol where the spool left it."""

from __future__ import annotations

from pathlib import Path

import attrs
import trio
from spoolkit import settings

from marketd.data.records import Market, Record
from marketd.pipeline.sequence import Gap, TradeSequencer
from marketd.spool import Spool
from marketd.spool.sequence import (
    SEQUENCE_FILE,
    note_ids,
    open_spool,
    read_checkpoint,
    write_checkpoint,
)
from marketd.spool.settings import SpoolSettings
from marketd.spool.stage import SpoolStage


def trade(symbol: str, tid: int, market: Market = Market.SPOT, kind: str = "trade") -> Record:
    return Record(
        topic="marketdata.raw",
        key=symbol.encode(),
        value=b"v%d" % tid,
        headers=(),
        received_ns=1_700_000_000_000_000_000 + tid,
        market=market,
        kind=kind,
        symbol=symbol,
        seq=tid,
    )


def depth(symbol: str, u: int) -> Record:
    return Record("marketdata.depth", b"x", b"d", (), 1, Market.SPOT, "depthUpdate", symbol, u)


def test_note_ids_keeps_the_highest_consecutive_id_per_key() -> None:
    ids: dict[tuple[Market, str, str], int] = {}
    note_ids(ids, [trade("BTCUSDT", 5), trade("BTCUSDT", 6), depth("BTCUSDT", 900)])
    note_ids(ids, [trade("ETHUSDT", 70, Market.USDM, "aggTrade"), trade("BTCUSDT", 4)])
    assert ids == {
        (Market.SPOT, "trade", "BTCUSDT"): 6,
        (Market.USDM, "aggTrade", "ETHUSDT"): 70,
    }


def test_checkpoint_round_trip_and_damage(tmp_path: Path) -> None:
    assert read_checkpoint(str(tmp_path)) is None
    ids = {(Market.SPOT, "trade", "BTCUSDT"): 12, (Market.USDM, "aggTrade", "BTCUSDT"): 7}
    write_checkpoint(str(tmp_path), 41, ids)
    assert read_checkpoint(str(tmp_path)) == (41, ids)
    assert not (tmp_path / (SEQUENCE_FILE + ".tmp")).exists()
    (tmp_path / SEQUENCE_FILE).write_bytes(b'{"version": 1, "spool_seq": ')
    assert read_checkpoint(str(tmp_path)) is None  # torn: the spool is scanned instead
    (tmp_path / SEQUENCE_FILE).write_bytes(
        b'{"version":99,"spool_seq":1,"written_at_ms":0,"last_ids":[]}'
    )
    assert read_checkpoint(str(tmp_path)) is None


def test_recovery_adds_what_was_appended_after_the_checkpoint(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path)) as spool:
        spool.append([trade("BTCUSDT", i) for i in range(100, 110)])
        upto = spool.sync()
        write_checkpoint(str(tmp_path), upto, {(Market.SPOT, "trade", "BTCUSDT"): 109})
        # Appended after the checkpoint (a kill -9 keeps these in the page cache).
        spool.append([trade("BTCUSDT", 110), trade("ETHUSDT", 5, Market.USDM, "aggTrade")])
    spool, ids = open_spool(settings(tmp_path))
    with spool:
        assert ids == {
            (Market.SPOT, "trade", "BTCUSDT"): 110,
            (Market.USDM, "aggTrade", "ETHUSDT"): 5,
        }


def test_recovery_without_a_checkpoint_scans_every_record_on_disk(tmp_path: Path) -> None:
    with Spool.open(settings(tmp_path, segment_bytes=4096)) as spool:
        for start in range(1, 400, 40):  # several segments
            spool.append([trade("BTCUSDT", i) for i in range(start, start + 40)])
    spool, ids = open_spool(settings(tmp_path, segment_bytes=4096))
    with spool:
        assert ids == {(Market.SPOT, "trade", "BTCUSDT"): 400}


def test_an_empty_spool_recovers_nothing(tmp_path: Path) -> None:
    spool, ids = open_spool(settings(tmp_path))
    with spool:
        assert ids == {}


def _segment_files(directory: Path) -> int:
    return len(list(directory.glob("*.seg")))


def _die_after_acks_past_the_checkpoint(tmp_path: Path) -> SpoolSettings:
    """A spool whose checkpoint says ETHUSDT 1000 while Kafka acknowledged whole segments
    after it (ETHUSDT up to 1300, BTCUSDT 1..40), as a ``kill -9`` before the next
    checkpoint leaves it."""
    s = settings(tmp_path, segment_bytes=4096)
    spool, _ = open_spool(s)
    with spool:
        spool.append([trade("ETHUSDT", 1000)])
        write_checkpoint(str(tmp_path), spool.sync(), {(Market.SPOT, "trade", "ETHUSDT"): 1000})
        spool.release(spool.last_seq)
        for first in range(1001, 1300, 30):  # in several segments
            spool.append([trade("ETHUSDT", i) for i in range(first, first + 30)])
        spool.append([trade("BTCUSDT", i) for i in range(1, 41)])  # the segments roll on
        got = []
        while batch := spool.read(100):
            got.extend(batch)
        spool.ack(got[-1][0])
        assert spool.holds_acked
        assert _segment_files(tmp_path) >= 3  # acked and held
    return s


AFTER_THE_CRASH = {(Market.SPOT, "trade", "ETHUSDT"): 1300, (Market.SPOT, "trade", "BTCUSDT"): 40}


def test_recovery_reads_ids_from_records_acked_after_the_checkpoint(tmp_path: Path) -> None:
    """The ids of records Kafka acknowledged after the last checkpoint are still read at
    the next start, because the spool holds them until a checkpoint covers them (without
    the hold they are deleted, and ETHUSDT restarts from 1000: its trades up to 1300 are
    fetched again)."""
    s = _die_after_acks_past_the_checkpoint(tmp_path)
    spool, ids = open_spool(s)
    with spool:
        assert ids == AFTER_THE_CRASH
        assert spool.statistics().records_pending == 0
        write_checkpoint(str(tmp_path), spool.last_seq, ids)
        spool.release(spool.last_seq)  # covered now: the acked segments go
        assert _segment_files(tmp_path) == 1


async def test_a_restart_checkpoints_what_it_recovered_before_letting_it_go(
    tmp_path: Path,
) -> None:
    """The restarted stage releases the held records only once a checkpoint of what it
    read from them is written: a second crash then still finds ETHUSDT at 1300."""
    s = _die_after_acks_past_the_checkpoint(tmp_path)
    with trio.fail_after(10):
        await _run_stage(SpoolStage(attrs.evolve(s, sync_interval_s=0)), [])
    assert _segment_files(tmp_path) == 1
    spool, ids = open_spool(s)
    with spool:
        assert ids == AFTER_THE_CRASH


def test_seeded_sequencer_backfills_from_the_recovered_id() -> None:
    seq = TradeSequencer()
    seq.seed({(Market.SPOT, "trade", "BTCUSDT"): 110})
    assert seq.check(trade("BTCUSDT", 105)) is False  # already spooled before the restart
    gap = seq.check(trade("BTCUSDT", 150))
    assert gap == Gap(Market.SPOT, "trade", "BTCUSDT", 111, 149)
    seq.seed({(Market.SPOT, "trade", "BTCUSDT"): 100})  # never moves an id back
    assert seq.last_ids[(Market.SPOT, "trade", "BTCUSDT")] == 110


async def _run_stage(stage: SpoolStage, batches: list[list[Record]]) -> list[Record]:
    """Feed ``batches`` through the stage, end intake, return what it handed on."""
    rec_send, rec_recv = trio.open_memory_channel[list[Record]](10)
    pub_send, pub_recv = trio.open_memory_channel[list[Record]](100)
    out: list[Record] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(stage.serve, rec_recv, pub_send)
        async with rec_send:
            for batch in batches:
                await rec_send.send(batch)
        await stage.durable.wait()
        async with pub_recv:
            async for got in pub_recv:
                out.extend(got)
                stage.on_settled(got)
    await stage.close()
    return out


async def test_stage_checkpoints_ids_and_hands_them_to_the_next_start(tmp_path: Path) -> None:
    first_run = SpoolStage(settings(tmp_path, sync_interval_s=0))
    batches = [[trade("BTCUSDT", i), trade("ETHUSDT", 1000 + i)] for i in range(1, 6)]
    with trio.fail_after(10):
        out = await _run_stage(first_run, batches)
    assert [r.seq for r in out if r.symbol == "BTCUSDT"] == [1, 2, 3, 4, 5]
    assert first_run.durable.is_set()
    ckpt = read_checkpoint(str(tmp_path))
    assert ckpt is not None
    assert ckpt[1] == {
        (Market.SPOT, "trade", "BTCUSDT"): 5,
        (Market.SPOT, "trade", "ETHUSDT"): 1005,
    }

    seeded: list[dict[tuple[Market, str, str], int]] = []
    second_run = SpoolStage(settings(tmp_path, sync_interval_s=0), on_recovered=seeded.append)
    with trio.fail_after(10):
        out = await _run_stage(second_run, [[trade("BTCUSDT", 9)]])
    assert seeded == [ckpt[1]]
    assert [r.seq for r in out] == [9]  # everything before was acknowledged
    ckpt2 = read_checkpoint(str(tmp_path))
    assert ckpt2 is not None
    assert ckpt2[1][(Market.SPOT, "trade", "BTCUSDT")] == 9
    assert ckpt2[1][(Market.SPOT, "trade", "ETHUSDT")] == 1005


async def test_stage_takes_higher_ids_from_elsewhere_and_keeps_its_own(tmp_path: Path) -> None:
    """A symbol that moved here from another shard (marketd.spool.layout): its id from the
    other spool directory seeds the sequencer, unless this spool's own is higher."""
    first_run = SpoolStage(settings(tmp_path, sync_interval_s=0))
    with trio.fail_after(10):
        await _run_stage(first_run, [[trade("BTCUSDT", 50), trade("ETHUSDT", 70)]])
    elsewhere = {
        (Market.SPOT, "trade", "BTCUSDT"): 40,  # older than this spool's 50: ignored
        (Market.SPOT, "trade", "ETHUSDT"): 90,  # newer: it collected ETHUSDT last
        (Market.USDM, "aggTrade", "SOLUSDT"): 7,  # never here
    }
    seeded: list[dict[tuple[Market, str, str], int]] = []
    second_run = SpoolStage(
        settings(tmp_path, sync_interval_s=0),
        on_recovered=seeded.append,
        ids_elsewhere=lambda: dict(elsewhere),
    )
    with trio.fail_after(10):
        await _run_stage(second_run, [[trade("BTCUSDT", 51)]])
    assert seeded == [
        {
            (Market.SPOT, "trade", "BTCUSDT"): 50,
            (Market.SPOT, "trade", "ETHUSDT"): 90,
            (Market.USDM, "aggTrade", "SOLUSDT"): 7,
        }
    ]
    # And they are this spool's now: its checkpoint carries them to the next start.
    ckpt = read_checkpoint(str(tmp_path))
    assert ckpt is not None
    assert ckpt[1][(Market.SPOT, "trade", "ETHUSDT")] == 90


async def test_a_full_spool_checkpoints_to_free_held_segments(tmp_path: Path) -> None:
    """Ten times the spool's bound passes through it with no periodic sync during the run:
    the acked segments are held for a checkpoint, so the writer, short of room, writes one
    instead of waiting forever for room (or dropping a record as too large for the spool)."""
    s = settings(tmp_path, segment_bytes=4096, max_bytes=8192, sync_interval_s=60)
    stage = SpoolStage(s)
    rec_send, rec_recv = trio.open_memory_channel[list[Record]](0)
    pub_send, pub_recv = trio.open_memory_channel[list[Record]](0)
    out: list[Record] = []

    async def publish() -> None:
        async with pub_recv:
            async for got in pub_recv:
                out.extend(got)
                stage.on_settled(got)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish)
            await nursery.start(stage.serve, rec_recv, pub_send)
            async with rec_send:
                for first in range(1, 1001, 20):
                    await rec_send.send([trade("BTCUSDT", i) for i in range(first, first + 20)])
    await stage.close()
    assert [r.seq for r in out] == list(range(1, 1001))
    assert stage.rejected == 0
    spool, ids = open_spool(s)
    with spool:
        assert ids == {(Market.SPOT, "trade", "BTCUSDT"): 1000}
        assert spool.statistics().records_pending == 0
    assert _segment_files(tmp_path) == 1  # nothing held is left behind
