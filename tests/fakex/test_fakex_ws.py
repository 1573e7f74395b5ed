"""The fake exchange's WebSocket side, through a real trio-websocket client over loopback."""

from __future__ import annotations

import contextlib

import pytest
import trio
from fxclient import control, open_ws, read_until_closed, recv_data, recv_json
from kit.wait import poll_until
from trio_websocket import ConnectionClosed, ConnectionRejected
from wsproto.frame_protocol import FrameProtocol, Opcode

from marketd.data.records import Market
from marketd.fakex import FakeExchange, FakeExchangeConfig, MarketLimits, open_fake_exchange
from marketd.fakex.wsconn import text_frames

FAST = FakeExchangeConfig(symbols=3, seed=11, rate=2_000)


async def test_combined_stream_from_url() -> None:
    with trio.fail_after(10):
        async with (
            open_fake_exchange(FAST) as fx,
            open_ws(fx.spot_ws_url + "/stream?streams=btcusdt@trade/ethusdt@depth@100ms") as ws,
        ):
            seen: dict[str, dict[str, object]] = {}
            while len(seen) < 2:
                frame = await recv_data(ws)
                seen[frame["stream"]] = frame["data"]
            trade = seen["btcusdt@trade"]
            assert trade["e"] == "trade"
            assert trade["s"] == "BTCUSDT"
            assert isinstance(trade["t"], int)
            assert isinstance(trade["p"], str)
            assert seen["ethusdt@depth@100ms"]["e"] == "depthUpdate"


async def test_raw_stream_consecutive_trade_ids() -> None:
    with trio.fail_after(10):
        async with (
            open_fake_exchange(FAST) as fx,
            open_ws(fx.spot_ws_url + "/ws/btcusdt@trade") as ws,
        ):
            ids = [(await recv_json(ws))["t"] for _ in range(30)]
            assert ids == list(range(ids[0], ids[0] + 30))
            history = fx.model(Market.SPOT).by_name["BTCUSDT"].history
            assert history.first_id is not None
            assert ids[-1] < history.next_id


async def test_subscribe_list_unsubscribe() -> None:
    with trio.fail_after(10):
        async with open_fake_exchange(FAST) as fx, open_ws(fx.spot_ws_url + "/stream") as ws:
            assert await control(ws, "SUBSCRIBE", ["btcusdt@aggTrade", "!miniTicker@arr"], 1) == {
                "result": None,
                "id": 1,
            }
            reply = await control(ws, "LIST_SUBSCRIPTIONS", [], 2)
            assert reply == {"result": ["btcusdt@aggTrade", "!miniTicker@arr"], "id": 2}
            names = set()
            while names != {"btcusdt@aggTrade", "!miniTicker@arr"}:
                frame = await recv_data(ws)
                names.add(frame["stream"])
                if frame["stream"] == "!miniTicker@arr":
                    assert isinstance(frame["data"], list)
                    assert frame["data"][0]["e"] == "24hrMiniTicker"
            await control(ws, "UNSUBSCRIBE", ["btcusdt@aggTrade", "!miniTicker@arr"], 3)
            assert (await control(ws, "LIST_SUBSCRIPTIONS", [], 4))["result"] == []
            bad = await control(ws, "SUBSCRIBE", ["btcusdt@nonsense"], 5)
            assert bad["error"]["code"] == 2
            assert bad["id"] == 5


async def test_raw_ws_subscribe_gets_bare_payloads() -> None:
    with trio.fail_after(10):
        async with open_fake_exchange(FAST) as fx, open_ws(fx.futures_ws_url + "/public/ws") as ws:
            await control(ws, "SUBSCRIBE", ["btcusdt@depth"], 1)
            while True:
                msg = await recv_json(ws)
                if msg.get("e") == "depthUpdate":
                    assert {"U", "u", "pu", "T"} <= msg.keys()
                    break


