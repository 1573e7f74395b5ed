"""The gateway's routes on the real Quart-Trio app, served by Hypercorn on 127.0.0.1:0."""

from __future__ import annotations

import json

import pytest
import trio
import trio_websocket
from trio_websocket import ConnectionRejected

from marketd.alerts.model import Direction
from marketd.config.alerts import GatewaySettings, RuleSettings
from marketd.testing.processes import metric_value

from .support import MemoryRules, Served, http, make_alert, open_gateway, open_ws, receive_json

TOKEN = "t0ken-for-tests"


def csp_directives(value: str) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in value.split(";") if d.strip())


async def test_index_assets_and_security_headers() -> None:
    with trio.fail_after(15):
        async with open_gateway() as served:
            status, headers, body = await http(served, "GET", "/")
            assert status == 200
            assert headers["content-type"].startswith("text/html")
            assert b'<ol id="alerts"' in body
            assert b"<script>" not in body  # nothing inline
            csp = csp_directives(headers["content-security-policy"])
            assert csp["script-src"] == "'self'"
            assert csp["connect-src"] == (
                f"'self' ws://{served.host}:{served.port} wss://{served.host}:{served.port}"
            )
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "no-referrer"

            status, headers, body = await http(served, "GET", "/ui/app.js")
            assert status == 200
            assert b"new WebSocket" in body
            assert "javascript" in headers["content-type"]
            status, headers, _ = await http(served, "GET", "/ui/style.css")
            assert status == 200
            assert headers["content-type"].startswith("text/css")
            status, _, _ = await http(served, "GET", "/ui/../pyproject.toml")
            assert status == 404

            for path in ("/metrics", "/api/alerts", "/api/rules", "/healthz", "/nope"):
                status, headers, _ = await http(served, "GET", path)
                assert headers["x-content-type-options"] == "nosniff", path
                assert headers["x-frame-options"] == "DENY", path
                assert csp_directives(headers["content-security-policy"])["default-src"] == (
                    "'none'"
                ), path


async def test_websocket_replay_then_live_alerts() -> None:
    with trio.fail_after(15):
        async with open_gateway(GatewaySettings(replay=2)) as served:
            old = [make_alert(s) for s in ("AUSDT", "BUSDT", "CUSDT")]
            served.hub.publish(old)
            async with open_ws(served) as ws:
                replay = await receive_json(ws)
                assert replay["type"] == "replay"
                assert [a["symbol"] for a in replay["alerts"]] == ["BUSDT", "CUSDT"]
                live = make_alert("SOLUSDT", Direction.DOWN, -4.5, price="101.5")
                served.hub.publish([live])
                message = await receive_json(ws)
                assert message == {"type": "alert", "alert": live.to_json()}
                assert message["alert"]["direction"] == "down"
                assert message["alert"]["change_pct"] == -4.5
                assert served.hub.statistics().clients == 1
            metrics = served.metrics_text()
            assert metric_value(metrics, "marketd_gateway_alerts_delivered_total") == 3


async def handshake_rejection(served: Served, origin: str | None) -> ConnectionRejected:
    found: list[ConnectionRejected] = []
    try:
        async with open_ws(served, origin=origin):
            pass
    except* ConnectionRejected as group:
        found += [e for e in group.exceptions if isinstance(e, ConnectionRejected)]
    assert len(found) == 1, "the handshake was not rejected"
    return found[0]


@pytest.mark.parametrize(
    ("origin", "allowed", "accepted"),
    [
        ("http://evil.example", (), False),
        ("http://dash.example", ("http://dash.example",), True),
        ("http://evil.example", ("*",), True),
        (None, (), True),
    ],
)
async def test_websocket_origin_check(
    origin: str | None, allowed: tuple[str, ...], accepted: bool
) -> None:
    with trio.fail_after(15):
        async with open_gateway(GatewaySettings(allowed_origins=allowed)) as served:
            if accepted:
                async with open_ws(served, origin=origin) as ws:
                    assert (await receive_json(ws))["type"] == "replay"
                return
            rejected = await handshake_rejection(served, origin)
            assert rejected.status_code == 403
            assert json.loads(rejected.body or b"{}") == {"error": "origin not allowed"}
            metrics = served.metrics_text()
            assert (
                metric_value(metrics, "marketd_gateway_clients_rejected_total", reason="origin")
                == 1
            )
            assert served.hub.statistics().clients == 0


