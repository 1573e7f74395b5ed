"""Resharding (marketd.spool.layout): a spool another shard count left with records is
refused by name, and a symbol that moved to another shard starts from its last trade id."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from marketd.config.load import load_settings
from marketd.config.settings import Settings
from marketd.config.shards import shard_of
from marketd.data.records import Market, Record
from marketd.shards.worker import settings_of_shard
from marketd.spool import Spool, SpoolError
from marketd.spool.layout import ids_left_elsewhere, refuse_stray_spools, spool_dirs
from marketd.spool.sequence import open_spool, write_checkpoint

SYMBOLS = [f"COIN{i}USDT" for i in range(12)]


def _settings(root: Path, shards: int = 1, shard: int | None = None, **env: str) -> Settings:
    environ = {
        "MARKETD_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "MARKETD_SPOOL__DIRECTORY": str(root),
        "MARKETD_COLLECTOR__SHARDS": str(shards),
        **env,
    }
    if shard is not None:
        environ["MARKETD_COLLECTOR__SHARD"] = str(shard)
    settings = load_settings(None, environ)
    return settings_of_shard(settings, shard) if shard is not None else settings


def _trade(symbol: str, tid: int) -> Record:
    return Record(
        "marketdata.raw", symbol.encode(), b"v%d" % tid, (), 1, Market.SPOT, "trade", symbol, tid
    )


def _spool_with(directory: Path, pending: int, acked: int = 0) -> None:
    """A spool in ``directory`` holding ``acked`` records Kafka acknowledged, then
    ``pending`` it did not."""
    settings = _settings(directory).spool
    with Spool.open(settings) as spool:
        spool.append([_trade("BTCUSDT", i) for i in range(1, acked + 1)])
        if acked:
            spool.ack(spool.read(acked)[-1][0])
        spool.append([_trade("BTCUSDT", i) for i in range(acked + 1, acked + pending + 1)])
        spool.sync()


def test_a_spool_the_unsharded_process_left_is_refused_by_two_shards(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    _spool_with(root, pending=3)
    with pytest.raises(SpoolError) as caught:
        refuse_stray_spools(_settings(root, shards=2))
    message = str(caught.value)
    assert message.startswith(
        f"spools of another collector layout: {root} holds 3 records not yet in Kafka, "
        "written by one unsharded process (collector.shards: 1). "
    )
    assert "start with the collector.shards that wrote them" in message
    # The unsharded process itself delivers them: its own spool.
    refuse_stray_spools(_settings(root, shards=1))


def test_shards_beyond_the_new_count_are_refused_and_the_others_are_not(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    for shard, pending in ((0, 5), (1, 4), (2, 2), (3, 0)):
        _spool_with(root / f"shard-{shard}", pending=pending, acked=1)
    assert spool_dirs(str(root)) == [str(root / f"shard-{i}") for i in range(4)]
    # (A layout of 4 would leave a shard of the default subscriptions empty: 2 and 3 here.)
    with pytest.raises(SpoolError) as caught:
        refuse_stray_spools(_settings(root, shards=2))
    message = str(caught.value)
    # shard-2 (2 pending) is named; shard-3 (all acknowledged) and the layout's own are not.
    assert f"{root / 'shard-2'} holds 2 records not yet in Kafka, written by shard 2 of " in message
    assert "an earlier collector.shards (3 or more)" in message
    for other in ("shard-0", "shard-1", "shard-3"):
        assert str(root / other) + " " not in message
    # Back to one process: every shard's spool with records is named, in shard order.
    with pytest.raises(SpoolError) as caught:
        refuse_stray_spools(_settings(root, shards=1))
    named = [str(root / f"shard-{i}") for i in (0, 1, 2)]
    positions = [str(caught.value).index(d + " holds") for d in named]
    assert positions == sorted(positions)
    assert str(root / "shard-3") + " holds" not in str(caught.value)
    # Three shards: shard-3 holds nothing pending, so it is no obstacle.
    refuse_stray_spools(_settings(root, shards=3))


def test_only_a_process_that_writes_the_spool_looks(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    _spool_with(root, pending=1)
    # A worker (its parent looked), a process without the collector, no Kafka, no spool.
    refuse_stray_spools(_settings(root, shards=2, shard=1))
    refuse_stray_spools(_settings(root, shards=1, MARKETD_ROLES="gateway"))
    refuse_stray_spools(_settings(root, shards=2, MARKETD_SPOOL__ENABLED="false"))
    no_kafka = load_settings(
        None, {"MARKETD_SPOOL__DIRECTORY": str(root), "MARKETD_COLLECTOR__SHARDS": "1"}
    )
    refuse_stray_spools(no_kafka)
    # Nothing was created by looking: no spool files where there was no spool.
    empty = tmp_path / "empty"
    refuse_stray_spools(_settings(empty, shards=2))
    assert not empty.exists()


def test_a_symbol_that_moved_shards_starts_from_its_last_id(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    # One unsharded process wrote ids 100+i; then 3 shards wrote 500+i for their symbols.
    root.mkdir()
    old = {(Market.SPOT, "trade", s): 100 + i for i, s in enumerate(SYMBOLS)}
    write_checkpoint(str(root), 7, old)
    later = {
        shard: {
            (Market.SPOT, "trade", s): 500 + i
            for i, s in enumerate(SYMBOLS)
            if shard_of(Market.SPOT, s, 3) == shard
        }
        for shard in range(3)
    }
    for shard, ids in later.items():
        (root / f"shard-{shard}").mkdir()
        write_checkpoint(str(root / f"shard-{shard}"), 9, ids)
    newest = {k: v for ids in later.values() for k, v in ids.items()}

    # Now 2 shards: each takes, for its own symbols only, the highest id of every other
    # directory (its own it recovers itself).
    written = {str(root): old, **{str(root / f"shard-{s}"): ids for s, ids in later.items()}}
    moved_in = 0
    for shard in (0, 1):
        own = str(root / f"shard-{shard}")
        expected: dict[tuple[Market, str, str], int] = {}
        for directory, ids in written.items():
            for key, seq in ids.items():
                if directory != own and shard_of(Market.SPOT, key[2], 2) == shard:
                    expected[key] = max(seq, expected.get(key, -1))
        got = ids_left_elsewhere(_settings(root, shards=2, shard=shard))()
        assert got == expected
        # What shard 2 (gone now) collected last: those symbols go on from there.
        for key in later[2]:
            if shard_of(Market.SPOT, key[2], 2) == shard:
                assert got[key] == newest[key]
                moved_in += 1
    assert moved_in == len(later[2])

    # Back to one process: every symbol, at its newest id.
    assert ids_left_elsewhere(_settings(root, shards=1))() == newest


def test_spool_dirs_ignores_what_is_not_a_shard_spool(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    for name in ("shard-x", "shard-1", "other", "shard-٣"):
        (root / name).mkdir(parents=True)
    (root / "shard-2").write_text("a file, not a directory")
    write_checkpoint(str(root / "shard-1"), 1, {})
    write_checkpoint(str(root / "shard-x"), 1, {})
    os.makedirs(root / "shard-5")  # empty: nothing of a spool in it
    assert spool_dirs(str(root)) == [str(root / "shard-1")]
    assert spool_dirs(str(tmp_path / "missing")) == []


def test_ids_a_stray_spool_holds_past_its_checkpoint_reach_the_new_layout(tmp_path: Path) -> None:
    """The unsharded process died after its last checkpoint (BTCUSDT 5) with trades up to
    9 spooled and acknowledged. Two shards start: the parent's look at that spool
    checkpoints what it holds, so the shard owning BTCUSDT goes on from 9, not 5."""
    root = tmp_path / "spool"
    spool, _ = open_spool(_settings(root).spool)
    with spool:
        spool.append([_trade("BTCUSDT", i) for i in range(1, 6)])
        write_checkpoint(str(root), spool.sync(), {(Market.SPOT, "trade", "BTCUSDT"): 5})
        spool.append([_trade("BTCUSDT", i) for i in range(6, 10)])
        spool.ack(spool.read(100)[-1][0])
    refuse_stray_spools(_settings(root, shards=2))  # nothing pending: no refusal
    shard = shard_of(Market.SPOT, "BTCUSDT", 2)
    got = ids_left_elsewhere(_settings(root, shards=2, shard=shard))()
    assert got == {(Market.SPOT, "trade", "BTCUSDT"): 9}
