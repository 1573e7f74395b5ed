"""The fake exchange as a subprocess (the way the benchmark and demo run it), and its speed."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

import orjson
import trio
from fxclient import http, open_ws

from marketd.fakex import FakeExchangeConfig, open_fake_exchange
from marketd.fakex.cli import add_arguments, config_from_args


def test_arguments_make_a_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--symbols",
            "7",
            "--seed",
            "3",
            "--rate",
            "0",
            "--drop-every",
            "5",
            "--usdm-ping-interval",
            "1",
            "--kline-ms",
            "500",
        ]
    )
    config = config_from_args(args)
    assert (config.symbols, config.seed, config.rate) == (7, 3, 0.0)
    assert config.usdm.ping_interval == 1.0
    assert config.spot.ping_interval == 20.0
    assert config.spot.max_messages_per_second == 5
    assert config.usdm.max_messages_per_second == 10
    assert [p.every for p in config.periodic_faults] == [5.0]
    assert config.kline_ms == 500


async def test_subprocess_prints_urls_and_exits_cleanly_on_sigterm() -> None:
    with trio.fail_after(20):
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "marketd.fakex", "--symbols", "2", "--rate", "50"],
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = b""
            while not line.endswith(b"\n"):
                chunk = await proc.stdout.receive_some(4096)
                assert chunk, "fake exchange exited before printing its URLs"
                line += chunk
            urls = orjson.loads(line)
            assert set(urls) == {
                "spot_ws_url",
                "spot_rest_url",
                "futures_ws_url",
                "futures_rest_url",
                "control_url",
            }
            status, _, _ = await http(urls["spot_rest_url"] + "/api/v3/ping")
            assert status == 200
            async with open_ws(urls["futures_ws_url"] + "/market/ws/btcusdt@aggTrade") as ws:
                assert orjson.loads(await ws.get_message())["e"] == "aggTrade"
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()


async def test_throughput_smoke() -> None:
    """Flat out to one in-process client (client and server share this core): the rate is
    reported; what is asserted is that a count of frames arrives, each of a subscribed
    stream, whatever the machine's speed (no frame count is expected in a time window)."""
    config = FakeExchangeConfig(symbols=10, seed=1, rate=0)
    names = [
        f"{s.lower()}@{c}"
        for s in ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT")
        for c in ("trade", "aggTrade", "depth@100ms", "bookTicker")
    ]
    wanted = 5_000
    seen: set[str] = set()
    with trio.fail_after(60):
        async with (
            open_fake_exchange(config) as fx,
            open_ws(fx.spot_ws_url + "/stream?streams=" + "/".join(names), queue=1_000) as ws,
        ):
            frames = 0
            start = time.perf_counter()
            while frames < wanted:
                seen.add(orjson.loads(await ws.get_message())["stream"])
                frames += 1
            rate = frames / (time.perf_counter() - start)
    print(f"fake exchange → one in-process client: {rate:,.0f} frames/s")
    assert seen <= set(names)
    assert len(seen) > len(names) // 2  # the flat-out frames spread over the streams
