"""The Containerfile built and run with Podman, as a user runs the image.

The image runs its default command (``marketd run``, configured by the shipped
``/etc/marketd/marketd.yaml`` and the image's environment) against the fake exchange, which
runs on the host's loopback: only the exchange's URLs are set, with ``MARKETD_BINANCE__*``.
The container has a network namespace of its own (slirp4netns: no iptables changes), so
its HEALTHCHECK probes port 8080 as in any deployment; ``-p`` publishes that port on a free
loopback port, and ``allow_host_loopback`` lets the container reach the host's loopback
as 10.0.2.2. The root file system is read-only, as the Containerfile says it may be.

Skipped, with the reason, only where Podman cannot run (not installed and not root to
install it, or ``podman info`` fails); with ``CI=true`` that is a failure instead.
``tests/ops/podmankit.py`` has what Podman needs on these machines; the first run builds a
base image with mmdebstrap (about a minute), later ones reuse it and the layer cache in
``build/podman/``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kit.daemon import EXCHANGE_URL_KEYS, alerts_of
from kit.net import free_port
from kit.wait import poll_until_blocking
from podmankit import IN_CI, LABEL, Podman, podman_or_reason

from marketd.testing.processes import FakeExchangeProcess, http_json, http_text, metric_value

pytestmark = [pytest.mark.slow, pytest.mark.podman]

ROOT = Path(__file__).parents[2]
CONTAINERFILE = ROOT / "Containerfile"
TAG = "localhost/marketd-test:latest"
# The host's loopback as slirp4netns shows it to the container (allow_host_loopback).
HOST_FROM_CONTAINER = "10.0.2.2"


def containerfile_instruction(name: str) -> str:
    """The arguments of the runtime stage's (last) ``name`` instruction."""
    joined = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text())
    (*_, found) = re.findall(rf"^{name}\s+(.*)$", joined, re.MULTILINE)
    return str(found).strip()


def require_podman() -> Podman:
    """Podman ready to use; else skipped with the reason (failed with CI=true)."""
    ready, why = podman_or_reason()
    if ready is None:
        if IN_CI:
            pytest.fail(f"Podman cannot run here (CI=true, so not skipped): {why}")
        pytest.skip(f"Podman cannot run here: {why}")
    return ready


def test_image_runs_healthy_as_its_user_and_stops_cleanly(tmp_path: Path) -> None:
    podman = require_podman()
    user = containerfile_instruction("USER")
    uid = user.split(":")[0]
    health = json.loads(containerfile_instruction("HEALTHCHECK").split(" CMD ", 1)[1])
    began = time.monotonic()
    with podman.exclusive():
        podman.remove_stale_containers()
        base = podman.base_image()
        based = time.monotonic()
        image = podman.build(CONTAINERFILE, ROOT, base, TAG)
        built = time.monotonic()

        # Docker format keeps the HEALTHCHECK (OCI would drop it); the rest as written.
        inspected = podman.inspect("image", image)
        assert inspected["Healthcheck"]["Test"] == ["CMD", *health]
        config = inspected["Config"]
        assert config["User"] == user
        assert config["Entrypoint"] == ["marketd"]
        assert config["Cmd"] == ["run"]
        assert config["StopSignal"] == "SIGTERM"

        # What the default command will run: the shipped configuration under the image's
        # environment (no network needed to print it).
        shown = podman(
            "run", "--rm", "--network", "none", "--label", LABEL, image, "check-config",
            timeout=120,
        )  # fmt: skip
        effective = yaml.safe_load(shown.stdout)
        assert effective["http"]["listen"] == "0.0.0.0:8080"
        assert effective["kafka"]["bootstrap_servers"] == ""
        (spot,) = [s for s in effective["subscriptions"] if s["market"] == "spot"]
        assert "depth@100ms" in spot["channels"]
        symbols: list[str] = spot["symbols"]

        with FakeExchangeProcess(tmp_path, "--symbols", str(len(symbols))) as fx:
            run_in_container(podman, image, fx, symbols, uid)
    # Shown with -rP (or -s): where the time went.
    print(
        f"base image {based - began:.1f} s, build {built - based:.1f} s,"
        f" checks and run {time.monotonic() - built:.1f} s"
    )


