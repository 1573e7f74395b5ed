"""The replay's pure parts: its book (Binance's client rules, both id schemes), the trades
it holds (a fromId it cannot serve whole is refused, never started later), its REST answers
and its command-line values."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from marketd.data.records import Market
from marketd.replay.book import Diff, ReplayBook
from marketd.replay.rest import ReplayRest
from marketd.replay.state import MarketState
from marketd.replay.timeline import data_of, parse_instant, parse_speed
from marketd.replay.trades import HeldTrades, Trade, Unavailable


def spot_diff(first: int, last: int, bids: list[list[str]], asks: list[list[str]]) -> Diff:
    return Diff(first, last, None, last * 10, last * 10, bids, asks)


def usdm_diff(first: int, last: int, previous: int, bids: list[list[str]]) -> Diff:
    return Diff(first, last, previous, last * 10, last * 10 + 1, bids, [])


# -- the book ------------------------------------------------------------------------------


def test_a_spot_book_starts_at_a_snapshot_from_the_diffs_buffered_before_it() -> None:
    book = ReplayBook(chained=False)
    book.diff(spot_diff(95, 99, [["10.0", "1"]], []))  # before the snapshot: dropped
    book.diff(spot_diff(100, 104, [["10.5", "2"]], [["11.0", "3"]]))  # bridges 101
    assert not book.synced
    book.snapshot(100, [["10.0", "5"], ["9.0", "1"]], [["11.5", "1"]], 100)
    assert book.synced
    assert book.last_id == 104
    book.diff(spot_diff(105, 106, [["9.0", "0"]], [["11.5", "0.00000000"]]))
    assert book.levels(5) == ([["10.5", "2"], ["10.0", "5"]], [["11.0", "3"]])
    assert book.best() == (["10.5", "2"], ["11.0", "3"])


def test_a_hole_in_the_spot_diffs_breaks_the_book_until_the_next_snapshot() -> None:
    book = ReplayBook(chained=False)
    book.snapshot(100, [["10", "1"]], [["12", "1"]], 100)
    book.diff(spot_diff(101, 101, [["10", "2"]], []))
    book.diff(spot_diff(103, 104, [["10", "9"]], []))  # 102 is missing
    assert not book.synced
    assert book.breaks == 1
    assert book.levels(1)[0] == [["10", "2"]]  # not applied
    book.diff(spot_diff(105, 106, [["9", "1"]], []))
    book.snapshot(105, [["10", "7"]], [["12", "1"]], 100)  # the recorded resync
    assert book.synced
    assert book.last_id == 106
    assert book.levels(5)[0] == [["10", "7"], ["9", "1"]]


def test_a_usdm_book_follows_the_chained_ids() -> None:
    book = ReplayBook(chained=True)
    book.snapshot(200, [["5", "1"]], [], 100)
    book.diff(usdm_diff(190, 200, 185, [["6", "1"]]))  # U <= 200 <= u: the first applied
    book.diff(usdm_diff(201, 210, 200, [["7", "1"]]))  # pu == previous u
    assert book.synced
    assert (book.last_id, book.transaction_ms) == (210, 2101)
    book.diff(usdm_diff(201, 210, 200, [["8", "1"]]))  # a reconnect's overlap: dropped
    assert book.synced
    assert "8" not in book.bids
    book.diff(usdm_diff(215, 220, 212, [["9", "1"]]))  # pu 212 != 210
    assert not book.synced
    assert sorted(book.bids) == ["5", "6", "7"]


def test_a_side_cut_by_its_snapshot_ignores_diffs_beyond_it_and_refuses_deeper_requests() -> None:
    book = ReplayBook(chained=False)
    # Asked for 2 levels: the bids came back full (cut at 9), the asks short (complete).
    book.snapshot(100, [["10", "1"], ["9", "1"]], [["11", "1"]], 2)
    book.diff(spot_diff(101, 101, [["8", "4"], ["9.5", "2"]], [["30", "1"]]))
    assert book.bids == {"10": "1", "9.5": "2", "9": "1"}  # 8 lies past what is known
    assert book.asks == {"11": "1", "30": "1"}  # a complete side takes any level
    assert book.levels(3) == ([["10", "1"], ["9.5", "2"], ["9", "1"]],
                              [["11", "1"], ["30", "1"]])  # fmt: skip
    assert book.levels(4) is None  # 4 bids would need what lies past 9
    book.diff(spot_diff(102, 102, [["10", "0"], ["9.5", "0"]], []))
    assert book.levels(1) == ([["9", "1"]], [["11", "1"]])
    assert book.levels(2) is None


def test_a_synced_book_takes_a_later_snapshot_the_recent_diffs_carry_up_to_it() -> None:
    book = ReplayBook(chained=False)
    book.snapshot(100, [["10", "1"], ["9", "1"]], [["11", "1"], ["12", "1"]], 2)
    book.diff(spot_diff(101, 102, [["10", "0"]], [["11", "0"]]))  # one level left a side
    book.diff(spot_diff(103, 103, [["9", "3"]], []))
    assert book.levels(2) is None
    # An audit's deeper snapshot at 102: the diff after it (103) carries it up to the book.
    deep = [["9", "1"], ["8", "1"], ["7", "1"]], [["12", "1"], ["13", "1"], ["14", "1"]]
    book.snapshot(102, *deep, 1000)
    assert book.levels(3) == ([["9", "3"], ["8", "1"], ["7", "1"]],
                              [["12", "1"], ["13", "1"], ["14", "1"]])  # fmt: skip
    assert (book.bid_bound, book.ask_bound) == (None, None)  # whole sides now
    # A shallower one (cut at 1 level) would know less: the book keeps what it has.
    book.snapshot(103, [["9", "3"]], [["12", "1"]], 1)
    assert book.levels(3) is not None
    # One the kept diffs do not reach (from before them) is not taken.
    book = ReplayBook(chained=False)
    book.snapshot(100, [["10", "1"]], [["11", "1"]], 1)
    book.diff(spot_diff(101, 101, [["10", "0"]], []))
    book.snapshot(99, [["10", "5"], ["9", "5"]], [["11", "5"]], 1000)
    assert book.bids == {}
    assert book.levels(1) is None


def test_depth_skips_recorded_snapshots_shallower_than_the_limit_asked() -> None:
    state = MarketState(Market.USDM)
    rest = ReplayRest(state)
    cut = {"lastUpdateId": 100, "bids": [["10", "1"], ["9", "1"]],
           "asks": [["11", "1"], ["12", "1"]]}  # fmt: skip
    deep = {"lastUpdateId": 120, "bids": [["10", "2"], ["9", "1"], ["8", "1"]],
            "asks": [["11", "2"], ["12", "1"]]}  # fmt: skip
    state.read_ahead("/fapi/v1/depth?symbol=ETHUSDT&limit=2", json.dumps(cut).encode(), 5_000)
    state.read_ahead("/fapi/v1/depth?symbol=ETHUSDT&limit=5", json.dumps(deep).encode(), 6_000)
    assert answer(rest, "/fapi/v1/depth", 4_000, symbol="ETHUSDT", limit="2")[1] == cut
    # 5 levels: the first snapshot was cut at 2, so the next one answers (complete at 5).
    assert answer(rest, "/fapi/v1/depth", 4_000, symbol="ETHUSDT", limit="5")[1] == deep
    assert answer(rest, "/fapi/v1/depth", 4_000, symbol="ETHUSDT", limit="1000")[1] == deep
    # Past both: the book started from the cut snapshot refuses more than it knows.
    state.passed("/fapi/v1/depth?symbol=ETHUSDT&limit=2", 5_000)
    state.forget_before(5_500)
    state.passed("/fapi/v1/depth?symbol=ETHUSDT&limit=5", 6_000)
    state.forget_before(10_000)
    assert answer(rest, "/fapi/v1/depth", 10_000, symbol="ETHUSDT", limit="2")[1]["bids"] == [
        ["10", "1"], ["9", "1"]]  # fmt: skip
    status, body = answer(rest, "/fapi/v1/depth", 10_000, symbol="ETHUSDT", limit="5")
    assert (status, body["code"]) == (503, -1008)  # type: ignore[index]
    assert "fewer than 5 levels" in body["msg"]  # type: ignore[index]


def test_a_snapshot_older_than_every_buffered_diff_leaves_the_book_broken() -> None:
    book = ReplayBook(chained=False)
    book.diff(spot_diff(150, 151, [["1", "1"]], []))
    book.snapshot(100, [["2", "1"]], [], 100)
    assert not book.synced


# -- trades --------------------------------------------------------------------------------


def held(ids: list[int], capacity: int = 100) -> HeldTrades:
    h = HeldTrades(capacity)
    for i in ids:
        h.add(Trade(i, 1000 + i, f"{100 + i}.5", "2", i % 2 == 0, i * 10, i * 10 + 1))
    return h


def test_from_id_serves_a_run_without_holes_and_never_starts_later() -> None:
    h = held([5, 6, 7, 9, 10])
    assert [t.id for t in h.from_id(6, 10, now_ms=2000)] == [6, 7]  # stops before the hole
    assert [t.id for t in h.from_id(5, 2, now_ms=2000)] == [5, 6]
    assert h.from_id(11, 10, now_ms=2000) == []  # beyond the newest: nothing yet
    with pytest.raises(Unavailable, match="older than the oldest trade this replay holds"):
        h.from_id(4, 10, now_ms=2000)
    with pytest.raises(Unavailable, match="trade 8 is not in the recording"):
        h.from_id(8, 10, now_ms=2000)
    assert [t.id for t in h.from_id(5, 10, now_ms=1006)] == [5, 6]  # the clock: not 7 yet


def test_a_backfilled_page_fills_the_hole_and_the_oldest_are_forgotten() -> None:
    h = held([1, 2, 5, 6], capacity=4)
    h.add(Trade(3, 1003, "1", "1", False, 3, 3))
    h.add(Trade(4, 1004, "1", "1", False, 4, 4))
    assert [t.id for t in h.from_id(3, 10, now_ms=9999)] == [3, 4, 5, 6]
    for i in range(7, 9):
        h.add(Trade(i, 1000 + i, "1", "1", False, i, i))
    assert len(h) == 4  # trimmed to the capacity once a quarter more piled up
    assert [t.id for t in h.from_id(5, 10, now_ms=9999)] == [5, 6, 7, 8]
    with pytest.raises(Unavailable, match=r"older than the oldest trade this replay holds \(5\)"):
        h.from_id(4, 1, now_ms=9999)


def test_klines_and_the_day_are_exact_sums_of_the_trades() -> None:
    h = HeldTrades()
    rows = [(1, 60_000, "10.0", "1", False), (2, 61_000, "12.0", "2", True),
            (3, 119_999, "11.0", "1", False), (4, 120_000, "9.5", "4", True)]  # fmt: skip
    for i, t, p, q, m in rows:
        h.add(Trade(i, t, p, q, m, i, i))
    k = h.klines(60_000, None, None, 500, now_ms=130_000)
    assert k[0] == [60_000, "10.0", "12.0", "10.0", "11.0", "4", 119_999, "45.00000000", 3,
                    "2", "21.00000000", "0"]  # fmt: skip
    assert k[1][:6] == [120_000, "9.5", "9.5", "9.5", "9.5", "4"]
    day = h.day(now_ms=130_000)
    assert day is not None
    assert (day["openPrice"], day["lastPrice"], day["highPrice"], day["lowPrice"]) == (
        "10.0", "9.5", "12.0", "9.5")  # fmt: skip
    assert (day["volume"], day["quoteVolume"], day["count"]) == ("8", "83.00000000", 4)
    assert Decimal(day["priceChange"]) == Decimal("-0.5")


# -- REST answers --------------------------------------------------------------------------


def frame_data(**fields: object) -> str:
    return json.dumps(fields, separators=(",", ":"))


def answer(rest: ReplayRest, path: str, clock_ns: int, **query: str) -> tuple[int, object]:
    reply = rest.handle(path, query, clock_ns)
    return reply.status, json.loads(reply.body)


def test_depth_answers_the_snapshot_ahead_then_the_unbroken_book_then_503() -> None:
    state = MarketState(Market.SPOT)
    rest = ReplayRest(state)
    snapshot = {"lastUpdateId": 100, "bids": [["10", "1"], ["9", "1"]], "asks": [["11", "1"]]}
    state.read_ahead("/api/v3/depth?symbol=BTCUSDT&limit=1000",
                     json.dumps(snapshot).encode(), 5_000)  # fmt: skip
    state.sent("btcusdt@depth@100ms", frame_data(e="depthUpdate", E=1, s="BTCUSDT", U=99, u=101,
                                                 b=[["10", "3"]], a=[]))  # fmt: skip
    # Before the clock reaches the snapshot marketd got: that snapshot, at the limit asked.
    assert answer(rest, "/api/v3/depth", 4_000, symbol="BTCUSDT", limit="1") == (
        200, {"lastUpdateId": 100, "bids": [["10", "1"]], "asks": [["11", "1"]]})  # fmt: skip
    state.passed("/api/v3/depth?symbol=BTCUSDT&limit=1000", 5_000)
    state.sent("btcusdt@depth@100ms", frame_data(e="depthUpdate", E=2, s="BTCUSDT", U=102, u=103,
                                                 b=[["9", "0"]], a=[["10.5", "2"]]))  # fmt: skip
    # After it: the replay's own book, which the diffs carried on.
    own = {"lastUpdateId": 103, "bids": [["10", "3"]], "asks": [["10.5", "2"], ["11", "1"]]}
    assert answer(rest, "/api/v3/depth", 6_000, symbol="btcusdt") == (200, own)
    state.sent("btcusdt@depth@100ms", frame_data(e="depthUpdate", E=3, s="BTCUSDT", U=110, u=111,
                                                 b=[], a=[]))  # fmt: skip
    status, body = answer(rest, "/api/v3/depth", 7_000, symbol="BTCUSDT")
    assert status == 503
    assert body["code"] == -1008
    assert answer(rest, "/api/v3/depth", 7_000, symbol="XRPUSDT") == (
        400, {"code": -1121, "msg": "Invalid symbol."})  # fmt: skip
    assert answer(rest, "/api/v3/depth", 7_000)[1]["code"] == -1102  # type: ignore[index]


def test_trade_endpoints_answer_from_frames_and_recorded_backfill() -> None:
    state = MarketState(Market.USDM)
    rest = ReplayRest(state)
    for a in (10, 11, 14):
        data = frame_data(e="aggTrade", E=a, s="ETHUSDT", a=a, p="2000.1", q="0.5", f=a * 2,
                          l=a * 2, T=a, m=False)  # fmt: skip
        state.sent("ethusdt@aggTrade", data)
    page = [{"a": a, "p": "2000.2", "q": "1", "f": a * 2, "l": a * 2, "T": a, "m": True}
            for a in (12, 13)]  # fmt: skip
    state.read_ahead("/fapi/v1/aggTrades?symbol=ETHUSDT&fromId=12&limit=1000",
                     json.dumps(page).encode(), 99)  # fmt: skip
    status, rows = answer(rest, "/fapi/v1/aggTrades", 10**9, symbol="ETHUSDT", fromId="11")
    assert status == 200
    assert [(r["a"], r["p"], r["m"]) for r in rows] == [  # type: ignore[union-attr,index]
        (11, "2000.1", False), (12, "2000.2", True), (13, "2000.2", True), (14, "2000.1", False)
    ]  # fmt: skip
    assert "M" not in rows[0]  # type: ignore[index,operator]
    status, body = answer(rest, "/fapi/v1/aggTrades", 10**9, symbol="ETHUSDT", fromId="3")
    assert (status, body["code"]) == (400, -1128)  # type: ignore[index]
    assert "older than the oldest" in body["msg"]  # type: ignore[index]
    assert answer(rest, "/fapi/v1/ticker/price", 10**9, symbol="ETHUSDT")[1] == {
        "symbol": "ETHUSDT", "price": "2000.1", "time": 14}  # fmt: skip
    status, body = answer(rest, "/fapi/v1/trades", 10**9, symbol="ETHUSDT")
    assert (status, body["code"]) == (400, -1128)  # no raw trades recorded  # type: ignore[index]
    assert answer(rest, "/fapi/v1/klines", 10**9, symbol="ETHUSDT", interval="1s")[0] == 400


def test_premium_index_and_book_ticker_are_the_last_frames() -> None:
    state = MarketState(Market.USDM)
    rest = ReplayRest(state)
    state.sent("btcusdt@markPrice@1s", frame_data(e="markPriceUpdate", E=7, s="BTCUSDT",
               p="100.5", i="100.1", P="100.2", r="0.0001", T=28_800_000))  # fmt: skip
    state.sent("btcusdt@bookTicker", frame_data(e="bookTicker", u=5, E=8, T=8, s="BTCUSDT",
               b="100.4", B="3", a="100.6", A="4"))  # fmt: skip
    assert answer(rest, "/fapi/v1/premiumIndex", 10**9, symbol="BTCUSDT")[1] == {
        "symbol": "BTCUSDT", "markPrice": "100.5", "indexPrice": "100.1",
        "estimatedSettlePrice": "100.2", "lastFundingRate": "0.0001",
        "interestRate": "0.00010000", "nextFundingTime": 28_800_000, "time": 7}  # fmt: skip
    assert answer(rest, "/fapi/v1/ticker/bookTicker", 10**9)[1] == [{
        "symbol": "BTCUSDT", "bidPrice": "100.4", "bidQty": "3", "askPrice": "100.6",
        "askQty": "4", "time": 8, "lastUpdateId": 5}]  # fmt: skip
    state.sent("btcusdt@markPrice@1s", "{not json")
    assert state.bad_frames == 1
    assert answer(rest, "/fapi/v1/nothing", 0)[0] == 404


# -- values --------------------------------------------------------------------------------


def test_times_speeds_and_frame_data() -> None:
    assert parse_instant("1796220000000") == 1796220000000 * 10**6
    assert parse_instant("2026-12-02T14:00:00Z") == parse_instant("2026-12-02T14:00:00")
    assert parse_instant("2026-12-02T15:00:00+01:00") == parse_instant("2026-12-02T14:00:00Z")
    assert parse_instant("1970-01-01T00:00:01.5Z") == 1_500_000_000
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant("yesterday")
    assert parse_speed("max") is None
    assert parse_speed("10") == 10.0
    for bad in ("0", "-1", "fast", "inf", "nan"):
        with pytest.raises(ValueError, match="above 0"):
            parse_speed(bad)
    assert data_of('{"stream":"a@b","data":{"x":1}}', "a@b") == '{"x":1}'
    assert data_of('{"stream":"a@b","data":{"x":1}}', "c@d") is None
