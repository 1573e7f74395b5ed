"""REST trade history against a bounded history: a ``fromId`` older than the oldest trade
held is refused (400, -1128), one beyond the newest is an empty page, one inside is the
history from exactly there. Binance never starts a page later than asked."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio
from fxclient import http
from kit.wait import poll_until

from marketd.data.records import Market
from marketd.fakex import FakeExchange, FakeExchangeConfig, open_fake_exchange
from marketd.fakex.history import TradeHistory

HISTORY = 300  # trades held per symbol (trimmed to this once twice as many are held)
CONFIG = FakeExchangeConfig(symbols=2, seed=5, rate=3_000, history=HISTORY)
# (market, endpoint, weight, the row's id key)
ENDPOINTS = [
    (Market.SPOT, "/api/v3/aggTrades", 4, "a"),
    (Market.SPOT, "/api/v3/historicalTrades", 25, "id"),
    (Market.USDM, "/fapi/v1/aggTrades", 20, "a"),
    (Market.USDM, "/fapi/v1/historicalTrades", 20, "id"),
]


def held(hist: TradeHistory, ids_key: str) -> tuple[int, int]:
    """The oldest and the next id of the aggregates (``a``) or raw trades (``id``) held."""
    if ids_key == "a":
        return hist.agg_base_id, hist.next_agg_id
    return hist.base_id, hist.next_id


Row = tuple[object, ...]


def expected_rows(
    fx: FakeExchange, market: Market, ids_key: str, from_id: int, limit: int
) -> list[Row]:
    """What the history holds from ``from_id``, as the exchange prints it."""
    hist = fx.model(market).by_name["BTCUSDT"].history
    fr = fx.hubs[market].frames[fx.hubs[market].symbol_index["btcusdt"]]
    if ids_key == "a":
        aggs = hist.aggs(from_id, limit)
        return [
            (a.id, fr.fmt_p(a.price), fr.fmt_q(a.qty), a.first_id, a.last_id, a.time) for a in aggs
        ]
    trades = hist.trades(from_id, limit)
    return [(t.id, fr.fmt_p(t.price), fr.fmt_q(t.qty), t.time) for t in trades]


def decoded(rows: list[dict[str, Any]], ids_key: str) -> list[Row]:
    if ids_key == "a":
        return [(r["a"], r["p"], r["q"], r["f"], r["l"], r["T"]) for r in rows]
    return [(r["id"], r["price"], r["qty"], r["time"]) for r in rows]


@pytest.mark.parametrize(("market", "endpoint", "weight", "ids_key"), ENDPOINTS)
async def test_from_id_older_than_held_is_refused_newer_is_empty(
    market: Market, endpoint: str, weight: int, ids_key: str
) -> None:
    with trio.fail_after(20):
        async with open_fake_exchange(CONFIG) as fx:
            hist = fx.model(market).by_name["BTCUSDT"].history
            first_ever = held(hist, ids_key)[0]
            await poll_until(
                lambda: held(hist, ids_key)[0] > first_ever + 10,
                timeout=15,
                what="the history trimmed past its first trades",
            )
            fx.pause()  # what is held stays put from here
            oldest, next_id = held(hist, ids_key)
            rest = (fx.spot_rest_url if market is Market.SPOT else fx.futures_rest_url) + endpoint
            if (second := time.time() % 60) > 58:  # the used weight must stay in one minute
                await trio.sleep(60.2 - second)

            status, headers, body = await http(f"{rest}?symbol=BTCUSDT&fromId={oldest - 1}")
            assert status == 400
            assert body == {
                "code": -1128,
                "msg": f"fromId {oldest - 1} is older than the oldest trade this server holds"
                f" ({oldest})",
            }
            used = int(headers["x-mbx-used-weight-1m"])
            assert used == weight  # charged as a served request, not as a malformed one
            status, _, body = await http(f"{rest}?symbol=BTCUSDT&fromId={first_ever}&limit=5")
            assert (status, body["code"]) == (400, -1128)

            # Inside the held range: from exactly fromId, as the history holds it.
            status, headers, rows = await http(f"{rest}?symbol=BTCUSDT&fromId={oldest}&limit=7")
            assert status == 200
            assert int(headers["x-mbx-used-weight-1m"]) == used + 2 * weight
            assert [r[ids_key] for r in rows] == list(range(oldest, oldest + 7))
            assert decoded(rows, ids_key) == expected_rows(fx, market, ids_key, oldest, 7)
            status, _, rows = await http(f"{rest}?symbol=BTCUSDT&fromId={next_id - 3}")
            assert [r[ids_key] for r in rows] == [next_id - 3, next_id - 2, next_id - 1]
            assert decoded(rows, ids_key) == expected_rows(fx, market, ids_key, next_id - 3, 3)

            # Beyond the newest: an empty page, as Binance answers.
            for from_id in (next_id, next_id + 1_000_000):
                status, _, rows = await http(f"{rest}?symbol=BTCUSDT&fromId={from_id}")
                assert (status, rows) == (200, [])


async def test_without_from_id_the_newest_are_served() -> None:
    """No ``fromId``: the newest trades, whatever has been trimmed."""
    with trio.fail_after(20):
        async with open_fake_exchange(CONFIG) as fx:
            hist = fx.model(Market.SPOT).by_name["BTCUSDT"].history
            first_ever = hist.base_id
            await poll_until(
                lambda: hist.base_id > first_ever, timeout=15, what="the history trimmed"
            )
            fx.pause()
            status, _, rows = await http(
                fx.spot_rest_url + "/api/v3/historicalTrades?symbol=BTCUSDT&limit=4"
            )
            assert status == 200
            want = expected_rows(fx, Market.SPOT, "id", hist.next_id - 4, 4)
            assert decoded(rows, "id") == want
            assert want[-1][0] == hist.next_id - 1
