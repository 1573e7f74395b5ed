from marketd.data.records import Market, Record
from marketd.pipeline.sequence import Gap, TradeSequencer


def rec(
    seq: int, *, kind: str = "trade", symbol: str = "BTCUSDT", market: Market = Market.SPOT
) -> Record:
    return Record(
        topic="marketdata.raw",
        key=symbol.encode(),
        value=b"",
        headers=(),
        received_ns=0,
        market=market,
        kind=kind,
        symbol=symbol,
        seq=seq,
    )


def test_first_and_consecutive_ids_pass() -> None:
    seq = TradeSequencer()
    assert [seq.check(rec(i)) for i in (100, 101, 102)] == [True, True, True]
    assert seq.last_ids[(Market.SPOT, "trade", "BTCUSDT")] == 102


def test_duplicates_and_older_ids_are_dropped_and_counted() -> None:
    seq = TradeSequencer()
    seq.check(rec(10))
    seq.check(rec(11))
    assert seq.check(rec(11)) is False
    assert seq.check(rec(5)) is False
    assert seq.duplicates == 2
    assert seq.check(rec(12)) is True


def test_gap_is_reported_with_exact_bounds_and_advance_moves_on() -> None:
    seq = TradeSequencer()
    seq.check(rec(10))
    gap = seq.check(rec(15))
    assert gap == Gap(Market.SPOT, "trade", "BTCUSDT", 11, 14)
    assert isinstance(gap, Gap)
    assert gap.size == 4
    seq.advance(rec(15))
    assert seq.check(rec(16)) is True
    assert seq.gaps == 1


def test_symbols_kinds_and_unsequenced_events_are_independent() -> None:
    seq = TradeSequencer()
    seq.check(rec(10, symbol="BTCUSDT"))
    assert seq.check(rec(500, symbol="ETHUSDT")) is True
    assert seq.check(rec(7, kind="aggTrade")) is True
    # Kinds without ids (tickers) are not sequenced: the same record twice passes.
    assert seq.check(rec(0, kind="24hrMiniTicker")) is True
    assert seq.check(rec(0, kind="24hrMiniTicker")) is True
    assert seq.check(rec(11, symbol="BTCUSDT")) is True


def test_depth_diffs_drop_duplicates_and_allow_jumps() -> None:
    seq = TradeSequencer()
    assert [seq.check(rec(u, kind="depthUpdate")) for u in (100, 105, 105, 103, 130)] == [
        True,
        True,
        False,
        False,
        True,
    ]
    # A jump in `u` is normal for depth (ids are not consecutive): never a Gap here.
    assert seq.gaps == 0
    assert seq.duplicates == 2
    assert seq.duplicates_by_kind == {"depthUpdate": 2}
    assert seq.last_ids[(Market.SPOT, "depthUpdate", "BTCUSDT")] == 130


def test_book_ticker_drops_old_update_ids_per_symbol_and_market() -> None:
    seq = TradeSequencer()
    assert seq.check(rec(7, kind="bookTicker")) is True
    assert seq.check(rec(7, kind="bookTicker")) is False
    assert seq.check(rec(3, kind="bookTicker", symbol="ETHUSDT")) is True
    assert seq.check(rec(7, kind="bookTicker", market=Market.USDM)) is True
    assert seq.check(rec(9, kind="bookTicker")) is True
    assert seq.duplicates_by_kind == {"bookTicker": 1}


def test_kinds_are_counted_apart() -> None:
    seq = TradeSequencer()
    for kind, ids in (("trade", (1, 2, 2)), ("aggTrade", (5, 5, 4)), ("depthUpdate", (9, 9))):
        for i in ids:
            seq.check(rec(i, kind=kind))
    assert seq.duplicates_by_kind == {"trade": 1, "aggTrade": 2, "depthUpdate": 1}
    assert seq.duplicates == 4


def published(seq: TradeSequencer, records: list[Record]) -> tuple[list[int], list[Gap]]:
    """What the pipeline would publish (gaps noted, then the record) and the gaps."""
    out: list[int] = []
    gaps: list[Gap] = []
    for r in records:
        verdict = seq.check(r)
        if isinstance(verdict, Gap):
            gaps.append(verdict)
            seq.advance(r)
            out.append(r.seq)
        elif verdict:
            out.append(r.seq)
    return out, gaps


def test_handover_in_contiguous_runs_needs_no_backfill() -> None:
    # The feed hands on the old connection's frames up to its close, then the
    # successor's (which started before the old one closed): one overlap, no gap.
    seq = TradeSequencer()
    old = [rec(i) for i in range(100, 106)] + [rec(u, kind="depthUpdate") for u in (10, 20)]
    new = [rec(i) for i in range(103, 110)] + [rec(u, kind="depthUpdate") for u in (20, 30)]
    trades, gaps = published(seq, [r for r in old + new if r.kind == "trade"])
    assert trades == list(range(100, 110))
    assert gaps == []
    depth, _ = published(seq, [r for r in old + new if r.kind == "depthUpdate"])
    assert depth == [10, 20, 30]
    assert seq.duplicates_by_kind == {"trade": 3, "depthUpdate": 1}


