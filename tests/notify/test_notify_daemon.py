"""Notifiers beside the browsers: a notifier that is down never delays detection or the
hub, and ``marketd``'s daemon sends the alerts of a rule to the notifiers it names."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import prometheus_client
import trio
from kit.daemon import binance_settings
from kit.net import free_port
from kit.wait import poll_until
from notifypeer import Answer, open_peer

from marketd.alerts.rules import RulesStore
from marketd.alerts.service import DetectorService
from marketd.app import Daemon
from marketd.config.alerts import AlertSettings, GatewaySettings, RuleSettings
from marketd.config.notify import NotifierSettings
from marketd.config.settings import HttpSettings, Settings, Subscription
from marketd.data.records import Market, Record
from marketd.fakex import FakeExchangeConfig, open_fake_exchange
from marketd.gateway import AlertHub
from marketd.notify.service import Notifications, NotifierStatistics
from marketd.testing.processes import http_json
from marketd.v1.market_data_pb2 import MARKET_USDM, MarketEvent

SECRET = "daemon-test-secret"
API_TOKEN = "api-token-for-rules"


def mini(symbol: str, time_ms: int, close: str) -> Record:
    event = MarketEvent(market=MARKET_USDM, symbol=symbol, event_time_ms=time_ms)
    event.mini_ticker.close_price = close
    return Record("marketdata.raw", symbol.encode(), event.SerializeToString(), (), 0,
                  Market.USDM, "24hrMiniTicker", symbol)  # fmt: skip


def jump(symbol: str) -> list[Record]:
    """Two ticks of ``symbol``, 5 % apart: one alert under a 1 % rule."""
    return [mini(symbol, 1000, "100"), mini(symbol, 2000, "105")]


async def test_a_notifier_that_is_down_never_delays_the_detector_or_the_hub(
    tmp_path: Path,
) -> None:
    with trio.fail_after(30):
        async with open_peer(default=Answer(hang=True)) as peer:
            down = NotifierSettings(
                name="down", kind="webhook", url=f"{peer.base}/hook", secret=SECRET,
                timeout_s=120, max_queue=1,
            )  # fmt: skip
            refused = NotifierSettings(
                name="refused", kind="discord", url=f"http://127.0.0.1:{free_port()}/api/w/1/t",
                max_queue=1, max_retries=100, retry_initial_s=60, retry_max_s=60,
            )  # fmt: skip
            rule = RuleSettings(name="jump", threshold_pct=1.0, cooldown_s=0.0,
                                notify=("down", "refused"))  # fmt: skip
            alerts = AlertSettings(state_dir=str(tmp_path), rules=(rule,))
            store = RulesStore(alerts, notifiers=["down", "refused"])
            hub = AlertHub(history=100, replay=10, client_queue=10)
            notify = Notifications([down, refused], store.rules)
            detector = DetectorService(alerts, store, listeners=[hub, notify])
            send, receive = trio.open_memory_channel[list[Record]](0)
            async with trio.open_nursery() as nursery:
                await nursery.start(notify.serve, *notify.queues)
                await nursery.start(detector.serve_channel, receive)
                await send.send(jump("AAAUSDT"))
                # Both senders hold that first alert: one waits for an answer that never
                # comes (for 120 s), the other for its next retry (60 s away).
                await poll_until(
                    lambda: peer.hanging == 1 and notify.statistics()["refused"].retries == 1,
                    timeout=10, what="both notifiers stuck on the first alert",
                )  # fmt: skip
                symbols = ["BBBUSDT", "CCCUSDT", "DDDUSDT", "EEEUSDT", "FFFUSDT"]
                for symbol in symbols:
                    # An unbuffered channel: each send returns once the detector took the
                    # batch, so the detector is never waiting for the notifiers.
                    await send.send(jump(symbol))
                await poll_until(
                    lambda: len(hub.recent(100)) == 6, timeout=10, what="six alerts at the hub"
                )
                assert [a.symbol for a in hub.recent(100)] == [*reversed(symbols), "AAAUSDT"]
                assert detector.statistics().alerts == {("jump", "up"): 6}
                for name, kind in (("down", "webhook"), ("refused", "discord")):
                    retries = 1 if name == "refused" else 0
                    assert notify.statistics()[name] == NotifierStatistics(
                        kind=kind, delivered=0, failed=0, dropped=4, retries=retries,
                        queued=1, capacity=1,
                    ), name  # fmt: skip
                nursery.cancel_scope.cancel()


def webhook_to(base: str, name: str = "ops", **kw: object) -> NotifierSettings:
    return NotifierSettings(  # type: ignore[arg-type]
        name=name, kind="webhook", url=f"{base}/marketd", secret=SECRET, **kw
    )


def test_the_daemon_runs_the_notifier_stage_and_shows_its_counters(tmp_path: Path) -> None:
    settings = Settings(
        alerts=AlertSettings(
            state_dir=str(tmp_path), rules=(RuleSettings(name="jump", notify=("ops",)),)
        ),
        notifications=(webhook_to("http://127.0.0.1:9"),),
        http=HttpSettings(listen="127.0.0.1:0"),
    )
    registry = prometheus_client.CollectorRegistry()
    daemon = Daemon(settings, registry=registry)
    try:
        assert [s.name for s in daemon.services] == ["notifier"]
        assert daemon.detector is not None
        assert [type(x).__name__ for x in daemon.detector.listeners] == [
            "AlertHub", "Notifications"
        ]  # fmt: skip
        for outcome in ("delivered", "failed", "dropped"):
            labels = {"notifier": "ops", "outcome": outcome}
            assert registry.get_sample_value("marketd_notifications_total", labels) == 0
        assert registry.get_sample_value("marketd_child_restarts_total", {"child": "notifier"}) == 0
    finally:
        daemon.close()


def put_rules(base: str, rules: list[dict[str, Any]]) -> tuple[int, Any]:
    request = urllib.request.Request(
        base + "/api/rules", data=json.dumps({"rules": rules}).encode(), method="PUT",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


async def test_the_daemon_sends_a_rules_alerts_to_its_notifiers(tmp_path: Path) -> None:
    """Real frames: fake exchange → feed → detector → the hub and a signed webhook, while
    another notifier hangs; PUT /api/rules refuses a notifier that is not configured."""
    config = FakeExchangeConfig(symbols=5, seed=3, rate=200)
    with trio.fail_after(60):
        async with (
            open_fake_exchange(config) as fx,
            open_peer(default=Answer(204)) as peer,
            open_peer(default=Answer(hang=True)) as stuck,
        ):
            rule = RuleSettings(name="jump", threshold_pct=5.0, notify=("ops", "stuck"))
            settings = Settings(
                binance=binance_settings(fx),
                subscriptions=(Subscription(market=Market.USDM, streams=("!miniTicker@arr",)),),
                http=HttpSettings(listen="127.0.0.1:0"),
                gateway=GatewaySettings(api_token=API_TOKEN),
                alerts=AlertSettings(state_dir=str(tmp_path), rules=(rule,)),
                notifications=(
                    webhook_to(peer.base),
                    webhook_to(stuck.base, "stuck", max_queue=1, timeout_s=120),
                ),
            )
            registry = prometheus_client.CollectorRegistry()
            daemon = Daemon(settings, registry=registry)
            assert daemon.detector is not None
            assert daemon.hub is not None
            hub, detector = daemon.hub, daemon.detector
            stop = trio.Event()
            try:
                async with trio.open_nursery() as nursery:
                    binds = await nursery.start(daemon.run, stop)
                    base = binds[0] if binds[0].startswith("http") else f"http://{binds[0]}"
                    unknown = [{"name": "jump", "threshold_pct": 5, "notify": ["ops", "nobody"]}]
                    status, body = await trio.to_thread.run_sync(put_rules, base, unknown)
                    assert status == 400
                    assert body["error"] == (
                        "rules[0].notify: 'nobody' is not a notifier (notifications: ops, stuck)"
                    )
                    status, body = await trio.to_thread.run_sync(http_json, base + "/api/rules")
                    assert [(r["name"], r["notify"]) for r in body["rules"]] == [
                        ("jump", ["ops", "stuck"])
                    ]  # fmt: skip
                    await poll_until(
                        lambda: detector.statistics().ticks >= 10,
                        timeout=20, what="10 ticks taken in by the detector", interval=0.1,
                    )  # fmt: skip
                    fx.jump(Market.USDM, "ETHUSDT", 10.0)
                    await poll_until(
                        lambda: any(s.json()["alert"]["symbol"] == "ETHUSDT" for s in peer.seen),
                        timeout=20, what="the webhook request of ETHUSDT's alert",
                    )  # fmt: skip
                    labels = {"notifier": "ops", "outcome": "delivered"}
                    await poll_until(
                        lambda: registry.get_sample_value("marketd_notifications_total", labels),
                        timeout=10, what="the delivery counted",
                    )  # fmt: skip
                    assert registry.get_sample_value("marketd_notifications_total", labels) == len(
                        peer.seen
                    )
                    stop.set()
            finally:
                daemon.close()
    [seen] = [s for s in peer.seen if s.json()["alert"]["symbol"] == "ETHUSDT"]
    timestamp = seen.headers["x-marketd-timestamp"]
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + seen.body, hashlib.sha256)
    assert seen.headers["x-marketd-signature"] == "sha256=" + mac.hexdigest()
    body = seen.json()
    [at_hub] = [a for a in hub.recent(100) if a.symbol == "ETHUSDT"]
    assert body["alert"]["id"] == at_hub.id
    assert (body["alert"]["rule"], body["alert"]["direction"]) == ("jump", "up")
    assert body["tradingview_url"] == "https://www.tradingview.com/chart/?symbol=BINANCE:ETHUSDT.P"
    assert len(stuck.seen) == 1  # held; the hub and the other notifier went on
