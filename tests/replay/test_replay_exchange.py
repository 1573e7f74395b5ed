"""``marketd replay``: a recording made by a real ``marketd run`` against the fake exchange,
served again as an exchange, and consumed by a Binance client nobody here wrote
(binance-connector, from PyPI: its WebSocket stream client and its REST client) and by
``marketd run`` itself. Every answer is compared with what the recording holds."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from binance.error import ClientError
from binance.spot import Spot
from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient
from kit.daemon import binance_config
from kit.wait import poll_until_blocking
from trio_websocket import open_websocket_url

from marketd.recorder import read
from marketd.recorder.format import Entry
from marketd.replay.server import ReplayConfig, open_replay
from marketd.testing.processes import (
    DaemonProcess,
    FakeExchangeProcess,
    ReplayProcess,
    metric_value,
)

SUBSCRIPTIONS = [
    {"market": "usdm", "symbols": ["BTCUSDT", "ETHUSDT"],
     "channels": ["aggTrade", "depth@100ms", "markPrice@1s"]},
    {"market": "spot", "symbols": ["BTCUSDT"],
     "channels": ["trade", "aggTrade", "depth@100ms", "bookTicker"]},
]  # fmt: skip


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 5 s of a real ``marketd run`` recording the fake exchange.

    The fake's books are 40 levels a side, fewer than the shallowest snapshot marketd asks
    for (USD-M 50): every recorded snapshot is a whole book, so the replay can answer a
    depth request of any limit at any moment (a recording of books cut at the limit asked
    is refused deeper than it knows: ``test_replay_parts``)."""
    tmp = tmp_path_factory.mktemp("recorded")
    directory = tmp / "recording"
    with FakeExchangeProcess(
        tmp, "--symbols", "3", "--seed", "9", "--rate", "300", "--book-levels", "40"
    ) as fx:
        config = {
            "binance": binance_config(fx),
            "subscriptions": SUBSCRIPTIONS,
            "recorder": {"enabled": True, "directory": str(directory)},
            "log": {"format": "json"},
        }
        with DaemonProcess(tmp, config) as daemon:
            daemon.wait_ready()
            time.sleep(5)
            assert daemon.stop() == 0
    return directory


def data(entry: Entry) -> Any:
    return json.loads(entry.payload)["data"]


def frames_of(entries: list[Entry], stream: str, market: str = "spot") -> list[Any]:
    """The data of the frames recorded on ``stream`` of ``market`` (both markets have a
    ``btcusdt@aggTrade``; marketd's connection ids start with the market)."""
    return [
        data(e)
        for e in entries
        if e.kind == "ws" and e.stream == stream and e.connection.startswith(market + "-")
    ]


def rest_entries(entries: list[Entry], prefix: str) -> list[Entry]:
    return [e for e in entries if e.kind == "rest" and e.stream.startswith(prefix)]


