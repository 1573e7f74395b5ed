"""``GET /_fake/book``: the fake's true book over HTTP, so any client can be checked against it."""

from __future__ import annotations

import attrs
import pytest
import trio
from fxclient import ClientBook, http, open_ws
from kit.wait import poll_until

from marketd.data.records import Market
from marketd.fakex import FakeExchange, FakeExchangeConfig, open_fake_exchange

CONFIG = FakeExchangeConfig(symbols=3, seed=23, rate=1_500)
JOURNAL = attrs.evolve(CONFIG, book_journal=200_000)
DEPTH = {
    Market.SPOT: ("/stream?streams=btcusdt@depth@100ms", "/api/v3/depth"),
    Market.USDM: ("/public/stream?streams=btcusdt@depth@100ms", "/fapi/v1/depth"),
}


def urls(fx: FakeExchange, market: Market) -> tuple[str, str]:
    """The depth WebSocket URL and the REST snapshot URL of BTCUSDT in ``market``."""
    ws_path, depth_path = DEPTH[market]
    if market is Market.SPOT:
        return (
            fx.spot_ws_url + ws_path,
            fx.spot_rest_url + depth_path + "?symbol=BTCUSDT&limit=1000",
        )
    return (
        fx.futures_ws_url + ws_path,
        fx.futures_rest_url + depth_path + "?symbol=BTCUSDT&limit=1000",
    )


def as_lists(levels: list[tuple[str, str]]) -> list[list[str]]:
    return [list(level) for level in levels]


@pytest.mark.parametrize("market", list(Market))
async def test_the_book_now_is_the_true_book_and_a_synced_clients_book(market: Market) -> None:
    with trio.fail_after(15):
        async with open_fake_exchange(CONFIG) as fx:
            ws_url, depth_url = urls(fx, market)
            async with open_ws(ws_url, queue=10_000) as ws:
                client = ClientBook(chained=market is Market.USDM)
                await client.sync(ws, depth_url)
                fx.pause()  # the true book holds still from here
                url = f"{fx.control_url}/book?market={market.value}&symbol=BTCUSDT"
                status, headers, book = await http(url)
                assert status == 200
                assert headers["content-type"].startswith("application/json")
                last, bids, asks = fx.true_book(market, "BTCUSDT")
                assert book == {
                    "market": market.value,
                    "symbol": "BTCUSDT",
                    "lastUpdateId": last,
                    "bids": as_lists(bids),
                    "asks": as_lists(asks),
                }
                assert last == fx.model(market).by_name["BTCUSDT"].book.last_update_id
                assert float(book["bids"][0][0]) < float(book["asks"][0][0])
                # A client that kept a book from a snapshot and the diffs agrees at that id.
                while client.last_update_id < last:
                    await client.advance(ws)
                assert client.last_update_id == last
                assert client.levels() == (book["bids"], book["asks"])
                # limit: the best levels of each side; a lower-case symbol is the same symbol.
                status, _, top = await http(
                    f"{fx.control_url}/book?market={market.value}&symbol=btcusdt&limit=3"
                )
                assert status == 200
                assert top == book | {"bids": book["bids"][:3], "asks": book["asks"][:3]}


@pytest.mark.parametrize("market", list(Market))
async def test_the_book_at_an_update_id_is_the_book_a_client_had_there(market: Market) -> None:
    """With ``book_journal`` the book right after any recent update id, while the market
    keeps moving: equal to the REST snapshot at its id, and to a client's book at every
    diff it applied after it."""
    with trio.fail_after(20):
        async with open_fake_exchange(JOURNAL) as fx:
            ws_url, depth_url = urls(fx, market)
            base = f"{fx.control_url}/book?market={market.value}&symbol=BTCUSDT"
            async with open_ws(ws_url, queue=10_000) as ws:
                client = ClientBook(chained=market is Market.USDM)
                await client.sync(ws, depth_url)
                snapshot_id = client.last_update_id
                status, _, at_snapshot = await http(f"{base}&update_id={snapshot_id}&limit=1000")
                assert status == 200
                assert at_snapshot["lastUpdateId"] == snapshot_id
                assert (at_snapshot["bids"], at_snapshot["asks"]) == client.levels()
                seen: list[int] = []
                for _ in range(40):
                    u = await client.advance(ws)
                    status, _, book = await http(f"{base}&update_id={u}")
                    assert status == 200
                    assert book["lastUpdateId"] == u
                    assert (book["bids"], book["asks"]) == client.levels(), u
                    _, bids, asks = fx.true_book(market, "BTCUSDT", u)
                    assert (book["bids"], book["asks"]) == (as_lists(bids), as_lists(asks))
                    seen.append(u)
    assert seen == sorted(set(seen))
    assert seen[0] > snapshot_id