def test_interleaved_connections_would_cost_a_backfill() -> None:
    # Why the feed does not interleave two connections: the newer id first opens a gap
    # (backfilled from REST, in order), then the old connection's ids are duplicates.
    seq = TradeSequencer()
    out, gaps = published(seq, [rec(100), rec(105), rec(101), rec(102), rec(106)])
    assert gaps == [Gap(Market.SPOT, "trade", "BTCUSDT", 101, 104)]
    assert out == [100, 105, 106]
    assert seq.duplicates == 2


def test_every_gap_is_counted_and_bounded_by_the_ids_around_it() -> None:
    seq = TradeSequencer()
    seq.check(rec(1))
    first = seq.check(rec(3))  # one id missing: a gap of size 1, not a duplicate
    assert first == Gap(Market.SPOT, "trade", "BTCUSDT", 2, 2)
    assert isinstance(first, Gap)
    assert first.size == 1
    seq.advance(rec(3))
    second = seq.check(rec(10, kind="aggTrade"))  # first aggTrade: no gap
    assert second is True
    third = seq.check(rec(13, kind="aggTrade"))
    assert third == Gap(Market.SPOT, "aggTrade", "BTCUSDT", 11, 12)
    assert seq.gaps == 2
    assert seq.duplicates == 0
    # A gap does not move the last id: the same record asks for the same gap again.
    assert seq.check(rec(13, kind="aggTrade")) == third
    assert seq.gaps == 3
    assert seq.last_ids[(Market.SPOT, "aggTrade", "BTCUSDT")] == 10


def test_gap_carries_the_market_and_symbol_of_the_record() -> None:
    seq = TradeSequencer()
    seq.check(rec(40, symbol="ETHUSDT", market=Market.USDM))
    gap = seq.check(rec(45, symbol="ETHUSDT", market=Market.USDM))
    assert gap == Gap(Market.USDM, "trade", "ETHUSDT", 41, 44)


def test_duplicate_counts_per_kind_start_at_one_and_add_up() -> None:
    seq = TradeSequencer()
    seq.check(rec(5))
    assert seq.check(rec(5)) is False
    assert seq.duplicates_by_kind == {"trade": 1}
    assert seq.check(rec(4)) is False
    assert seq.check(rec(5)) is False
    assert seq.duplicates_by_kind == {"trade": 3}
    assert seq.duplicates == 3
    assert seq.last_ids[(Market.SPOT, "trade", "BTCUSDT")] == 5


def test_deduplicated_kinds_keep_the_newest_id_and_never_count_gaps() -> None:
    seq = TradeSequencer()
    assert seq.check(rec(0, kind="bookTicker")) is True  # id 0 is a real first id
    assert seq.check(rec(0, kind="bookTicker")) is False
    assert seq.check(rec(1, kind="bookTicker")) is True  # the next id is no duplicate
    assert seq.last_ids[(Market.SPOT, "bookTicker", "BTCUSDT")] == 1
    assert (seq.duplicates, seq.gaps) == (1, 0)


def test_unsequenced_kinds_leave_no_state_behind() -> None:
    seq = TradeSequencer()
    assert seq.check(rec(9, kind="24hrMiniTicker")) is True
    assert seq.check(rec(3, kind="24hrMiniTicker")) is True
    assert seq.last_ids == {}
    assert (seq.duplicates, seq.gaps, seq.duplicates_by_kind) == (0, 0, {})


def test_seed_makes_the_next_live_id_a_gap_or_a_duplicate() -> None:
    seq = TradeSequencer()
    key = (Market.SPOT, "trade", "BTCUSDT")
    seq.seed({key: 100})
    assert seq.last_ids == {key: 100}
    assert seq.check(rec(100)) is False
    assert seq.check(rec(103)) == Gap(Market.SPOT, "trade", "BTCUSDT", 101, 102)
    assert seq.check(rec(101)) is True


def test_seed_never_moves_a_key_back() -> None:
    seq = TradeSequencer()
    key = (Market.SPOT, "trade", "BTCUSDT")
    other = (Market.USDM, "aggTrade", "BTCUSDT")
    seq.check(rec(50))
    # The live sequencer is ahead of the restart state for `key`; `other` is new.
    seq.seed({key: 20, other: 7})
    assert seq.last_ids == {key: 50, other: 7}
    assert seq.check(rec(51)) is True


def test_seed_accepts_id_zero() -> None:
    # Depth and ticker ids may be 0; a seeded 0 must make a second 0 a duplicate.
    seq = TradeSequencer()
    key = (Market.SPOT, "depthUpdate", "BTCUSDT")
    seq.seed({key: 0})
    assert seq.last_ids == {key: 0}
    assert seq.check(rec(0, kind="depthUpdate")) is False


def test_advance_records_the_published_id_for_its_own_key() -> None:
    seq = TradeSequencer()
    seq.advance(rec(7, kind="aggTrade", symbol="ETHUSDT", market=Market.USDM))
    assert seq.last_ids == {(Market.USDM, "aggTrade", "ETHUSDT"): 7}