def book_from(snapshot: dict[str, Any], diffs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """A spot book built as Binance tells clients to, independently of the replay."""
    sides = {"b": dict(map(tuple, snapshot["bids"])), "a": dict(map(tuple, snapshot["asks"]))}
    last = snapshot["lastUpdateId"]
    for d in diffs:
        if d["u"] <= last:
            continue
        assert d["U"] <= last + 1, "the recording's diffs continue the snapshot"
        for key in ("b", "a"):
            for price, qty in d[key]:
                if Decimal(qty) == 0:
                    sides[key].pop(price, None)
                else:
                    sides[key][price] = qty
        last = d["u"]
    return sides


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def drain(inbox: queue.Queue[str]) -> Iterator[Any]:
    while not inbox.empty():
        message = json.loads(inbox.get())
        if not (isinstance(message, dict) and "result" in message):  # SUBSCRIBE replies
            yield message


@pytest.mark.slow
async def test_binance_connector_consumes_the_recording_over_websocket_and_rest(
    recording: Path,
) -> None:
    entries = list(read(recording))
    trades = frames_of(entries, "btcusdt@trade")
    aggs = frames_of(entries, "btcusdt@aggTrade")
    (spot_snapshot,) = rest_entries(entries, "/api/v3/depth?symbol=BTCUSDT")
    assert len(trades) > 100
    assert len(aggs) > 100
    inbox: queue.Queue[str] = queue.Queue()
    errors: list[Exception] = []
    config = ReplayConfig(recording, speed=None, wait_s=2.0)
    with trio.fail_after(60):
        async with open_replay(config) as replay:
            spot = Spot(base_url=replay.urls()["spot_rest_url"], timeout=10)
            # Before the clock starts, a book snapshot is the one marketd received first
            # (its lastUpdateId lies ahead of the diffs to come, as on Binance).
            early = await trio.to_thread.run_sync(lambda: spot.depth("BTCUSDT", limit=5))
            recorded = json.loads(spot_snapshot.payload)
            first_five = {"bids": recorded["bids"][:5], "asks": recorded["asks"][:5]}
            assert early == {"lastUpdateId": recorded["lastUpdateId"], **first_five}
            client = await trio.to_thread.run_sync(
                lambda: SpotWebsocketStreamClient(
                    stream_url=replay.urls()["spot_ws_url"],
                    on_message=lambda _, m: inbox.put(m),
                    on_error=lambda _, e: errors.append(e),
                    timeout=10,
                )
            )
            try:
                await trio.to_thread.run_sync(lambda: client.trade(symbol="btcusdt"))
                await trio.to_thread.run_sync(lambda: client.agg_trade(symbol="btcusdt"))
                await replay.finished.wait()
                await trio.sleep(1.0)  # the last frames reach the client's thread
                got = list(drain(inbox))
                # Every recorded trade, whole and in order, on the client's raw /ws stream.
                assert [m for m in got if m.get("e") == "trade"] == trades
                assert [m for m in got if m.get("e") == "aggTrade"] == aggs

                def rest() -> dict[str, Any]:
                    first = aggs[0]["a"]
                    out: dict[str, Any] = {
                        "aggs": spot.agg_trades("BTCUSDT", fromId=first, limit=1000),
                        "recent": spot.trades("BTCUSDT", limit=10),
                        "history": spot.historical_trades(
                            "BTCUSDT", fromId=trades[5]["t"], limit=3
                        ),
                        "klines": spot.klines("BTCUSDT", "1m", limit=5),
                        "price": spot.ticker_price("BTCUSDT"),
                        "book_ticker": spot.book_ticker("BTCUSDT"),
                        "depth": spot.depth("BTCUSDT", limit=1000),
                        "time": spot.time(),
                    }
                    try:
                        spot.agg_trades("BTCUSDT", fromId=first - 1)
                    except ClientError as exc:
                        out["too_old"] = (exc.status_code, exc.error_code, exc.error_message)
                    return out

                answers = await trio.to_thread.run_sync(rest)
            finally:
                await trio.to_thread.run_sync(client.stop)
                # binance-connector 3.13 leaves the socket open after stop(), and its REST
                # session's pooled connections: both closed here, or they leak as warnings.
                await trio.to_thread.run_sync(client.socket_manager.ws.shutdown)
                spot.session.close()
    assert not errors
    keys = ("a", "p", "q", "f", "l", "T", "m")
    assert answers["aggs"] == [{**{k: a[k] for k in keys}, "M": True} for a in aggs][:1000]
    assert [(r["id"], r["price"], r["qty"]) for r in answers["recent"]] == [
        (t["t"], t["p"], t["q"]) for t in trades[-10:]
    ]
    assert [r["id"] for r in answers["history"]] == [t["t"] for t in trades[5:8]]
    # A fromId older than the recording holds is refused, never answered from later on.
    status, code, message = answers["too_old"]
    assert (status, code) == (400, -1128)
    assert f"fromId {aggs[0]['a'] - 1} is older than the oldest trade" in message
    # Klines are the sums of the recorded trades (aggregates) of each minute.
    volume = sum((Decimal(k[5]) for k in answers["klines"]), Decimal(0))
    assert volume == sum((Decimal(a["q"]) for a in aggs), Decimal(0))
    assert sum(k[8] for k in answers["klines"]) == sum(a["l"] - a["f"] + 1 for a in aggs)
    assert answers["price"] == {"symbol": "BTCUSDT", "price": aggs[-1]["p"]}
    last_ticker = frames_of(entries, "btcusdt@bookTicker")[-1]
    assert answers["book_ticker"] == {
        "symbol": "BTCUSDT", "bidPrice": last_ticker["b"], "bidQty": last_ticker["B"],
        "askPrice": last_ticker["a"], "askQty": last_ticker["A"]}  # fmt: skip
    # At the end, the replay's book is the recorded snapshot carried on by every diff.
    expected = book_from(recorded, frames_of(entries, "btcusdt@depth@100ms"))
    depth = answers["depth"]
    assert depth["lastUpdateId"] == frames_of(entries, "btcusdt@depth@100ms")[-1]["u"]
    assert dict(map(tuple, depth["bids"])) == expected["b"]
    assert dict(map(tuple, depth["asks"])) == expected["a"]
    assert answers["time"]["serverTime"] == entries[-1].received_ns // 1_000_000


@pytest.mark.slow
async def test_usdm_rest_answers_from_the_recording(recording: Path) -> None:
    entries = list(read(recording))
    marks = frames_of(entries, "btcusdt@markPrice@1s", "usdm")
    config = ReplayConfig(recording, speed=None, wait_s=0)
    with trio.fail_after(60):
        async with open_replay(config) as replay:
            await replay.finished.wait()
            base = replay.urls()["futures_rest_url"]

            def ask() -> dict[str, tuple[int, Any]]:
                return {
                    "premium": get_json(f"{base}/fapi/v1/premiumIndex?symbol=BTCUSDT"),
                    "depth": get_json(f"{base}/fapi/v1/depth?symbol=ETHUSDT&limit=5"),
                    "unknown": get_json(f"{base}/fapi/v1/depth?symbol=XRPUSDT"),
                    "info": get_json(f"{base}/fapi/v1/exchangeInfo"),
                    "state": get_json(replay.urls()["control_url"] + "/state"),
                }

            got = await trio.to_thread.run_sync(ask)
    last = marks[-1]
    assert got["premium"] == (200, {
        "symbol": "BTCUSDT", "markPrice": last["p"], "indexPrice": last["i"],
        "estimatedSettlePrice": last["P"], "lastFundingRate": last["r"],
        "interestRate": "0.00010000", "nextFundingTime": last["T"], "time": last["E"]})  # fmt: skip
    diffs = frames_of(entries, "ethusdt@depth@100ms", "usdm")
    status, depth = got["depth"]
    assert status == 200
    assert (depth["lastUpdateId"], depth["E"], depth["T"]) == (
        diffs[-1]["u"], diffs[-1]["E"], diffs[-1]["T"])  # fmt: skip
    assert got["unknown"] == (400, {"code": -1121, "msg": "Invalid symbol."})
    status, info = got["info"]
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    status, state = got["state"]
    assert state["finished"] is True
    assert state["entries_played"] == len(entries)
    assert state["read"]["corrupt_blocks"] == 0


@pytest.mark.slow
async def test_speed_divides_the_recorded_time(recording: Path) -> None:
    entries = list(read(recording))
    span_s = (entries[-1].received_ns - entries[0].received_ns) / 1e9
    config = ReplayConfig(recording, speed=4.0, wait_s=0)
    with trio.fail_after(60):
        async with open_replay(config) as replay:
            await replay.started.wait()
            started = trio.current_time()
            await trio.sleep(span_s / 8)  # half-way through at speed 4
            halfway = (replay.clock() - entries[0].received_ns) / 1e9
            await replay.finished.wait()
            took = trio.current_time() - started
    assert span_s / 4 * 0.9 <= took <= span_s / 4 + 2.0
    assert span_s / 2 * 0.7 <= halfway <= span_s / 2 * 1.3 + 0.5


@pytest.mark.slow
def test_marketd_run_consumes_a_replay_as_if_it_were_live(recording: Path, tmp_path: Path) -> None:
    entries = list(read(recording))
    ws = [e for e in entries if e.kind == "ws" and e.stream]
    diffs = sum(1 for e in ws if "@depth" in e.stream)
    # At max speed the whole recording is sent before the books ask for snapshots: a book
    # then waits for a diff after the end. At speed 2 they sync while it plays.
    with ReplayProcess(tmp_path, recording, "--speed", "2") as replay:
        config = {
            "binance": binance_config(replay),
            "subscriptions": SUBSCRIPTIONS,
            "log": {"format": "json"},
        }
        with DaemonProcess(tmp_path, config) as daemon:
            daemon.wait_ready(timeout=60)
            poll_until_blocking(lambda: replay.state()["finished"], timeout=60,
                                what="the replay played to its end")  # fmt: skip
            poll_until_blocking(
                lambda: metric_value(daemon.metrics(), "marketd_bus_records_total",
                                     topic="marketdata.depth") >= diffs,
                timeout=60, what="every recorded diff published",
            )  # fmt: skip
            poll_until_blocking(
                lambda: metric_value(daemon.metrics(), "marketd_book_state", state="synced") == 3,
                timeout=60, what="the three books synced",
            )  # fmt: skip
            text = daemon.metrics()
            assert daemon.stop() == 0
    # Each of the three books synced from the replay's snapshots and diffs, and every
    # recorded diff reached the depth topic.
    assert metric_value(text, "marketd_book_state", market="spot", state="synced") == 1
    assert metric_value(text, "marketd_book_state", market="usdm", state="synced") == 2
    assert metric_value(text, "marketd_bus_records_total", topic="marketdata.depth") == diffs
    assert metric_value(text, "marketd_book_gaps_total") == 0


def test_bad_command_lines_say_what_is_wrong(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "marketd", "replay", *args], capture_output=True, text=True,
            timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    missing = run(str(tmp_path / "nothing"))
    assert missing.returncode == 1
    assert "is not a directory" in missing.stderr
    slow = run(str(tmp_path), "--speed", "0")
    assert slow.returncode == 2
    assert "a speed is a number above 0" in slow.stderr
    when = run(str(tmp_path), "--from", "2026-12-02T15:00:00Z", "--to", "2026-12-02T14:00:00Z")
    assert when.returncode == 2
    assert "--to must be later than --from" in when.stderr
    empty = run(str(tmp_path))
    assert empty.returncode == 1
    assert "holds no recorded entries" in empty.stderr
    assert "Traceback" not in missing.stderr + slow.stderr + when.stderr + empty.stderr


@pytest.mark.slow
async def test_a_time_range_and_a_stream_filter_select_what_is_played(recording: Path) -> None:
    entries = list(read(recording))
    spot = [e for e in entries if e.connection.startswith("spot-")]
    start, end = spot[len(spot) // 4].received_ns, spot[len(spot) // 2].received_ns
    expected = [e.payload.decode() for e in spot
                if e.stream == "btcusdt@trade" and start <= e.received_ns < end]  # fmt: skip
    assert len(expected) > 20
    config = ReplayConfig(recording, start_ns=start, end_ns=end, speed=None, wait_s=5.0,
                          streams=frozenset({"btcusdt@trade"}))  # fmt: skip
    got: list[str] = []
    with trio.fail_after(60):
        async with open_replay(config) as replay:
            url = replay.urls()["spot_ws_url"] + "/stream?streams=btcusdt@trade/btcusdt@aggTrade"
            async with open_websocket_url(url) as ws:
                await replay.started.wait()
                await replay.finished.wait()
                with trio.move_on_after(1.0):
                    while True:
                        got.append(str(await ws.get_message()))
            state = replay.state()
    # Combined frames exactly as recorded, only the stream asked for, only the range.
    assert got == expected
    assert state["clock_ms"] < end // 1_000_000 + 1