def run_in_container(
    podman: Podman, image: str, fx: FakeExchangeProcess, symbols: list[str], uid: str
) -> None:
    name = f"marketd-test-{uuid.uuid4().hex[:10]}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    exchange = [
        f"--env=MARKETD_BINANCE__{key.upper()}="
        + fx.urls[key].replace("127.0.0.1", HOST_FROM_CONTAINER)
        for key in EXCHANGE_URL_KEYS
    ]
    try:
        podman(
            "run", "--detach", "--name", name, "--label", LABEL, "--read-only",
            "--network", "slirp4netns:allow_host_loopback=true",
            "--publish", f"127.0.0.1:{port}:8080", *exchange, image,
            timeout=120,
        )  # fmt: skip

        def state() -> dict[str, Any]:
            found: dict[str, Any] = podman.inspect("container", name)["State"]
            return found

        def logs() -> str:
            done = podman("logs", name, timeout=60, check=False)
            return (done.stdout + done.stderr)[-4000:]

        def ready() -> bool:
            assert state()["Running"], "the container exited:\n" + logs()
            try:
                return http_json(base + "/readyz", timeout=2)[0] == 200
            except (OSError, http.client.HTTPException):
                return False

        poll_until_blocking(ready, timeout=90, what="/readyz 200 from the container", interval=0.5)

        # Liveness, readiness naming this configuration's components, the UI package data.
        assert http_json(base + "/healthz") == (200, {"status": "ok"})
        status, detail = http_json(base + "/readyz")
        assert (status, detail["ready"], detail["not_ready"]) == (200, True, [])
        assert detail["roles"] == ["collector", "detector", "gateway"]
        assert detail["components"] == ["sink", "feed:spot-0", "feed:usdm-market-0", "detector"]
        assert http_text(base + "/") == (ROOT / "ui" / "index.html").read_text()

        # The image's own HEALTHCHECK, run by Podman inside the container.
        check = podman("healthcheck", "run", name, timeout=60, check=False)
        assert check.returncode == 0, check.stdout + check.stderr + logs()
        assert state()["Health"]["Status"] == "healthy"

        # The daemon (PID 1) and anything exec'd run as the Containerfile's USER.
        assert podman("exec", name, "id", "-u", timeout=60).stdout.strip() == uid
        assert podman("exec", name, "id", "-un", timeout=60).stdout.strip() == "marketd"
        status_lines = podman("exec", name, "cat", "/proc/1/status", timeout=60).stdout
        (uids,) = re.findall(r"^Uid:\s+(.*)$", status_lines, re.MULTILINE)
        assert uids.split() == [uid] * 4

        # Every default spot book synced from the exchange through the container's network
        # (REST snapshot plus diffs), and one connection per market, the daemon's own.
        def synced() -> float:
            return metric_value(
                http_text(base + "/metrics"), "marketd_book_state", market="spot", state="synced"
            )

        poll_until_blocking(lambda: synced() == len(symbols), timeout=60, what="books synced")
        exchange_state = fx.state()
        for market in ("spot", "usdm"):
            assert exchange_state["markets"][market]["connections_total"] == 1, exchange_state

        # A price jump becomes an alert served by the container's gateway.
        def ticks() -> float:
            return metric_value(http_text(base + "/metrics"), "marketd_detector_ticks_total")

        poll_until_blocking(
            lambda: ticks() >= 2 * len(symbols), timeout=30, what="mini tickers before the jump"
        )
        jumped = fx.control("jump", {"market": "usdm", "symbol": symbols[0], "percent": 5.0})
        poll_until_blocking(
            lambda: alerts_of(base, symbols[0]), timeout=30, what=f"an alert for {symbols[0]}"
        )
        (alert,) = alerts_of(base, symbols[0])
        assert alert["direction"] == "up"
        assert abs(float(alert["price"]) / float(jumped["price"]) - 1) < 0.01

        # podman stop sends the STOPSIGNAL (SIGTERM): the daemon drains and exits 0.
        podman("stop", "--time", "30", name, timeout=90)
        stopped = state()
        assert (stopped["Status"], stopped["ExitCode"]) == ("exited", 0), logs()
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name, timeout=60)
        assert exit_code.stdout.strip() == "0"
        assert '"signal": "SIGTERM"' in logs()
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):  # keep the test's own error
            podman("rm", "--force", "--volumes", "--time", "5", name, timeout=120, check=False)
