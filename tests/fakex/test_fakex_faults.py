"""Each injected fault, as a real client sees it."""

from __future__ import annotations

import itertools

import attrs
import orjson
import trio
from fxclient import open_ws, read_until_closed, recv_data
from kit.wait import poll_until

from marketd.data.records import Market
from marketd.fakex import (
    FakeExchange,
    FakeExchangeConfig,
    Fault,
    FaultKind,
    PeriodicFault,
    open_fake_exchange,
)

CONFIG = FakeExchangeConfig(symbols=2, seed=3, rate=1_000)


async def _wait_connected(fx: FakeExchange, n: int = 1) -> None:
    await poll_until(lambda: len(fx.connections) >= n, timeout=20, what=f"{n} connections")


async def test_drop_resets_without_close_frame() -> None:
    with trio.fail_after(10):
        async with (
            open_fake_exchange(CONFIG) as fx,
            open_ws(fx.spot_ws_url + "/ws/btcusdt@trade") as ws,
        ):
            await ws.get_message()
            assert fx.inject_fault(Fault(FaultKind.DROP, Market.SPOT)) == 1
            closed = await read_until_closed(ws)
            assert closed.reason is not None
            assert closed.reason.code == 1006  # abnormal: no close frame
            assert fx.state()["faults_injected"]["drop"] == 1


async def test_server_shutdown_event_then_close() -> None:
    with trio.fail_after(10):
        async with open_fake_exchange(CONFIG) as fx:
            url = fx.futures_ws_url + "/market/stream?streams=btcusdt@aggTrade"
            async with open_ws(url) as ws, open_ws(fx.futures_ws_url + "/market/ws") as raw:
                await recv_data(ws)
                await _wait_connected(fx, 2)
                fx.inject_fault(Fault(FaultKind.SERVER_SHUTDOWN, Market.USDM, seconds=0.3))
                while (frame := await recv_data(ws))["stream"] != "!serverShutdown":
                    pass
                assert frame["data"]["e"] == "serverShutdown"
                assert isinstance(frame["data"]["E"], int)
                assert orjson.loads(await raw.get_message())["e"] == "serverShutdown"
                closed = await read_until_closed(ws)
                assert closed.reason is not None
                assert closed.reason.code == 1001


async def test_malformed_frames() -> None:
    with trio.fail_after(10):
        async with (
            open_fake_exchange(attrs.evolve(CONFIG, paused=True)) as fx,
            open_ws(fx.spot_ws_url + "/stream?streams=btcusdt@trade", queue=50) as ws,
        ):
            await _wait_connected(fx)
            fx.inject_fault(Fault(FaultKind.MALFORMED, Market.SPOT, count=4))
            broken = [await ws.get_message() for _ in range(4)]
    decoded = []
    for text in broken:
        try:
            decoded.append(orjson.loads(text))
        except orjson.JSONDecodeError:
            decoded.append(None)
    assert decoded[0] is None  # not JSON
    assert decoded[1] is None  # truncated
    assert decoded[2]["data"]["t"] == "abc"  # wrong types
    assert set(decoded[3]["data"]) == {"e", "E"}  # missing fields
    assert decoded[3]["stream"] == "btcusdt@trade"


async def test_unknown_event_on_subscribed_stream() -> None:
    with trio.fail_after(10):
        async with (
            open_fake_exchange(attrs.evolve(CONFIG, paused=True)) as fx,
            open_ws(fx.spot_ws_url + "/stream?streams=ethusdt@depth") as ws,
        ):
            await _wait_connected(fx)
            fx.inject_fault(Fault(FaultKind.UNKNOWN_EVENT, Market.SPOT, count=2))
            for _ in range(2):
                frame = orjson.loads(await ws.get_message())
                assert frame["stream"] == "ethusdt@depth"
                assert frame["data"]["e"] == "fakeUnknownEvent"


async def test_stall_stops_everything_then_resumes() -> None:
    with trio.fail_after(10):
        async with (
            open_fake_exchange(CONFIG) as fx,
            open_ws(fx.spot_ws_url + "/ws/btcusdt@depth", queue=10_000) as ws,
        ):
            await ws.get_message()
            last_before = fx.model(Market.SPOT).by_name["BTCUSDT"].book.last_update_id
            stalled_at = trio.current_time()
            fx.inject_fault(Fault(FaultKind.STALL, Market.SPOT, seconds=0.6))
            # Diffs generated before the stall may still arrive (on the wire, or queued);
            # the first one generated after it (by its update ids, not by a quiet spell
            # that a loaded machine can fake or hide) only once the stall is over.
            while orjson.loads(await ws.get_message())["U"] <= last_before:
                pass
            assert trio.current_time() - stalled_at >= 0.6 - 1e-6


async def test_gap_skips_sequenced_frames() -> None:
    with trio.fail_after(10):
        async with (
            open_fake_exchange(CONFIG) as fx,
            open_ws(fx.spot_ws_url + "/ws/btcusdt@trade", queue=10_000) as ws,
        ):
            ids = [orjson.loads(await ws.get_message())["t"]]
            fx.inject_fault(Fault(FaultKind.GAP, Market.SPOT, count=3))
            # Frames queued before the fault (many, on a loaded machine) are all sent; the
            # skip takes the next three generated after it: read well past those.
            at_fault = fx.state()["markets"]["spot"]["symbols"]["BTCUSDT"]["last_trade_id"]
            while ids[-1] <= at_fault + 20:
                ids.append(orjson.loads(await ws.get_message())["t"])
            gaps = [b - a - 1 for a, b in itertools.pairwise(ids) if b != a + 1]
            assert sum(gaps) == 3
            assert fx.state()["markets"]["spot"]["frames_skipped"] == 3


async def test_periodic_drop() -> None:
    config = attrs.evolve(CONFIG, periodic_faults=(PeriodicFault(Fault(FaultKind.DROP), 0.3),))
    with trio.fail_after(10):
        async with (
            open_fake_exchange(config) as fx,
            open_ws(fx.futures_ws_url + "/public/ws/btcusdt@depth") as ws,
        ):
            await read_until_closed(ws)
            assert fx.state()["faults_injected"]["drop"] >= 1