async def test_same_origin_is_accepted() -> None:
    with trio.fail_after(15):
        async with open_gateway() as served, open_ws(served, origin=served.url) as ws:
            assert (await receive_json(ws))["type"] == "replay"


async def test_api_alerts_limit() -> None:
    with trio.fail_after(15):
        async with open_gateway(GatewaySettings(replay=3, history=10)) as served:
            alerts = [make_alert(f"S{i}USDT") for i in range(12)]
            served.hub.publish(alerts)
            status, headers, body = await http(served, "GET", "/api/alerts")
            assert status == 200
            assert headers["content-type"] == "application/json"
            assert headers["cache-control"] == "no-store"
            got = json.loads(body)["alerts"]
            assert [a["symbol"] for a in got] == ["S11USDT", "S10USDT", "S9USDT"]
            assert got[0] == alerts[11].to_json()
            status, _, body = await http(served, "GET", "/api/alerts?limit=10")
            assert [a["symbol"] for a in json.loads(body)["alerts"]][-1] == "S2USDT"
            status, _, body = await http(served, "GET", "/api/alerts?limit=0")
            assert json.loads(body) == {"alerts": []}
            for bad in ("11", "-1", "x", "1.5"):
                status, _, body = await http(served, "GET", f"/api/alerts?limit={bad}")
                assert status == 400, bad
                assert json.loads(body)["error"].startswith("limit must be an integer from 0 to 10")


async def test_rules_get_and_put_with_auth() -> None:
    rules = MemoryRules()
    settings = GatewaySettings(api_token=TOKEN)
    good = {"rules": [{"name": "fast", "window_s": 10, "threshold_pct": 1.5, "cooldown_s": 5}]}
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with trio.fail_after(15):
        async with open_gateway(settings, rules=rules) as served:
            status, _, body = await http(served, "GET", "/api/rules")
            assert status == 200
            assert json.loads(body) == {
                "rules": [
                    {
                        "name": "default",
                        "window_s": 60.0,
                        "threshold_pct": 2.0,
                        "cooldown_s": 30.0,
                        "notify": [],
                        "symbols": [],
                        "exclude": [],
                        "markets": [],
                        "min_quote_volume_24h": 0.0,
                        "kind": "price",
                        "multiple": 5.0,
                        "baseline_s": 1800.0,
                        "min_notional": 0.0,
                    }
                ],
                "editable": True,
            }
            payload = json.dumps(good).encode()
            for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
                status, resp_headers, body = await http(
                    served, "PUT", "/api/rules", body=payload, headers=headers
                )
                assert status == 401, headers
                assert resp_headers["www-authenticate"].startswith("Bearer")
                assert json.loads(body) == {"error": "a valid bearer token is required"}
            assert rules.replaced == 0

            bad_bodies = {
                b"not json": "the body must be JSON",
                b"[1, 2]": "the body must be a JSON object",
                b'{"rules": []}': "rules must be a non-empty list",
                b'{"rules": [{"name": "x", "window_s": -1}]}': "rules[0]: window_s",
            }
            for bad, message in bad_bodies.items():
                status, _, body = await http(served, "PUT", "/api/rules", body=bad, headers=auth)
                assert status == 400, bad
                assert message in json.loads(body)["error"], bad
            status, _, body = await http(
                served, "PUT", "/api/rules", body=b" " * 70_000, headers=auth
            )
            assert status == 413

            status, _, body = await http(served, "PUT", "/api/rules", body=payload, headers=auth)
            assert status == 200
            assert json.loads(body)["rules"] == [
                {
                    "name": "fast",
                    "window_s": 10.0,
                    "threshold_pct": 1.5,
                    "cooldown_s": 5.0,
                    "notify": [],
                    "symbols": [],
                    "exclude": [],
                    "markets": [],
                    "min_quote_volume_24h": 0.0,
                    "kind": "price",
                    "multiple": 5.0,
                    "baseline_s": 1800.0,
                    "min_notional": 0.0,
                }
            ]
            assert rules.rules() == (
                RuleSettings(name="fast", window_s=10, threshold_pct=1.5, cooldown_s=5),
            )
            status, _, body = await http(served, "GET", "/api/rules")
            assert json.loads(body)["rules"][0]["name"] == "fast"
            metrics = served.metrics_text()
            assert metric_value(
                metrics, "marketd_http_request_duration_seconds_count", route="/api/rules"
            ) == (2 + 3 + 4 + 1 + 1)
            assert (
                metric_value(
                    metrics,
                    "marketd_http_request_duration_seconds_count",
                    route="/api/rules",
                    method="PUT",
                )
                == 3 + 4 + 1 + 1
            )


