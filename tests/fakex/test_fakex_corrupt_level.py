"""The ``corrupt_level`` fault: one wrong level in the diffs sent, the sequence intact, the
true book untouched (what the books' audit must catch)."""

from __future__ import annotations

import pytest
import trio
from fxclient import ClientBook, http, open_ws
from kit.wait import poll_until

from marketd.data.records import Market
from marketd.fakex import FakeExchangeConfig, Fault, FaultKind, open_fake_exchange
from marketd.fakex.control import BadControl, parse_fault

CONFIG = FakeExchangeConfig(symbols=3, seed=29, rate=300)
DEPTH = {
    Market.SPOT: ("/stream?streams=btcusdt@depth@100ms", "/api/v3/depth"),
    Market.USDM: ("/public/stream?streams=btcusdt@depth@100ms", "/fapi/v1/depth"),
}


def test_the_control_api_takes_a_symbol_for_corrupt_level_only_with_gap() -> None:
    fault = parse_fault({"kind": "corrupt_level", "market": "usdm", "symbol": "ethusdt"})
    assert fault == Fault(FaultKind.CORRUPT_LEVEL, Market.USDM, symbol="ETHUSDT")
    assert parse_fault({"kind": "corrupt_level", "count": 2}).count == 2
    with pytest.raises(BadControl, match="only with kind 'gap' or 'corrupt_level'"):
        parse_fault({"kind": "drop", "symbol": "BTCUSDT"})


@pytest.mark.parametrize("market", list(Market))
async def test_one_level_is_sent_wrong_and_the_sequence_and_true_book_hold(
    market: Market,
) -> None:
    ws_path, depth_path = DEPTH[market]
    with trio.fail_after(20):
        async with open_fake_exchange(CONFIG) as fx:
            base = fx.spot_ws_url if market is Market.SPOT else fx.futures_ws_url
            rest = fx.spot_rest_url if market is Market.SPOT else fx.futures_rest_url
            async with open_ws(base + ws_path, queue=10_000) as ws:
                client = ClientBook(chained=market is Market.USDM)
                await client.sync(ws, f"{rest}{depth_path}?symbol=BTCUSDT&limit=1000")
                for _ in range(5):
                    await client.advance(ws)
                status, _, reply = await http(
                    f"{fx.control_url}/fault",
                    "POST",
                    {"kind": "corrupt_level", "market": market.value, "symbol": "BTCUSDT"},
                )
                assert (status, reply) == (200, {"kind": "corrupt_level", "connections": 1})
                hub = fx.hubs[market]
                await poll_until(lambda: hub.corrupted, timeout=10, what="a corrupted diff")
                [bad] = hub.corrupted
                # Every diff still continues the last (advance asserts U/u/pu) up to the
                # corrupted one and past it.
                while client.last_update_id < bad.update_id + 3:
                    await client.advance(ws)
                fx.pause()
                last = fx.state()["markets"][market.value]["symbols"]["BTCUSDT"]
                while client.last_update_id < last["last_update_id"]:
                    await client.advance(ws)
                status, _, true = await http(
                    f"{fx.control_url}/book?market={market.value}&symbol=BTCUSDT"
                )
    assert status == 200
    assert true["lastUpdateId"] == client.last_update_id
    assert (bad.symbol, bad.side) == ("BTCUSDT", "bid")
    assert bad.sent_qty != bad.true_qty
    bids, asks = client.levels()
    ours = dict(bids if bad.side == "bid" else asks)
    theirs = dict(true["bids"] if bad.side == "bid" else true["asks"])
    # The client's book differs from the true book at that one level (unless the market
    # changed it since: then the two are equal again).
    differing = {p for p in ours.keys() | theirs.keys() if ours.get(p) != theirs.get(p)}
    if theirs.get(bad.price) == bad.true_qty:
        assert differing == {bad.price}
        assert (ours[bad.price], theirs[bad.price]) == (bad.sent_qty, bad.true_qty)
    else:
        assert differing == set()
    other = dict(asks if bad.side == "bid" else bids)
    assert other == dict(true["asks"] if bad.side == "bid" else true["bids"])
    state_levels = fx.state()["markets"][market.value]["corrupted_levels"]
    assert state_levels == [
        {
            "symbol": "BTCUSDT",
            "update_id": bad.update_id,
            "side": "bid",
            "price": bad.price,
            "sent_qty": bad.sent_qty,
            "true_qty": bad.true_qty,
        }
    ]
