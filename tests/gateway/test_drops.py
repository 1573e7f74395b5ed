"""Every way the gateway disconnects a WebSocket client is counted by reason and logged;
every reason is exported at 0 before it first happens (real server on 127.0.0.1:0)."""

from __future__ import annotations

import shutil

import pytest
import structlog
import trio
import trio_websocket
from kit.wait import poll_until

from marketd.config.alerts import GatewaySettings

from .support import make_alert, open_gateway, open_ws, receive_json
from .wire import by_reason, samples

DROPPED = "marketd_gateway_clients_dropped_total"
REJECTED = "marketd_gateway_clients_rejected_total"


def dropped_lines(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [line for line in logs if line["event"] == "websocket client dropped"]


async def read_until_closed(ws: trio_websocket.WebSocketConnection) -> None:
    """Read what was buffered; the connection turns out gone (ConnectionClosed)."""
    while True:
        with trio.fail_after(5):
            await ws.get_message()


async def test_every_reason_is_exported_at_zero_from_the_start() -> None:
    with trio.fail_after(15):
        async with open_gateway() as served:
            text = served.metrics_text()
    zeros = {"slow": 0, "send_timeout": 0, "going_away": 0, "protocol": 0, "error": 0}
    assert by_reason(text, DROPPED) == zeros
    assert by_reason(text, REJECTED) == {"origin": 0, "host": 0, "shutting_down": 0}
    assert by_reason(text, "marketd_gateway_requests_refused_total") == {"host": 0}
    assert by_reason(text, "marketd_gateway_token_refused_total") == {
        "missing": 0,
        "wrong": 0,
        "throttled": 0,
    }
    assert samples(text, "marketd_gateway_alerts_suppressed_total") == {(): 0}
    assert samples(text, "marketd_gateway_alerts_muted_total") == {(): 0}
    assert samples(text, "marketd_alert_push_latency_seconds_count") == {(): 0}
    buckets = samples(text, "marketd_alert_push_latency_seconds_bucket")
    assert {dict(k)["le"] for k in buckets} >= {"0.001", "10.0", "+Inf"}
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package: prometheus)")
    with trio.fail_after(30):
        done = await trio.run_process(
            [promtool, "check", "metrics"], stdin=text.encode(), capture_stdout=True,
            capture_stderr=True, check=False,
        )  # fmt: skip
    assert (done.returncode, done.stdout + done.stderr) == (0, b"")


async def test_a_client_that_never_reads_is_cut_by_the_send_timeout_counted_and_logged() -> None:
    # A queue far larger than what is published: the client is not dropped as slow, its
    # sends stall (it never reads), and the kernel cuts it after send_timeout_s.
    settings = GatewaySettings(client_queue=200_000, replay=0, max_alerts_per_s=0)
    with structlog.testing.capture_logs() as logs, trio.fail_after(40):
        async with (
            open_gateway(settings, send_timeout_s=1.0) as served,
            open_ws(served, rcvbuf=4096, message_queue_size=1) as stuck,
        ):
            await poll_until(
                lambda: served.hub.statistics().clients == 1, timeout=10, what="the client",
                interval=0.01,
            )  # fmt: skip

            def cut() -> bool:
                return served.hub.statistics().dropped.get("send_timeout", 0) > 0

            published = 0
            while not cut():
                assert published < 150_000, "the stuck client was never cut"
                served.hub.publish([make_alert(f"S{i}USDT") for i in range(100)])
                published += 100
                await trio.sleep(0.01)
            with pytest.raises(trio_websocket.ConnectionClosed):
                await read_until_closed(stuck)
            text = served.metrics_text()
            stats = served.hub.statistics()
    assert by_reason(text, DROPPED)["send_timeout"] == 1
    assert by_reason(text, DROPPED)["slow"] == 0
    assert stats.clients == 0
    (line,) = dropped_lines(logs)
    assert line["reason"] == "send_timeout"
    assert line["log_level"] == "warning"
    assert line["client"] == "127.0.0.1"


async def test_shutdown_closes_with_1001_counts_going_away_and_logs_it() -> None:
    with structlog.testing.capture_logs() as logs, trio.fail_after(15):
        async with open_gateway() as served:
            async with open_ws(served) as first, open_ws(served) as second:
                for ws in (first, second):
                    assert (await receive_json(ws))["type"] == "replay"
                served.shutdown.set()
                for ws in (first, second):
                    with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                        await receive_json(ws)
                    assert closed.value.reason.code == 1001
            await poll_until(
                lambda: served.hub.statistics().clients == 0, timeout=10, what="both closed"
            )
            text = served.metrics_text()
    assert by_reason(text, DROPPED)["going_away"] == 2
    # One line for both (rate-limited); the next one would say how many were held back.
    (line,) = dropped_lines(logs)
    assert (line["reason"], line["log_level"], line["suppressed"]) == ("going_away", "info", 0)


async def test_shutdown_closes_with_1001_without_the_gateways_watcher_too() -> None:
    # One task watches shutdown for every connection; once it is stopped (as after
    # serving), the connections open then and later ones watch for it themselves.
    with trio.fail_after(15):
        async with open_gateway() as served, open_ws(served) as before:
            assert (await receive_json(before))["type"] == "replay"
            await served.gateway.stop_serving()
            async with open_ws(served) as after:
                assert (await receive_json(after))["type"] == "replay"
                served.shutdown.set()
                for ws in (before, after):
                    with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                        await receive_json(ws)
                    assert closed.value.reason.code == 1001


@pytest.mark.parametrize(
    ("message", "code"),
    [(b"\x00\x01", 1003), ("x" * 5000, 1009)],
    ids=["binary", "oversized"],
)
async def test_a_client_breaking_the_protocol_is_closed_counted_and_logged(
    message: str | bytes, code: int
) -> None:
    with structlog.testing.capture_logs() as logs, trio.fail_after(15):
        async with open_gateway() as served:
            async with open_ws(served) as ws:
                assert (await receive_json(ws))["type"] == "replay"
                await ws.send_message("a short text message is ignored")
                await ws.send_message(message)
                with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                    await receive_json(ws)
                assert closed.value.reason.code == code
            text = served.metrics_text()
    assert by_reason(text, DROPPED)["protocol"] == 1
    (line,) = dropped_lines(logs)
    assert (line["reason"], line["log_level"]) == ("protocol", "warning")


async def test_a_client_that_leaves_is_not_a_drop() -> None:
    with structlog.testing.capture_logs() as logs, trio.fail_after(15):
        async with open_gateway() as served:
            async with open_ws(served) as ws:
                assert (await receive_json(ws))["type"] == "replay"
            await poll_until(
                lambda: served.hub.statistics().clients == 0, timeout=10, what="the client gone"
            )
            served.hub.publish([make_alert()])
            text = served.metrics_text()
    assert set(by_reason(text, DROPPED).values()) == {0}
    assert dropped_lines(logs) == []
