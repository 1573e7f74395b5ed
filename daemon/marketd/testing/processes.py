"""Real processes for end-to-end tests and benchmarks: the fake exchange and ``marketd run``.

Both run as subprocesses on loopback ports, exactly as a user would run them; tests
talk to them over HTTP (the fake's control API, the daemon's /metrics and /readyz).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(url: str, body: Any = None, *, timeout: float = 5.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        exc.close()
        return exc.code, json.loads(payload or b"null")


def http_text(url: str, *, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text: str = resp.read().decode()
        return text


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in exposition.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def wait_until(predicate: Any, *, timeout: float, interval: float = 0.1, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


class Process:
    """A subprocess with its stderr in a file (shown when a test fails)."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class FakeExchangeProcess(Process):
    """``python -m marketd.fakex`` on free ports; ``urls`` from its first stdout line."""

    def __init__(self, tmp: Path, *args: str) -> None:
        super().__init__([sys.executable, "-m", "marketd.fakex", *args], tmp / "fake-exchange.log")
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise AssertionError("fake exchange did not start:\n" + self.log_tail())
        self.urls: dict[str, str] = json.loads(line)

    def control(self, action: str, body: Any = None) -> Any:
        """POST ``body`` (default ``{}``) to a control action; ``state`` is a GET."""
        if action != "state" and body is None:
            body = {}
        status, payload = http_json(f"{self.urls['control_url']}/{action}", body)
        assert status == 200, (action, status, payload)
        return payload

    def state(self) -> Any:
        return self.control("state")

    def rest(self, market: str, path: str) -> Any:
        base = self.urls["spot_rest_url" if market == "spot" else "futures_rest_url"]
        status, payload = http_json(base + path)
        assert status == 200, (path, status, payload)
        return payload

    def __enter__(self) -> FakeExchangeProcess:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.wait(10)
        self.close()


class ReplayProcess(Process):
    """``python -m marketd replay DIR ARGS`` on free ports; ``urls`` from its first line."""

    def __init__(self, tmp: Path, directory: Path, *args: str) -> None:
        super().__init__(
            [sys.executable, "-m", "marketd", "replay", str(directory), *args],
            tmp / "replay.log",
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise AssertionError("replay did not start:\n" + self.log_tail())
        self.urls: dict[str, str] = json.loads(line)

    def state(self) -> Any:
        status, payload = http_json(f"{self.urls['control_url']}/state")
        assert status == 200, (status, payload)
        return payload

    def __enter__(self) -> ReplayProcess:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is not None:
            sys.stderr.write("---- replay log ----\n" + self.log_tail(60) + "\n")
        self.signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.wait(10)
        self.close()


class DaemonProcess(Process):
    """``python -m marketd run --config FILE`` with the given settings and environment."""

    def __init__(self, tmp: Path, config: dict[str, Any], env: dict[str, str] | None = None):
        self.port = free_port()
        config = {**config, "http": {"listen": f"127.0.0.1:{self.port}"}}
        # The spool (on by default with Kafka) lives in the test's directory; a daemon
        # restarted in the same directory finds what its predecessor spooled.
        config["spool"] = {"directory": str(tmp / "spool"), **config.get("spool", {})}
        path = tmp / "marketd.yaml"
        path.write_text(yaml.safe_dump(config))
        self.base = f"http://127.0.0.1:{self.port}"
        super().__init__(
            [sys.executable, "-m", "marketd", "run", "--config", str(path)],
            tmp / "marketd.log",
            env,
        )

    def metrics(self) -> str:
        return http_text(self.base + "/metrics")

    def ready(self) -> tuple[int, Any]:
        try:
            return http_json(self.base + "/readyz")
        except OSError:
            return 0, None

    def wait_ready(self, timeout: float = 30.0) -> None:
        def is_ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError("marketd exited early:\n" + self.log_tail())
            return self.ready()[0] == 200

        wait_until(is_ready, timeout=timeout, what="marketd /readyz 200")

    def stop(self, timeout: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is not None:
            sys.stderr.write("---- marketd log ----\n" + self.log_tail(120) + "\n")
        self.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size (VmHWM) of process ``pid`` in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def histogram_quantile(exposition: str, name: str, q: float, before: str | None = None) -> float:
    """Quantile ``q`` of histogram ``name`` (summed over labels), linearly interpolated
    inside its bucket as Prometheus' ``histogram_quantile`` does. With ``before``, only the
    observations made since that earlier exposition count."""

    def buckets(text: str) -> dict[float, float]:
        out: dict[float, float] = {}
        for line in text.splitlines():
            if not line.startswith(name + "_bucket{"):
                continue
            head, _, value = line.rpartition(" ")
            le = head.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            out[bound] = out.get(bound, 0.0) + float(value)
        return out

    now = buckets(exposition)
    if before is not None:
        earlier = buckets(before)
        now = {b: c - earlier.get(b, 0.0) for b, c in now.items()}
    bounds = sorted(now)
    total = now[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = now[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower
