"""One process per role, end to end over a real broker: the fake exchange scripts a price
jump → a collector-only ``marketd run`` publishes the mini tickers to the raw topic → a
detector-only one (``alerts.source: kafka``) publishes the alert to the alerts topic → a
gateway-only one shows it on ``/api/alerts`` and ``/ws/alerts``, exactly once; a gateway
started afterwards replays it. Each process's ``/readyz`` names only its own components.
"""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio_websocket
from gateway.support import open_ws, receive_json
from kit.daemon import alerts_of, binance_config
from kit.wait import poll_until, poll_until_blocking

from marketd.alerts.encoding import decode_alert
from marketd.testing.devkafka import ConsumedRecord, KafkaBroker, create_topics
from marketd.testing.processes import DaemonProcess, FakeExchangeProcess, http_json, metric_value

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SYMBOL = "BTCUSDT"


@attrs.frozen
class Endpoint:
    host: str
    port: int


def endpoint(daemon: DaemonProcess) -> Endpoint:
    return Endpoint("127.0.0.1", daemon.port)


def kafka_settings(bootstrap: str, topics: dict[str, str]) -> dict[str, Any]:
    return {"bootstrap_servers": bootstrap, "topics": topics}


def collector_config(fx: FakeExchangeProcess, kafka: dict[str, Any]) -> dict[str, Any]:
    return {
        "roles": ["collector"],
        "binance": binance_config(fx),
        "subscriptions": [{"market": "usdm", "streams": ["!miniTicker@arr"]}],
        "kafka": kafka,
        "log": {"format": "json"},
    }


def detector_config(kafka: dict[str, Any], tmp: Path, group: str) -> dict[str, Any]:
    return {
        "roles": ["detector"],
        "kafka": kafka,
        "alerts": {
            "source": "kafka",
            "consumer_group": group,
            "transactional_id": f"{group}.0",
            "state_dir": str(tmp / "state"),
        },
        "log": {"format": "json"},
    }


def gateway_config(kafka: dict[str, Any]) -> dict[str, Any]:
    return {
        "roles": ["gateway"],
        "kafka": kafka,
        "gateway": {"replay": 20, "history": 100},
        "log": {"format": "json"},
    }


