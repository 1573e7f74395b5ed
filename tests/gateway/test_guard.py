"""The gateway's guards on the real server: the Host allow-list (DNS rebinding), the
Origin check, and the slow-down of repeated wrong tokens; each refusal counted and
logged. Loopback only: 127.0.0.2 is another client address on this machine."""

from __future__ import annotations

import json

import pytest
import structlog
import trio

from marketd.config.alerts import GatewaySettings
from marketd.config.load import load_settings

from .support import open_gateway, receive_json
from .wire import by_reason, handshake_refused, open_ws_as, request

TOKEN = "t0ken-for-guard-tests"
RULES = json.dumps(
    {"rules": [{"name": "fast", "window_s": 10, "threshold_pct": 1.5, "cooldown_s": 5}]}
).encode()
GATEWAY_ROUTES = ("/", "/ui/app.js", "/api/alerts", "/api/rules")
PROBES = ("/healthz", "/readyz", "/metrics")


def lines(logs: list[dict[str, object]], event: str) -> list[dict[str, object]]:
    return [line for line in logs if line["event"] == event]


async def test_a_foreign_host_gets_403_on_the_gateway_routes_but_not_on_the_probes() -> None:
    with structlog.testing.capture_logs() as logs, trio.fail_after(15):
        async with open_gateway(GatewaySettings(api_token=TOKEN)) as served:
            evil = f"evil.example:{served.port}"
            for path in GATEWAY_ROUTES:
                status, headers, body = await request(served, "GET", path, host=evil)
                assert status == 403, path
                message = json.loads(body)["error"]
                assert message.startswith(f"host '{evil}' not allowed"), path
                assert "gateway.allowed_hosts" in message
                assert headers["x-frame-options"] == "DENY"  # still every security header
            status, _, _ = await request(
                served, "PUT", "/api/rules", host=evil, body=RULES,
                headers={"Authorization": f"Bearer {TOKEN}"},
            )  # fmt: skip
            assert status == 403
            # Everything under /api/ is guarded, also routes other modules add.
            assert (await request(served, "GET", "/api/other", host=evil))[0] == 403
            assert (await request(served, "GET", "/api/other"))[0] == 404
            for path in PROBES:  # probes and Prometheus reach these by address or name
                status, _, _ = await request(served, "GET", path, host="marketd-svc:8080")
                assert status == 200, path
            for good in (f"127.0.0.1:{served.port}", f"localhost:{served.port}", "localhost"):
                for path in GATEWAY_ROUTES:
                    status, _, _ = await request(served, "GET", path, host=good)
                    assert status == 200, (good, path)
            text = served.metrics_text()
    assert by_reason(text, "marketd_gateway_requests_refused_total") == {"host": 6}
    (line,) = lines(logs, "request refused: host not allowed")  # rate-limited: one line
    assert (line["host"], line["client"], line["path"]) == (evil, "127.0.0.1", "/")
    assert line["log_level"] == "warning"


async def test_a_foreign_host_websocket_handshake_is_refused_and_counted() -> None:
    with structlog.testing.capture_logs() as logs, trio.fail_after(15):
        async with open_gateway() as served:
            rejected = await handshake_refused(served, host="rebound.example")
            assert rejected.status_code == 403
            assert "not allowed" in json.loads(rejected.body or b"{}")["error"]
            async with open_ws_as(served, host=f"localhost:{served.port}") as ws:
                assert (await receive_json(ws))["type"] == "replay"
            text = served.metrics_text()
            assert served.hub.statistics().clients == 0
    assert by_reason(text, "marketd_gateway_clients_rejected_total")["host"] == 1
    (line,) = lines(logs, "websocket handshake refused")
    assert (line["reason"], line["host"]) == ("host", "rebound.example")


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [
        (("alerts.example",), "alerts.example", 200),
        (("alerts.example",), "alerts.example:443", 200),
        (("alerts.example:8443",), "alerts.example:9999", 403),
        (("*",), "anything.example", 200),
    ],
)
async def test_configured_allowed_hosts(allowed: tuple[str, ...], host: str, status: int) -> None:
    with trio.fail_after(15):
        async with open_gateway(GatewaySettings(allowed_hosts=allowed)) as served:
            assert (await request(served, "GET", "/api/alerts", host=host))[0] == status


def test_allowed_hosts_and_the_cap_from_the_environment() -> None:
    settings = load_settings(
        None,
        {
            "MARKETD_GATEWAY__ALLOWED_HOSTS": "alerts.example.com,marketd:8080",
            "MARKETD_GATEWAY__MAX_ALERTS_PER_S": "7",
        },
    )
    assert settings.gateway.allowed_hosts == ("alerts.example.com", "marketd:8080")
    assert settings.gateway.max_alerts_per_s == 7
    assert (GatewaySettings().allowed_hosts, GatewaySettings().max_alerts_per_s) == ((), 20)


async def test_a_refused_origin_is_counted_and_logged() -> None:
    origin = "http://" + "a" * 100 + ".example"
    with structlog.testing.capture_logs() as logs, trio.fail_after(15):
        async with open_gateway() as served:
            for _ in range(3):
                rejected = await handshake_refused(
                    served, host=f"127.0.0.1:{served.port}", origin=origin
                )
                assert rejected.status_code == 403
            text = served.metrics_text()
    assert by_reason(text, "marketd_gateway_clients_rejected_total") == {
        "origin": 3,
        "host": 0,
        "shutting_down": 0,
    }
    (line,) = lines(logs, "websocket handshake refused")  # one line per 10 s
    assert (line["reason"], line["client"]) == ("origin", "127.0.0.1")
    assert line["origin"] == origin[:80] + "…"  # client-supplied values are bounded


async def test_repeated_wrong_tokens_are_slowed_down_for_that_address_only() -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    wrong = {"Authorization": "Bearer guess"}
    with structlog.testing.capture_logs() as logs, trio.fail_after(20):
        async with open_gateway(GatewaySettings(api_token=TOKEN)) as served:

            async def put(headers: dict[str, str], source: str) -> tuple[int, dict[str, str]]:
                status, response_headers, _ = await request(
                    served, "PUT", "/api/rules", body=RULES, headers=headers, source=source
                )
                return status, response_headers

            for _ in range(5):  # the fifth failure starts a one-second slow-down
                status, headers = await put(wrong, "127.0.0.2")
                assert status == 401
                assert headers["www-authenticate"] == 'Bearer realm="marketd"'
            began = trio.current_time()
            for headers_sent in (wrong, bearer, {}):  # refused unchecked, even the right one
                status, headers = await put(headers_sent, "127.0.0.2")
                assert status == 429
                assert headers["retry-after"] == "1"
            assert (await put(bearer, "127.0.0.1"))[0] == 200  # another address is not slowed
            await trio.sleep_until(began + 1.0)
            assert (await put(bearer, "127.0.0.2"))[0] == 200  # after the delay: checked
            assert (await put(wrong, "127.0.0.2"))[0] == 401  # a success forgot the failures
            text = served.metrics_text()
    assert by_reason(text, "marketd_gateway_token_refused_total") == {
        "missing": 0,
        "wrong": 6,
        "throttled": 3,
    }
    (refused,) = lines(logs, "token refused")  # rate-limited: one line per 10 s
    assert (refused["reason"], refused["client"], refused["blocked_s"]) == (
        "wrong",
        "127.0.0.2",
        None,
    )
    (throttled,) = lines(logs, "token attempt refused: too many failures")
    assert throttled["client"] == "127.0.0.2"
