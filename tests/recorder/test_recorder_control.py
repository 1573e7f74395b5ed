"""Control frames and connection markers in a real recording: the in-process daemon
(collector with ``recorder.enabled``, embedded bus) against the in-process fake exchange,
which announces ``serverShutdown`` to the spot connection (a make-before-break handover)
and drops the USD-M one (a reconnect). The recording is read back and each connection's
entries are checked in order: markers, control frames, data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import prometheus_client
import trio
from kit.daemon import binance_settings
from kit.wait import poll_until

from marketd.app import Daemon
from marketd.config.recorder import RecorderSettings
from marketd.config.settings import BackoffSettings, HttpSettings, Settings, Subscription
from marketd.data.records import Market
from marketd.fakex import FakeExchangeConfig, Fault, FaultKind, open_fake_exchange
from marketd.recorder import Entry, read
from marketd.recorder.format import payload_marker

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def control_of(entry: Entry) -> Any:
    """What a stream-"" entry is: its marker, or the control frame parsed."""
    assert entry.kind == "ws"
    assert entry.stream == ""
    marker = payload_marker(entry.payload)
    return marker if marker is not None else json.loads(entry.payload)


def trade_ids(entries: list[Entry]) -> list[int]:
    out = []
    for e in entries:
        if e.stream:
            data = json.loads(e.payload)
            assert data["stream"] == e.stream  # a data frame, whole, under its stream
            out.append(data["data"]["t" if e.stream.endswith("@trade") else "a"])
    return out


async def test_control_frames_and_markers_are_recorded_in_order(tmp_path: Path) -> None:
    recording = tmp_path / "recording"
    config = FakeExchangeConfig(symbols=2, seed=31, rate=200)
    async with open_fake_exchange(config) as fx:
        settings = Settings(
            roles=("collector",),
            binance=binance_settings(
                fx,
                stale_after_s=5.0,
                # Healthy for reset_after_s: the handover's successor starts at once.
                reconnect=BackoffSettings(initial_s=0.05, max_s=0.2, reset_after_s=0.5),
            ),
            subscriptions=(
                Subscription(Market.SPOT, symbols=SYMBOLS, channels=("trade",)),
                Subscription(Market.USDM, symbols=SYMBOLS, channels=("aggTrade",)),
            ),
            http=HttpSettings(listen="127.0.0.1:0"),
            recorder=RecorderSettings(enabled=True, directory=str(recording)),
        )
        daemon = Daemon(settings, registry=prometheus_client.CollectorRegistry())
        spot, usdm = daemon.feeds.feeds
        assert (spot.connection_id, usdm.connection_id) == ("spot-0", "usdm-market-0")
        stop = trio.Event()
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(daemon.run, stop)
                await poll_until(
                    lambda: all(st.subscribed and st.frames_forwarded > 20
                                for st in daemon.feeds.statistics()),
                    timeout=30, what="both feeds trading",
                )  # fmt: skip
                shutdown = Fault(FaultKind.SERVER_SHUTDOWN, Market.SPOT, seconds=10)
                announced = fx.inject_fault(shutdown)
                dropped = fx.inject_fault(Fault(FaultKind.DROP, Market.USDM))
                assert (announced, dropped) == (1, 1)
                await poll_until(
                    lambda: spot.handovers == 1 and usdm.statistics().reconnects["closed"] == 1
                    and all(st.subscribed for st in daemon.feeds.statistics()),
                    timeout=30, what="the handover and the reconnect",
                )  # fmt: skip
                before = {st.connection_id: st.frames_forwarded for st in daemon.feeds.statistics()}
                await poll_until(
                    lambda: all(st.frames_forwarded > before[st.connection_id] + 20
                                for st in daemon.feeds.statistics()),
                    timeout=30, what="trading on the new connections",
                )  # fmt: skip
                stop.set()
        daemon.close()
    entries = list(read(recording))
    by_connection: dict[str, list[Entry]] = {}
    for e in entries:
        by_connection.setdefault(e.connection, []).append(e)
    ws_urls = {Market.SPOT: fx.spot_ws_url, Market.USDM: fx.futures_ws_url}

    def connected(market: Market) -> dict[str, Any]:
        url = next(f.plan.url for f in daemon.feeds if f.plan.market is market)
        assert url.startswith(ws_urls[market])
        return {"marketd": "connected", "url": url}

    stopped = {"marketd": "closed", "code": 1000, "reason": None, "by": "marketd"}

    # Spot: serverShutdown on the old connection, which kept delivering while the
    # successor connected; closed by marketd (the exchange answered its close), then the
    # successor from its connected marker on.
    spot_entries = by_connection["spot-0"]
    control = [(i, control_of(e)) for i, e in enumerate(spot_entries) if not e.stream]
    (announce_at, announce), (closed_at, closed) = control[1], control[2]
    assert [c for _, c in control] == [
        connected(Market.SPOT), announce, closed, connected(Market.SPOT), stopped
    ]  # fmt: skip
    assert announce["stream"] == "!serverShutdown"
    assert announce["data"]["e"] == "serverShutdown"
    assert closed == {"marketd": "closed", "code": 1000, "reason": None, "by": "marketd"}
    assert closed_at > announce_at + 1  # data after the announcement: make before break
    old, new = spot_entries[:closed_at], spot_entries[closed_at + 1 :]
    # Every trade once, consecutive per symbol, across the handover (the overlap trimmed).
    for symbol in SYMBOLS:
        stream = f"{symbol.lower()}@trade"
        ids = trade_ids([e for e in old + new if e.stream == stream])
        assert ids == list(range(ids[0], ids[0] + len(ids))), symbol
        assert trade_ids([e for e in new if e.stream == stream]), symbol
    assert spot_entries[0].received_ns <= spot_entries[announce_at].received_ns

    # USD-M: dropped by the exchange (no close frame: 1006), reconnected.
    usdm_entries = by_connection["usdm-market-0"]
    control = [(i, control_of(e)) for i, e in enumerate(usdm_entries) if not e.stream]
    assert [c for _, c in control] == [
        connected(Market.USDM),
        {"marketd": "closed", "code": 1006, "reason": None, "by": "exchange"},
        connected(Market.USDM),
        stopped,
    ]
    # In order of receipt within each connection's life.
    for start, end in ((0, control[1][0]), (control[2][0], len(usdm_entries))):
        times = [e.received_ns for e in usdm_entries[start:end]]
        assert times == sorted(times)
    assert trade_ids(usdm_entries[control[2][0] :])
    # The trades the drop cost were backfilled from REST, and those answers recorded.
    rest = by_connection.get(fx.futures_rest_url, [])
    if daemon.normalizer.statistics().gaps:
        assert rest
    assert all(e.kind == "rest" and e.stream.startswith("/fapi/v1/aggTrades?") for e in rest)
    assert set(by_connection) <= {"spot-0", "usdm-market-0", fx.futures_rest_url}
