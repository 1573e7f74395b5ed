"""The ``marketd`` command as a user runs it (subprocesses, loopback only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from kit.net import free_port
from kit.wait import poll_until_blocking

import marketd
from marketd.testing.processes import http_json, http_text, metric_value


def marketd_cmd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "marketd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_version() -> None:
    result = marketd_cmd("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"marketd {marketd.__version__}"


def test_run_refuses_a_bad_configuration_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("kafka:\n  linger_ms: -1\n  bootstrap_server: x\n")
    result = marketd_cmd("run", "--config", str(config), env={"MARKETD_HTTP__LISTEN": "no-port"})
    assert result.returncode == 2
    assert "kafka.linger_ms" in result.stderr
    assert "kafka.bootstrap_server: unknown key" in result.stderr
    assert "http.listen" in result.stderr
    assert "MARKETD_HTTP__LISTEN" in result.stderr


def test_check_config_prints_effective_configuration_with_secrets_masked() -> None:
    result = marketd_cmd(
        "check-config",
        env={
            "MARKETD_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092",
            "MARKETD_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "MARKETD_KAFKA__SASL_MECHANISM": "PLAIN",
            "MARKETD_KAFKA__SASL_USERNAME": "marketd",
            "MARKETD_KAFKA__SASL_PASSWORD": "hunter2",
        },
    )
    assert result.returncode == 0, result.stdout
    assert "bootstrap_servers: 127.0.0.1:9092" in result.stdout
    assert "hunter2" not in result.stdout
    assert "sasl_password: '***'" in result.stdout


def test_demo_runs_offline_serves_metrics_and_exits_cleanly(tmp_path: Path) -> None:
    """The demo alone: events on the bus, ready, and its own price jumps raise alerts."""
    port = free_port()
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "marketd", "demo", "--duration", "12",
         "--listen", f"127.0.0.1:{port}", "--rate", "200", "--jump-every", "1.5"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"

        def events() -> float:
            try:
                return metric_value(http_text(base + "/metrics"), "marketd_bus_records_total")
            except OSError:
                return 0.0

        poll_until_blocking(lambda: events() > 50, timeout=20, what="demo events on the bus")
        assert http_json(base + "/healthz") == (200, {"status": "ok"})
        status, body = http_json(base + "/readyz")
        assert status == 200, body
        text = http_text(base + "/metrics")
        assert metric_value(text, "marketd_events_total", market="spot", kind="trade") > 0
        assert metric_value(text, "marketd_events_total", market="usdm", kind="aggTrade") > 0
        # The first jump (+3 %: the default rule's 2 % plus 1) shows on the alerts API.

        def alerts() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = http_json(base + "/api/alerts")[1]["alerts"]
            return found

        poll_until_blocking(
            lambda: alerts(), timeout=15, what="an alert from the demo's price jump"
        )
        first = alerts()[-1]  # newest first
        assert (first["market"], first["direction"]) == ("usdm", "up")
        assert first["change_pct"] > 2.0
        # The jump also opens a premium over the lagging index, and moves the funding rate.
        poll_until_blocking(
            lambda: {"price", "premium", "funding"} <= {a["kind"] for a in alerts()},
            timeout=10,
            what="a premium and a funding alert from the demo's jump",
        )
        premium = next(a for a in alerts() if a["kind"] == "premium")
        assert premium["symbol"] == first["symbol"]
        assert premium["change_pct"] > 1.0
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "demo.log").read_text()
    assert "demo price jump" in text
    # The terminal: one line per alert, and a concise periodic line with rates.
    alert_lines = [x for x in text.splitlines() if " alert " in x and "symbol=" in x]
    assert any(f"symbol={first['symbol']}" in x and "direction=up" in x for x in alert_lines)
    assert all("move=+" in x or "move=-" in x for x in alert_lines)
    stats = [x for x in text.splitlines() if " statistics " in x]
    assert stats, text[-2000:]
    last = stats[-1]
    for field in ("in_per_s=", "delivered_per_s=", "feeds=", "alerts=", "clients="):
        assert field in last, last
    assert len(last) < 300, last


def test_unreachable_kafka_is_not_ready_and_sigterm_still_exits_promptly(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens here
    port = free_port()
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "marketd", "run"],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        env={
            **os.environ,
            "MARKETD_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{dead}",
            "MARKETD_HTTP__LISTEN": f"127.0.0.1:{port}",
            "MARKETD_SPOOL__DIRECTORY": str(tmp_path / "spool"),
            # With the spool on, intake starts without Kafka (records wait on disk); here
            # the exchange is unreachable too, so nothing is accepted at all.
            "MARKETD_BINANCE__SPOT_WS_URL": f"ws://127.0.0.1:{dead}",
            "MARKETD_BINANCE__FUTURES_WS_URL": f"ws://127.0.0.1:{dead}",
        },
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def readyz() -> tuple[int, object]:
            try:
                return http_json(base + "/readyz")
            except OSError:
                return 0, None

        poll_until_blocking(lambda: readyz()[0] == 503, timeout=20, what="/readyz answering 503")
        _, body = readyz()
        assert isinstance(body, dict)
        assert "sink" in body["not_ready"]
        assert "kafka" in body["not_ready"]
        assert http_json(base + "/healthz")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_an_unusable_spool_directory_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "marketd", "run"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env={
            **os.environ,
            "MARKETD_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "MARKETD_HTTP__LISTEN": f"127.0.0.1:{free_port()}",
            "MARKETD_SPOOL__DIRECTORY": str(blocker / "spool"),
            "MARKETD_BINANCE__SPOT_WS_URL": f"ws://127.0.0.1:{free_port()}",
            "MARKETD_BINANCE__FUTURES_WS_URL": f"ws://127.0.0.1:{free_port()}",
        },
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot open spool directory '{blocker / 'spool'}'"), last
