"""REST snapshots and trade history against the streams; the /_fake control API."""

from __future__ import annotations

import itertools

import pytest
import trio
from fxclient import ClientBook, http, open_ws
from kit.wait import poll_until

from marketd.data.records import Market
from marketd.fakex import FakeExchangeConfig, open_fake_exchange
from marketd.fakex.frames import SymbolFrames

CONFIG = FakeExchangeConfig(symbols=3, seed=21, rate=1_500)


def _book_as_strings(fr: SymbolFrames) -> tuple[list[list[str]], list[list[str]]]:
    _, bids, asks = fr.model.book.snapshot(100_000)
    return (
        [[fr.fmt_p(p), fr.fmt_q(q)] for p, q in bids],
        [[fr.fmt_p(p), fr.fmt_q(q)] for p, q in asks],
    )


@pytest.mark.parametrize(
    ("market", "ws_path", "depth_path"),
    [
        (Market.SPOT, "/stream?streams=btcusdt@depth@100ms", "/api/v3/depth"),
        (Market.USDM, "/public/stream?streams=btcusdt@depth@100ms", "/fapi/v1/depth"),
    ],
)
async def test_snapshot_plus_diffs_equals_true_book(
    market: Market, ws_path: str, depth_path: str
) -> None:
    with trio.fail_after(15):
        async with open_fake_exchange(CONFIG) as fx:
            ws_url = fx.spot_ws_url if market is Market.SPOT else fx.futures_ws_url
            rest_url = fx.spot_rest_url if market is Market.SPOT else fx.futures_rest_url
            async with open_ws(ws_url + ws_path, queue=10_000) as ws:
                book = ClientBook(chained=market is Market.USDM)
                await book.sync(ws, rest_url + depth_path + "?symbol=BTCUSDT&limit=1000")
                fx.pause()
                target = fx.model(market).by_name["BTCUSDT"].book.last_update_id
                while book.last_update_id < target:
                    await book.advance(ws)
                assert book.last_update_id == target
                idx = fx.hubs[market].symbol_index["btcusdt"]
                assert book.levels() == _book_as_strings(fx.hubs[market].frames[idx])


async def test_agg_trades_from_id_is_the_consecutive_history() -> None:
    with trio.fail_after(10):
        async with open_fake_exchange(CONFIG) as fx:
            model = fx.model(Market.USDM).by_name["BTCUSDT"]
            hist = model.history
            await poll_until(
                lambda: hist.next_agg_id - (hist.first_agg_id or hist.next_agg_id) >= 30,
                timeout=20,
                what="30 aggregate trades",
            )
            first = hist.first_agg_id
            assert first is not None
            url = fx.futures_rest_url + f"/fapi/v1/aggTrades?symbol=BTCUSDT&fromId={first}&limit=20"
            status, headers, rows = await http(url)
            assert status == 200
            assert headers["x-mbx-used-weight-1m"] == "20"
            assert [r["a"] for r in rows] == list(range(first, first + 20))
            for a, b in itertools.pairwise(rows):
                assert b["f"] == a["l"] + 1
            truth = model.history.aggs(first, 20)
            fr = fx.hubs[Market.USDM].frames[0]
            assert [(r["p"], r["q"], r["T"]) for r in rows] == [
                (fr.fmt_p(t.price), fr.fmt_q(t.qty), t.time) for t in truth
            ]
            assert set(rows[0]) == {"a", "p", "q", "f", "l", "T", "m"}


async def test_historical_trades_and_spot_formats() -> None:
    with trio.fail_after(10):
        async with open_fake_exchange(CONFIG) as fx:
            model = fx.model(Market.SPOT).by_name["ETHUSDT"]
            await poll_until(
                lambda: model.history.first_id is not None,
                timeout=20,
                what="a trade in the history",
            )
            first = model.history.first_id
            assert first is not None
            url = fx.spot_rest_url + f"/api/v3/historicalTrades?symbol=ETHUSDT&fromId={first}"
            status, _, rows = await http(url)
            assert status == 200
            assert rows[0]["id"] == first
            assert [r["id"] for r in rows] == list(range(first, first + len(rows)))
            assert set(rows[0]) == {
                "id",
                "price",
                "qty",
                "quoteQty",
                "time",
                "isBuyerMaker",
                "isBestMatch",
            }
            _, _, aggs = await http(fx.spot_rest_url + "/api/v3/aggTrades?symbol=ETHUSDT&limit=5")
            assert len(aggs) <= 5
            assert all(r["M"] is True for r in aggs)