async def test_futures_routing_wrong_route_never_delivered() -> None:
    with trio.fail_after(10):
        async with open_fake_exchange(FAST) as fx:
            url = fx.futures_ws_url + "/public/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker"
            async with open_ws(url) as ws:
                for _ in range(50):
                    frame = await recv_data(ws)
                    assert frame["stream"] == "btcusdt@bookTicker"
                    assert frame["data"]["e"] == "bookTicker"
                listed = await control(ws, "LIST_SUBSCRIPTIONS", [], 1)
                assert "btcusdt@aggTrade" in listed["result"]
            assert fx.state()["markets"]["usdm"]["wrong_route_subscriptions"] == 1
            url = fx.futures_ws_url + "/market/stream?streams=btcusdt@aggTrade/!markPrice@arr@1s"
            async with open_ws(url) as ws:
                names = set()
                while names != {"btcusdt@aggTrade", "!markPrice@arr@1s"}:
                    names.add((await recv_data(ws))["stream"])


async def test_a_timed_stream_flows_beside_the_per_event_ones() -> None:
    """Klines (pushed on a clock) and trades (per event) on one connection: both flow, and
    the trades stay consecutive."""
    with trio.fail_after(10):
        async with open_fake_exchange(FAST) as fx:
            url = fx.spot_ws_url + "/stream?streams=btcusdt@kline_1m/btcusdt@trade"
            async with open_ws(url, queue=100) as ws:
                ids: list[int] = []
                klines = 0
                while len(ids) < 20 or not klines:
                    frame = await recv_data(ws)
                    if frame["stream"] == "btcusdt@kline_1m":
                        assert frame["data"]["k"]["i"] == "1m"
                        klines += 1
                    else:
                        assert frame["stream"] == "btcusdt@trade"
                        ids.append(frame["data"]["t"])
                assert ids == list(range(ids[0], ids[0] + len(ids)))
                listed = await control(ws, "LIST_SUBSCRIPTIONS", [], 1)
                assert sorted(listed["result"]) == ["btcusdt@kline_1m", "btcusdt@trade"]
                reply = await control(ws, "SUBSCRIBE", ["btcusdt@avgPrice"], 2)
                assert reply == {"result": None, "id": 2}
                reply = await control(ws, "SUBSCRIBE", ["!forceOrder@arr"], 3)
                assert reply["error"]["code"] == 2  # spot has no liquidations
            assert fx.state()["markets"]["spot"]["wrong_route_subscriptions"] == 0
            await poll_until(
                lambda: fx.hubs[Market.SPOT].subscribers() == 0,
                timeout=20,
                what="no subscriber left",
            )


async def test_futures_all_market_tickers_and_book_tickers() -> None:
    with trio.fail_after(15):
        async with open_fake_exchange(FAST) as fx:
            url = fx.futures_ws_url + "/market/stream?streams=!ticker@arr"
            async with open_ws(url) as ws:
                frame = await recv_data(ws)
                assert frame["stream"] == "!ticker@arr"
                items = frame["data"]
                assert isinstance(items, list)
                assert items
                assert {i["e"] for i in items} == {"24hrTicker"}
                assert {i["s"] for i in items} <= {"BTCUSDT", "ETHUSDT", "BNBUSDT"}
            url = fx.futures_ws_url + "/public/stream?streams=!bookTicker"
            async with open_ws(url) as ws:
                symbols = set()
                while len(symbols) < 2:
                    frame = await recv_data(ws)
                    assert frame["stream"] == "!bookTicker"
                    assert frame["data"]["e"] == "bookTicker"
                    assert float(frame["data"]["b"]) < float(frame["data"]["a"])
                    symbols.add(frame["data"]["s"])


async def test_an_unknown_path_is_refused() -> None:
    with trio.fail_after(10):
        async with open_fake_exchange(FAST) as fx:
            with pytest.RaisesGroup(ConnectionRejected, flatten_subgroups=True) as info:
                async with open_ws(fx.spot_ws_url + "/nope"):
                    pass
            assert info.value.exceptions[0].status_code == 404


