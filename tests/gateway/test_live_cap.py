"""A burst of alerts reaches browsers as at most ``gateway.max_alerts_per_s`` live plus a
summary of the rest, while the API keeps every alert; the push latency is measured (real
server on 127.0.0.1:0, a real WebSocket client)."""

from __future__ import annotations

import json
import time
from typing import Any

import trio

from marketd.config.alerts import GatewaySettings

from .support import http, make_alert, open_gateway, open_ws, receive_json
from .wire import samples

CAP = 20
BURST = 100


def live_ids(message: dict[str, Any]) -> list[str]:
    if message["type"] == "alert":
        return [message["alert"]["id"]]
    assert message["type"] == "alerts", message
    return [alert["id"] for alert in message["alerts"]]


async def test_a_burst_is_capped_live_summarised_and_kept_whole_by_the_api() -> None:
    settings = GatewaySettings(max_alerts_per_s=CAP, replay=0, history=1000)
    with trio.fail_after(20):
        async with open_gateway(settings) as served, open_ws(served) as ws:
            assert (await receive_json(ws))["type"] == "replay"
            now_ms = time.time_ns() // 1_000_000
            burst = [make_alert(f"S{i}USDT", at_ms=now_ms - 30) for i in range(BURST)]
            began = trio.current_time()
            for alert in burst:  # one publish per alert, all within a few milliseconds
                served.hub.publish([alert])
            assert trio.current_time() - began < 1.0
            received: list[str] = []
            while True:
                message = await receive_json(ws)
                if message["type"] == "suppressed":
                    summary = message
                    break
                received += live_ids(message)
            summarised_after = trio.current_time() - began

            status, _, body = await http(served, "GET", f"/api/alerts?limit={BURST}")
            assert status == 200
            api_ids = [alert["id"] for alert in json.loads(body)["alerts"]]
            text = served.metrics_text()

    assert received == [alert.id for alert in burst[:CAP]]  # the first ones, in order
    assert summary == {
        "type": "suppressed",
        "count": BURST - CAP,
        "since_ms": summary["since_ms"],
        "limit_per_s": CAP,
    }
    assert now_ms <= summary["since_ms"] <= now_ms + 1000
    assert 0.9 <= summarised_after < 3.0  # once a second while suppressing, not per alert
    assert sorted(api_ids) == sorted(alert.id for alert in burst)  # the API has them all
    assert samples(text, "marketd_gateway_alerts_suppressed_total") == {(): BURST - CAP}
    assert samples(text, "marketd_gateway_alerts_total") == {(): BURST}
    # The push latency: one observation per alert pushed live, each about 30 ms.
    assert samples(text, "marketd_alert_push_latency_seconds_count") == {(): CAP}
    buckets = {
        dict(labels)["le"]: value
        for labels, value in samples(text, "marketd_alert_push_latency_seconds_bucket").items()
    }
    assert buckets["0.025"] == 0
    assert buckets["0.25"] == buckets["+Inf"] == CAP
    total = samples(text, "marketd_alert_push_latency_seconds_sum")[()]
    assert 0.03 * CAP <= total < 0.25 * CAP


async def test_no_cap_pushes_every_alert_live() -> None:
    settings = GatewaySettings(max_alerts_per_s=0, replay=0)
    with trio.fail_after(15):
        async with open_gateway(settings) as served, open_ws(served) as ws:
            assert (await receive_json(ws))["type"] == "replay"
            burst = [make_alert() for _ in range(BURST)]
            for alert in burst:
                served.hub.publish([alert])
            received: list[str] = []
            while len(received) < BURST:
                received += live_ids(await receive_json(ws))
            text = served.metrics_text()
    assert received == [alert.id for alert in burst]
    assert samples(text, "marketd_gateway_alerts_suppressed_total") == {(): 0}
    assert samples(text, "marketd_alert_push_latency_seconds_count") == {(): BURST}