async def test_bad_requests_get_clear_errors() -> None:
    with trio.fail_after(10):
        async with open_fake_exchange(CONFIG) as fx:
            book = fx.control_url + "/book"
            last = fx.model(Market.SPOT).by_name["BTCUSDT"].book.last_update_id
            cases = [
                ("", 400, "market must be 'spot' or 'usdm', not None"),
                ("?market=coinm&symbol=BTCUSDT", 400, "market must be 'spot' or 'usdm'"),
                ("?market=spot", 400, "symbol must be given"),
                ("?market=spot&symbol=NOPEUSDT", 404, "unknown spot symbol 'NOPEUSDT'"),
                ("?market=usdm&symbol=BTCUSDT&limit=ten", 400, "limit must be an integer"),
                ("?market=usdm&symbol=BTCUSDT&limit=0", 400, "limit must be at least 1, not 0"),
                ("?market=spot&symbol=BTCUSDT&update_id=1.5", 400, "update_id must be an integer"),
                ("?market=spot&symbol=BTCUSDT&update_id=-3", 400, "update_id must be at least 0"),
                # No journal kept: no book at any update id, not even the current one.
                (f"?market=spot&symbol=BTCUSDT&update_id={last}", 404, "set book_journal"),
            ]
            for query, want_status, want_error in cases:
                status, _, body = await http(book + query)
                assert status == want_status, query
                assert want_error in body["error"], (query, body)
                assert set(body) == {"error"}
            status, _, body = await http(book + "?market=spot&symbol=BTCUSDT", "POST")
            assert (status, body) == (405, {"error": "/_fake/book takes GET"})
            status, _, body = await http(fx.control_url + "/pause")
            assert (status, body) == (405, {"error": "/_fake/pause takes POST"})
            status, _, body = await http(fx.control_url + "/nope")
            assert (status, body) == (404, {"error": "no such control 'nope'"})
            assert not fx.paused


async def test_an_update_id_outside_the_journal_is_not_found() -> None:
    config = attrs.evolve(CONFIG, book_journal=50)
    with trio.fail_after(10):
        async with open_fake_exchange(config) as fx:
            model = fx.model(Market.USDM).by_name["BTCUSDT"]
            journal = model.journal
            assert journal is not None
            start = journal.first_update_id()
            await poll_until(
                lambda: journal.first_update_id() > start,
                timeout=8,
                what="the journal's oldest diffs folded into its base",
            )
            fx.pause()
            oldest, newest = journal.first_update_id(), model.book.last_update_id
            base = f"{fx.control_url}/book?market=usdm&symbol=BTCUSDT&update_id="
            status, _, body = await http(base + str(oldest - 1))
            assert (status, body) == (
                404,
                {"error": f"update id {oldest - 1} is older than the journal"},
            )
            status, _, body = await http(base + str(newest + 1))
            assert (status, body) == (404, {"error": f"no book state at update id {newest + 1}"})
            for u in (oldest, newest):
                status, _, book = await http(base + str(u))
                _, bids, asks = fx.true_book(Market.USDM, "BTCUSDT", u)
                assert (status, book["lastUpdateId"]) == (200, u)
                assert (book["bids"], book["asks"]) == (as_lists(bids), as_lists(asks))