def subdir(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.mkdir()
    return path


def readiness(daemon: DaemonProcess) -> dict[str, Any]:
    status, body = daemon.ready()
    assert status == 200, body
    return dict(body)


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def alerts_in(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The alerts a /ws/alerts message carries (replay, one alert, or a burst)."""
    if message["type"] == "alert":
        return [message["alert"]]
    return list(message["alerts"])


async def collect(ws: trio_websocket.WebSocketConnection, into: list[dict[str, Any]]) -> None:
    while True:
        into.append(json.loads(await ws.get_message()))


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await trio.to_thread.run_sync(fn, *args)


async def test_collector_detector_and_gateway_in_three_processes(
    tmp_path: Path,
    kafka_broker: KafkaBroker,
    kafka_topic: Callable[[str], str],
    consume_kafka: Callable[..., Awaitable[list[ConsumedRecord]]],
) -> None:
    topics = {name: kafka_topic(name) for name in ("raw", "depth", "orderbook", "alerts")}
    bootstrap = kafka_broker.bootstrap
    # Several partitions: the detector shares them out, every gateway reads them all.
    await in_thread(create_topics, bootstrap, [topics["raw"]], 3)
    await in_thread(create_topics, bootstrap, [topics["alerts"]], 2)
    kafka = kafka_settings(bootstrap, topics)
    group = f"detector-{topics['raw']}"
    with trio.fail_after(180):
        with (
            FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "21", "--rate", "50") as fx,
            DaemonProcess(subdir(tmp_path, "collector"), collector_config(fx, kafka)) as collector,
            DaemonProcess(
                subdir(tmp_path, "detector"), detector_config(kafka, tmp_path, group)
            ) as detector,
            DaemonProcess(subdir(tmp_path, "gateway"), gateway_config(kafka)) as gateway,
        ):
            for daemon in (collector, detector, gateway):
                await in_thread(daemon.wait_ready, 60.0)

            # /readyz names only what each process's roles need.
            ready = readiness(collector)
            assert ready["roles"] == ["collector"]
            feeds = [c for c in ready["components"] if c.startswith("feed:")]
            assert feeds
            assert ready["components"] == ["sink", "kafka", *feeds, "spool"]
            assert readiness(detector) == {
                "ready": True, "roles": ["detector"], "components": ["detector"], "not_ready": [],
            }  # fmt: skip
            assert readiness(gateway) == {
                "ready": True, "roles": ["gateway"], "components": ["alerts_reader"],
                "not_ready": [],
            }  # fmt: skip

            # Only the gateway serves the UI and the API; every role serves the probes.
            for daemon in (collector, detector):
                assert status_of(daemon.base + "/api/alerts") == 404
                assert status_of(daemon.base + "/") == 404
                assert http_json(daemon.base + "/healthz") == (200, {"status": "ok"})
                assert "marketd_build_info" in daemon.metrics()
            status, body = http_json(gateway.base + "/api/rules")
            assert status == 404
            assert "the rules live with the detector role" in body["error"]

            async with open_ws(endpoint(gateway)) as ws:
                first = await receive_json(ws)
                assert first == {"type": "replay", "alerts": []}
                messages: list[dict[str, Any]] = []
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(collect, ws, messages)

                    # The detector has windows to compare with before the jump.
                    def ticks() -> float:
                        return metric_value(detector.metrics(), "marketd_detector_ticks_total")

                    await in_thread(
                        lambda: poll_until_blocking(lambda: ticks() >= 9, timeout=30, what="ticks")
                    )
                    jumped = fx.control("jump", {"market": "usdm", "symbol": SYMBOL, "percent": 5})

                    def pushed() -> list[dict[str, Any]]:
                        return [a for m in messages for a in alerts_in(m) if a["symbol"] == SYMBOL]

                    # The collector task fills ``messages``.
                    await poll_until(
                        pushed, timeout=60, what=f"an alert of {SYMBOL} pushed", interval=0.1
                    )
                    # Anything more that would come (a duplicate) comes now.
                    await trio.sleep(3)
                    nursery.cancel_scope.cancel()

            (alert,) = pushed()
            assert alert["direction"] == "up"
            assert alert["market"] == "usdm"
            assert abs(float(alert["price"]) / float(jumped["price"]) - 1) < 0.01
            assert 4.0 < alert["change_pct"] < 6.0
            assert alerts_of(gateway.base, SYMBOL) == [alert]

            # The detector published it to the alerts topic as it always does.
            records = await consume_kafka(
                [topics["alerts"]],
                decode=decode_alert,
                until=lambda rs: any(r.decoded.symbol == SYMBOL for r in rs),
            )
            (published,) = [r.decoded for r in records if r.decoded.symbol == SYMBOL]
            assert (published.id, published.direction.value) == (alert["id"], "up")
            assert published.price == alert["price"]

            # A gateway started after the alert replays it, to the API and to a browser.
            with DaemonProcess(subdir(tmp_path, "gateway-late"), gateway_config(kafka)) as late:
                await in_thread(late.wait_ready, 60.0)
                assert alerts_of(late.base, SYMBOL) == [alert]
                async with open_ws(endpoint(late)) as ws:
                    replay = await receive_json(ws)
                assert replay["type"] == "replay"
                assert [a for a in replay["alerts"] if a["symbol"] == SYMBOL] == [alert]
                assert metric_value(late.metrics(), "marketd_gateway_alerts_read_total") >= 1
                assert await in_thread(late.stop) == 0

            for daemon in (gateway, detector, collector):
                daemon.signal(signal.SIGTERM)
            for daemon in (gateway, detector, collector):
                assert await in_thread(daemon.wait, 40.0) == 0


async def test_a_gateway_is_ready_while_kafka_answers(
    tmp_path: Path, own_kafka_broker: KafkaBroker, kafka_topic: Callable[[str], str]
) -> None:
    """Gateway-only readiness is its alerts reader: 503 naming ``alerts_reader`` (and nothing
    of the other roles) while the broker is away, 200 again once it is back."""
    broker = own_kafka_broker
    await in_thread(broker.start)
    topic = kafka_topic("alerts")
    await in_thread(create_topics, broker.bootstrap, [topic], 2)
    kafka = {"bootstrap_servers": broker.bootstrap, "topics": {"alerts": topic},
             "request_timeout_ms": 3000}  # fmt: skip
    with trio.fail_after(150), DaemonProcess(tmp_path, gateway_config(kafka)) as gateway:
        await in_thread(gateway.wait_ready, 60.0)
        await in_thread(broker.stop)

        def not_ready() -> bool:
            return gateway.ready()[0] == 503

        await in_thread(lambda: poll_until_blocking(not_ready, timeout=30, what="/readyz 503"))
        status, body = gateway.ready()
        assert (status, body["components"], body["not_ready"]) == (
            503, ["alerts_reader"], ["alerts_reader"],
        )  # fmt: skip
        assert metric_value(gateway.metrics(), "marketd_gateway_kafka_connected") == 0
        # Liveness does not depend on Kafka.
        assert http_json(gateway.base + "/healthz") == (200, {"status": "ok"})

        await in_thread(broker.start)
        await in_thread(lambda: gateway.wait_ready(60.0))
        assert metric_value(gateway.metrics(), "marketd_gateway_kafka_connected") == 1
        assert await in_thread(gateway.stop) == 0
