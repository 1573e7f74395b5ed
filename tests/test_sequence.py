from marketd.records import Market, Record
from marketd.sequence import Gap, TradeSequencer


def rec(seq: int, *, kind: str = "trade", symbol: str = "BTCUSDT") -> Record:
    return Record(
        topic="marketdata.raw",
        key=symbol.encode(),
        value=b"",
        headers=(),
        received_ns=0,
        market=Market.SPOT,
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
    # Depth and tickers are not sequenced here: same seq twice still passes.
    assert seq.check(rec(1, kind="depthUpdate")) is True
    assert seq.check(rec(1, kind="depthUpdate")) is True
    assert seq.check(rec(11, symbol="BTCUSDT")) is True