async def test_rule_changes_are_refused_when_no_token_is_configured() -> None:
    rules = MemoryRules()
    with trio.fail_after(15):
        async with open_gateway(GatewaySettings(api_token=""), rules=rules) as served:
            status, _, body = await http(served, "GET", "/api/rules")
            assert json.loads(body)["editable"] is False
            status, _, body = await http(
                served,
                "PUT",
                "/api/rules",
                body=b'{"rules": []}',
                headers={"Authorization": "Bearer "},
            )
            assert status == 403
            assert "gateway.api_token is empty" in json.loads(body)["error"]
            assert rules.replaced == 0


async def test_rules_in_a_gateway_without_the_detector_role() -> None:
    """In a gateway-only process the rules live with the detector: GET is a 404 and PUT a
    409, both saying where to change them, whatever the token."""
    with trio.fail_after(15):
        async with open_gateway(GatewaySettings(api_token=TOKEN), rules_elsewhere=True) as served:
            status, headers, body = await http(served, "GET", "/api/rules")
            assert status == 404
            assert headers["content-type"] == "application/json"
            message = json.loads(body)["error"]
            assert message.startswith("the rules live with the detector role")
            assert "alerts.state_dir/rules.json" in message
            for auth in ({"Authorization": f"Bearer {TOKEN}"}, {}):
                status, _, body = await http(
                    served, "PUT", "/api/rules", body=b'{"rules": []}', headers=auth
                )
                assert status == 409
                assert json.loads(body)["error"] == message
            # The alerts API and the page are there as usual.
            status, _, body = await http(served, "GET", "/api/alerts")
            assert (status, json.loads(body)) == (200, {"alerts": []})
            assert (await http(served, "GET", "/"))[0] == 200


async def test_request_duration_route_labels_are_bounded() -> None:
    with trio.fail_after(15):
        async with open_gateway() as served:
            for i in range(5):
                await http(served, "GET", f"/no/such/page/{i}")
                await http(served, "GET", f"/ui/missing-{i}.js")
            metrics = served.metrics_text()
            routes = {
                line.split('route="', 1)[1].split('"', 1)[0]
                for line in metrics.splitlines()
                if line.startswith("marketd_http_request_duration_seconds_count")
            }
            assert routes == {"<unmatched>", "/ui/<path:name>"}
            assert (
                metric_value(
                    metrics, "marketd_http_request_duration_seconds_count", route="<unmatched>"
                )
                == 5
            )
            unmatched = {"route": "<unmatched>", "status": "4xx"}  # 404s, by status class
            assert (
                metric_value(metrics, "marketd_http_request_duration_seconds_count", **unmatched)
                == 5
            )


async def test_websocket_closes_with_1001_on_shutdown() -> None:
    with trio.fail_after(15):
        async with (
            open_gateway() as served,
            open_ws(served) as first,
            open_ws(served) as second,
        ):
            for ws in (first, second):
                assert (await receive_json(ws))["type"] == "replay"
            served.shutdown.set()
            for ws in (first, second):
                with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                    await receive_json(ws)
                assert closed.value.reason.code == 1001
                assert closed.value.reason.reason == "server shutting down"
