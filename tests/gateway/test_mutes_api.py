"""GET and PUT /api/mutes on the real Quart-Trio app (Hypercorn on 127.0.0.1:0): the token,
validation, persistence, and a muted symbol's alerts kept out of the live push."""

from __future__ import annotations

import json
import time
from pathlib import Path

import trio

from marketd.config.alerts import GatewaySettings
from marketd.gateway.mutes import MUTES_FILE
from marketd.testing.processes import metric_value

from .support import http, make_alert, open_gateway, open_ws, receive_json
from .wire import samples

TOKEN = "mute-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def mutes_body(*mutes: tuple[str, int | None]) -> bytes:
    return json.dumps({"mutes": [{"symbol": s, "until_ms": u} for s, u in mutes]}).encode()


async def test_put_needs_the_token_and_a_valid_body(tmp_path: Path) -> None:
    with trio.fail_after(15):
        settings = GatewaySettings(api_token=TOKEN)
        async with open_gateway(settings, state_dir=str(tmp_path)) as served:
            status, _, body = await http(served, "GET", "/api/mutes")
            assert (status, json.loads(body)) == (200, {"mutes": [], "editable": True})
            payload = mutes_body(("BTCUSDT", None))
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                status, resp_headers, body = await http(
                    served, "PUT", "/api/mutes", body=payload, headers=headers
                )
                assert status == 401, headers
                assert resp_headers["www-authenticate"].startswith("Bearer")
                assert json.loads(body) == {"error": "a valid bearer token is required"}
            for bad, message in [
                (b"nope", 'the body must be JSON: {"mutes": [...]}'),
                (b'{"rules": []}', 'the body must be a JSON object {"mutes": [...]}'),
                (b'{"mutes": {}}', "mutes: expected a list, got dict"),
                (
                    mutes_body(("btc-usdt", None)),
                    "mutes[0].symbol: 1 to 32 characters of A-Z, 0-9 and _",
                ),
                (mutes_body(("BTCUSDT", 1)), "mutes[0].until_ms: must be in the future"),
                (
                    json.dumps({"mutes": [{"symbol": f"S{i}"} for i in range(501)]}).encode(),
                    "mutes: at most 500 symbols can be muted, got 501",
                ),
            ]:
                status, _, body = await http(served, "PUT", "/api/mutes", body=bad, headers=AUTH)
                assert status == 400, bad
                assert message in json.loads(body)["error"], bad
            status, _, _ = await http(served, "PUT", "/api/mutes", body=b" " * 70_000, headers=AUTH)
            assert status == 413
            assert not (tmp_path / MUTES_FILE).exists()  # nothing was accepted
            metrics = served.metrics_text()
            refused = "marketd_gateway_token_refused_total"
            assert metric_value(metrics, refused, reason="missing") == 1
            assert metric_value(metrics, refused, reason="wrong") == 1


async def test_without_a_token_configured_mutes_are_read_only() -> None:
    with trio.fail_after(15):
        async with open_gateway(GatewaySettings()) as served:
            status, _, body = await http(served, "GET", "/api/mutes")
            assert json.loads(body) == {"mutes": [], "editable": False}
            status, _, body = await http(
                served, "PUT", "/api/mutes", body=mutes_body(("BTCUSDT", None)), headers=AUTH
            )
            assert status == 403
            assert json.loads(body) == {
                "error": "mute changes over HTTP are disabled (gateway.api_token is empty)"
            }


async def test_a_muted_symbol_is_not_pushed_live_but_kept_in_the_api(tmp_path: Path) -> None:
    with trio.fail_after(20):
        settings = GatewaySettings(api_token=TOKEN)
        async with open_gateway(settings, state_dir=str(tmp_path)) as served:
            assert samples(served.metrics_text(), "marketd_gateway_alerts_muted_total") == {(): 0}
            until = int(time.time() * 1000) + 3_600_000
            status, _, body = await http(
                served, "PUT", "/api/mutes",
                body=mutes_body(("ETHUSDT", None), ("DOGEUSDT", until)), headers=AUTH,
            )  # fmt: skip
            expected = {
                "mutes": [
                    {"symbol": "DOGEUSDT", "until_ms": until},
                    {"symbol": "ETHUSDT", "until_ms": None},
                ],
                "editable": True,
            }
            assert (status, json.loads(body)) == (200, expected)
            status, _, body = await http(served, "GET", "/api/mutes")
            assert json.loads(body) == expected

            async with open_ws(served) as ws:
                assert (await receive_json(ws))["type"] == "replay"
                eth, btc = make_alert("ETHUSDT"), make_alert("BTCUSDT")
                served.hub.publish([eth])
                served.hub.publish([btc])
                # The next message is BTC's: ETH's was never queued for the browser.
                assert await receive_json(ws) == {"type": "alert", "alert": btc.to_json()}

            status, _, body = await http(served, "GET", "/api/alerts")
            assert json.loads(body)["alerts"] == [btc.to_json(), {**eth.to_json(), "muted": True}]
            async with open_ws(served) as ws:  # a new page's replay has it, marked
                replay = await receive_json(ws)
                assert [(a["symbol"], a.get("muted")) for a in replay["alerts"]] == [
                    ("ETHUSDT", True), ("BTCUSDT", None),
                ]  # fmt: skip
            metrics = served.metrics_text()
            assert metric_value(metrics, "marketd_gateway_alerts_muted_total") == 1
            assert metric_value(metrics, "marketd_gateway_alerts_total") == 2

        # Restarted on the same state directory, the gateway keeps the mutes.
        async with open_gateway(settings, state_dir=str(tmp_path)) as served:
            status, _, body = await http(served, "GET", "/api/mutes")
            assert json.loads(body) == expected
            status, _, body = await http(
                served, "PUT", "/api/mutes", body=mutes_body(), headers=AUTH
            )
            assert json.loads(body) == {"mutes": [], "editable": True}
            async with open_ws(served) as ws:
                assert (await receive_json(ws))["type"] == "replay"
                eth = make_alert("ETHUSDT")
                served.hub.publish([eth])  # unmuted: live again
                assert await receive_json(ws) == {"type": "alert", "alert": eth.to_json()}
        assert json.loads((tmp_path / MUTES_FILE).read_text()) == {"mutes": []}
