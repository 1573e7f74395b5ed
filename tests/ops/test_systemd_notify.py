"""sd_notify over a real datagram NOTIFY_SOCKET: the module alone, and a real daemon."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from kit.wait import poll_until

from marketd.obs.systemd import (
    Notifier,
    notify_status,
    notify_stopping,
    serve_systemd_notify,
    watchdog_interval,
)


class Listener:
    """The systemd side: a bound AF_UNIX datagram socket; ``address`` for NOTIFY_SOCKET."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._stop = threading.Event()
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)

    def messages(self, wait_s: float = 0.0) -> list[str]:
        out: list[str] = []
        self.sock.settimeout(wait_s if wait_s > 0 else None)
        self.sock.setblocking(wait_s > 0)
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except (BlockingIOError, TimeoutError):
                return out

    async def collect(self, out: list[str], count: int) -> None:
        """Append datagrams to ``out`` until it holds ``count``: wait for a number of
        messages, not for a time (bounded below the tests' ``fail_after(10)``)."""

        def enough() -> bool:
            out.extend(self.messages())
            return len(out) >= count

        await poll_until(enough, timeout=8, what=f"{count} notify datagrams", interval=0.01)

    def read_into(self, out: list[str], timeout: float, times: list[float] | None = None) -> None:
        """Append every datagram to ``out`` (and its arrival, monotonic, to ``times``)
        until :meth:`stop_reading` (in a thread)."""
        self.sock.settimeout(0.1)
        deadline = time.monotonic() + timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                out.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            if times is not None:
                times.append(time.monotonic())

    def stop_reading(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Iterator[Listener]:
    if request.param == "abstract":
        address = f"@marketd-test-{uuid.uuid4().hex}"
        lst = Listener(address)
        yield lst
        lst.close()
        return
    # A short directory: AF_UNIX paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="sdn-", dir="/tmp") as tmp:
        lst = Listener(str(Path(tmp) / "notify"))
        yield lst
        lst.close()


def fields(message: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in message.splitlines())


def test_no_notify_socket_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.send("READY=1") is False
    notify_stopping(notifier=notifier)
    notify_status("x", notifier=notifier)


def test_unsupported_socket_kind_is_a_no_op() -> None:
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval(env) == expected


def test_send_stopping_and_status(listener: Listener) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": listener.address})
    notify_stopping(notifier=notifier)
    notify_status("draining 3 batches", notifier=notifier)
    notifier.close()
    assert [fields(m) for m in listener.messages()] == [
        {"STOPPING": "1", "STATUS": "stopping: draining and flushing"},
        {"STATUS": "draining 3 batches"},
    ]


def test_a_vanished_socket_does_not_raise(listener: Listener) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": listener.address + "-gone"})
    assert notifier.send("WATCHDOG=1") is False
    assert notifier.send("WATCHDOG=1") is False
    notifier.close()


async def test_ready_then_watchdog_only_while_healthy(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping every 0.05 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = Notifier({"NOTIFY_SOCKET": listener.address})
    health = {"ok": True}
    state = {"text": "feeds 2/2"}
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve_systemd_notify(
                    lambda: health["ok"],
                    status=lambda: state["text"],
                    notifier=notifier,
                    task_status=task_status,
                )
            )
            ready = listener.messages()
            # Wait for pings (a count), not for a time a loaded machine may not use.
            healthy: list[str] = []
            await listener.collect(healthy, 3)
            health["ok"] = False
            await trio.sleep(0.05)
            listener.messages()  # a ping may have been on its way
            await trio.sleep(0.3)  # six ping periods: none may come
            unhealthy = listener.messages()
            state["text"] = "feeds 1/2"
            health["ok"] = True
            recovered: list[str] = []
            await listener.collect(recovered, 2)
            nursery.cancel_scope.cancel()
    notifier.close()
    (first,) = ready
    assert fields(first) == {"READY": "1", "STATUS": "feeds 2/2", "MAINPID": str(os.getpid())}
    assert len(healthy) >= 3
    assert all(fields(m) == {"WATCHDOG": "1"} for m in healthy)
    assert unhealthy == []
    assert fields(recovered[0]) == {"WATCHDOG": "1", "STATUS": "feeds 1/2"}
    assert all(fields(m) == {"WATCHDOG": "1"} for m in recovered[1:])


async def test_not_under_systemd_serve_just_sleeps() -> None:
    with trio.move_on_after(0.2) as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve_systemd_notify(
                    lambda: True, notifier=Notifier({}), task_status=task_status
                )
            )
    assert scope.cancelled_caught


@pytest.mark.slow
def test_daemon_sends_ready_watchdog_and_stopping(listener: Listener) -> None:
    """A real ``marketd demo`` under a fake systemd: READY=1, WATCHDOG=1 while it runs,
    STOPPING=1 when the duration is over, in that order."""
    env = {
        **os.environ,
        "NOTIFY_SOCKET": listener.address,
        "WATCHDOG_USEC": "400000",  # a ping every 0.2 s
        "MARKETD_LOG__FORMAT": "json",
    }
    env.pop("WATCHDOG_PID", None)
    args = ["--symbols", "2", "--duration", "3", "--listen", "127.0.0.1:0"]
    # Read as systemd does, all along: the kernel queues only a few datagrams.
    received: list[str] = []
    arrived: list[float] = []
    reader = threading.Thread(
        target=listener.read_into, args=(received, 60.0, arrived), daemon=True
    )
    reader.start()
    with subprocess.Popen(
        [sys.executable, "-m", "marketd", "demo", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    listener.stop_reading()
    reader.join(5)
    assert proc.returncode == 0, stderr[-3000:]
    messages = [fields(m) for m in received]
    kinds = [next((k for k in ("READY", "STOPPING", "WATCHDOG") if k in m), "") for m in messages]
    assert kinds[0] == "READY", messages
    assert messages[0].get("MAINPID") == str(proc.pid)
    assert kinds.count("READY") == 1
    assert "STOPPING" in kinds, messages
    stopping = kinds.index("STOPPING")
    # Pings all along: at least one per WATCHDOG_USEC (what systemd requires; they are
    # due every half of it) over the time from READY to STOPPING as measured, rather than a
    # fixed count for a nominal 3 s that a loaded machine stretches or starts late.
    ran_s = arrived[stopping] - arrived[0]
    assert kinds[1:stopping].count("WATCHDOG") >= int(ran_s / 0.4) - 1, (ran_s, messages)