async def test_rest_errors_weights_and_exchange_info() -> None:
    with trio.fail_after(10):
        async with open_fake_exchange(CONFIG) as fx:
            status, _, body = await http(fx.spot_rest_url + "/api/v3/depth?symbol=NOPEUSDT")
            assert (status, body) == (400, {"code": -1121, "msg": "Invalid symbol."})
            status, _, body = await http(fx.futures_rest_url + "/fapi/v1/depth")
            assert (status, body["code"]) == (400, -1102)
            status, headers, body = await http(fx.spot_rest_url + "/api/v3/ping")
            assert (status, body) == (200, {})
            _, headers, _ = await http(fx.spot_rest_url + "/api/v3/depth?symbol=BTCUSDT&limit=5000")
            _, headers2, _ = await http(fx.spot_rest_url + "/api/v3/depth?symbol=BTCUSDT")
            assert int(headers2["x-mbx-used-weight-1m"]) - int(headers["x-mbx-used-weight-1m"]) == 5
            _, _, info = await http(fx.futures_rest_url + "/fapi/v1/exchangeInfo")
            assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
            assert info["rateLimits"][0] == {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 2400,
            }
            tick = info["symbols"][0]["filters"][0]
            assert tick["tickSize"] == "0.01"


async def test_rest_weight_budget_gives_429() -> None:
    from marketd.fakex import MarketLimits

    config = FakeExchangeConfig(symbols=1, rate=10, spot=MarketLimits(5, rest_weight_per_minute=12))
    with trio.fail_after(10):
        async with open_fake_exchange(config) as fx:
            statuses = []
            for _ in range(4):
                status, headers, _ = await http(fx.spot_rest_url + "/api/v3/depth?symbol=BTCUSDT")
                statuses.append(status)
            assert statuses[:2] == [200, 200]
            assert statuses[-1] == 429
            assert "retry-after" in headers


async def test_control_api_over_http() -> None:
    with trio.fail_after(10):
        async with open_fake_exchange(CONFIG) as fx:
            status, _, state = await http(fx.control_url + "/state")
            assert status == 200
            btc = state["markets"]["usdm"]["symbols"]["BTCUSDT"]
            assert {"first_trade_id", "last_trade_id", "last_update_id", "frames_sent"} <= set(btc)
            assert (await http(fx.control_url + "/pause", "POST"))[0] == 200
            assert fx.paused
            events = fx.hubs[Market.SPOT].events
            await trio.sleep(0.2)
            assert fx.hubs[Market.SPOT].events == events
            assert (await http(fx.control_url + "/resume", "POST"))[0] == 200
            await poll_until(
                lambda: fx.hubs[Market.SPOT].events > events, timeout=20, what="new market events"
            )
            before = fx.model(Market.USDM).by_name["BTCUSDT"].stats.last
            jump = {"market": "usdm", "symbol": "BTCUSDT", "percent": -5.0}
            status, _, body = await http(fx.control_url + "/jump", "POST", jump)
            assert status == 200
            assert float(body["price"]) == pytest.approx(before / 100 * 0.95, rel=1e-3)
            fault = {"kind": "gap", "market": "spot", "count": 2}
            status, _, body = await http(fx.control_url + "/fault", "POST", fault)
            assert (status, body) == (200, {"kind": "gap", "connections": 0})
            status, _, body = await http(fx.control_url + "/fault", "POST", {"kind": "boom"})
            assert status == 400
            assert "kind" in body["error"]
            _, _, state = await http(fx.control_url + "/state")
            assert state["faults_injected"]["gap"] == 1