async def test_unknown_names_in_the_url_are_ignored_and_subscribe_still_works() -> None:
    # ccxt's way: open /ws/<its own id>, then SUBSCRIBE; a name the market does not serve
    # beside a valid one costs only itself.
    with trio.fail_after(10):
        async with open_fake_exchange(FAST) as fx:
            async with open_ws(fx.spot_ws_url + "/ws/0") as ws:
                ack = await control(ws, "SUBSCRIBE", ["btcusdt@trade"], 1)
                assert ack == {"result": None, "id": 1}
                frame = await recv_json(ws)
                while "e" not in frame:
                    frame = await recv_json(ws)
                assert (frame["e"], frame["s"]) == ("trade", "BTCUSDT")
            url = fx.spot_ws_url + "/stream?streams=btcusdt@markPrice/ethusdt@trade"
            async with open_ws(url) as ws:
                frame = await recv_data(ws)
                assert frame["stream"] == "ethusdt@trade"
                assert frame["data"]["s"] == "ETHUSDT"
            assert fx.state()["markets"]["spot"]["unknown_url_streams"] == 2


async def test_stream_limit_per_connection() -> None:
    config = FakeExchangeConfig(symbols=3, rate=10, spot=MarketLimits(5, max_streams=2))
    with trio.fail_after(10):
        async with open_fake_exchange(config) as fx, open_ws(fx.spot_ws_url + "/stream") as ws:
            ok = await control(ws, "SUBSCRIBE", ["btcusdt@trade", "ethusdt@trade"], 1)
            assert ok["result"] is None
            over = await control(ws, "SUBSCRIBE", ["bnbusdt@trade"], 2)
            assert over["error"]["code"] == 2


async def test_incoming_message_rate_limit_disconnects() -> None:
    config = FakeExchangeConfig(symbols=2, rate=10, spot=MarketLimits(3))
    with trio.fail_after(10):
        async with open_fake_exchange(config) as fx:
            async with open_ws(fx.spot_ws_url + "/stream") as ws:
                with contextlib.suppress(ConnectionClosed):  # may already be cut while sending
                    for i in range(10):
                        await ws.send_message(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
                closed = await read_until_closed(ws)
                assert closed.reason is not None
                assert closed.reason.code == 1008
            assert fx.state()["markets"]["spot"]["rate_limit_disconnects"] == 1


async def test_ping_and_pong_timeout() -> None:
    limits = MarketLimits(5, ping_interval=0.2, pong_timeout=0.5)
    config = FakeExchangeConfig(symbols=2, rate=2_000, spot=limits)
    with trio.fail_after(10):
        async with open_fake_exchange(config) as fx:
            # A client that reads answers pings: still open after several intervals.
            async with open_ws(fx.spot_ws_url + "/ws/btcusdt@depth") as ws:
                with trio.move_on_after(1.0):
                    while True:
                        await ws.get_message()
                assert ws.closed is None
            # A client that stops reading stops answering pings: cut.
            async with open_ws(fx.spot_ws_url + "/ws/btcusdt@depth", queue=1) as ws:
                await poll_until(
                    lambda: fx.state()["markets"]["spot"]["pong_timeouts"] > 0,
                    timeout=20,
                    what="a pong timeout",
                )


async def _run_fake(stop: trio.Event, *, task_status: trio.TaskStatus[FakeExchange]) -> None:
    async with open_fake_exchange(FAST) as fx:
        task_status.started(fx)
        await stop.wait()


async def test_shutdown_closes_clients_with_1001() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            stop = trio.Event()
            fx = await nursery.start(_run_fake, stop)
            async with open_ws(fx.spot_ws_url + "/ws/btcusdt@trade") as ws:
                await ws.get_message()
                stop.set()
                closed = await read_until_closed(ws)
                assert closed.reason is not None
                assert closed.reason.code == 1001


def test_text_frames_are_what_a_client_parser_reads() -> None:
    """The sender's own framing against wsproto's client-side parser: every length
    boundary (7-bit, 16-bit, 64-bit), empty and non-ASCII text, in order."""
    texts = ["", "a" * 125, "b" * 126, "币" * 42, "c" * 65_535, "d" * 65_536, '{"x":1}']
    parser = FrameProtocol(client=True, extensions=[])
    parser.receive_bytes(text_frames(texts))
    frames = list(parser.received_frames())
    assert [(f.opcode, f.frame_finished, f.message_finished) for f in frames] == [
        (Opcode.TEXT, True, True)
    ] * len(texts)
    assert [f.payload for f in frames] == texts
