"""systemd service notifications (``sd_notify``) for ``Type=notify`` units, without libsystemd.

``$NOTIFY_SOCKET`` names a datagram socket: a path, or ``@name`` for an abstract one.
:func:`serve_systemd_notify` sends ``READY=1`` once the daemon is started, then
``WATCHDOG=1`` every half ``$WATCHDOG_USEC`` while ``healthy()`` says so (an unhealthy
daemon stops petting the watchdog and systemd restarts it after ``WatchdogSec``), plus
``STATUS=`` lines; :func:`notify_stopping` sends ``STOPPING=1`` when shutdown begins.
Without ``$NOTIFY_SOCKET`` (not under systemd) all of it does nothing.

Watchdog pings and status lines never block the event loop: a datagram systemd cannot take
right now is dropped (the next ping comes half a period later). READY=1 and STOPPING=1 wait
at most half a second for room in systemd's queue.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

import structlog
import trio

__all__ = [
    "Notifier",
    "notify_status",
    "notify_stopping",
    "serve_systemd_notify",
    "watchdog_interval",
]

log = structlog.get_logger(__name__)


def _address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]  # abstract namespace
    if value.startswith("/"):
        return value
    return None  # vsock: and others are not supported


class Notifier:
    """One ``$NOTIFY_SOCKET`` client; :meth:`send` is a no-op when there is none."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = _address(raw) if raw else None
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET not supported; systemd notifications off", socket=raw)
        self._sock: socket.socket | None = None
        self._failed_once = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str, wait_s: float = 0.0) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) in one datagram. True if sent.

        ``wait_s`` > 0: if systemd's queue is full, wait that long for room (READY and
        STOPPING must arrive); 0: drop the datagram instead (watchdog pings, status)."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            if wait_s > 0:
                self._sock.settimeout(wait_s)
            else:
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(fields).encode("utf-8", "replace"), self.address)
        except OSError as exc:  # TimeoutError and BlockingIOError included
            if not self._failed_once:  # once: a watchdog tick must not log every period
                self._failed_once = True
                log.warning("systemd notification failed", socket=self.address, error=repr(exc))
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or ``None`` when
    the watchdog is off or meant for another process (``$WATCHDOG_PID``)."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    return usec / 2 / 1e6


# READY=1 and STOPPING=1 wait (blocking, at most this long) for room in systemd's queue.
_MUST_ARRIVE_S = 0.5

_notifier: Notifier | None = None


def _default() -> Notifier:
    global _notifier  # one socket per process, made on first use
    if _notifier is None:
        _notifier = Notifier()
    return _notifier


async def serve_systemd_notify(
    healthy: Callable[[], bool],
    *,
    status: Callable[[], str] | None = None,
    notifier: Notifier | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Tell systemd the daemon is ready, then keep the watchdog fed while ``healthy()``.

    Start it (``nursery.start``) once the daemon really serves, outside any span. Runs
    until cancelled. ``status()`` (optional) gives the ``STATUS=`` line, sent when it
    changes. Not under systemd: returns to ``started()`` and sleeps.
    """
    notifier = notifier or _default()
    if not notifier.enabled:
        task_status.started()
        await trio.sleep_forever()
    text = status() if status is not None else "running"
    notifier.send("READY=1", f"STATUS={text}", f"MAINPID={os.getpid()}", wait_s=_MUST_ARRIVE_S)
    task_status.started()
    interval = watchdog_interval()
    period = interval if interval is not None else 10.0  # STATUS refresh only
    unhealthy = False
    while True:
        await trio.sleep(period)
        fields: list[str] = []
        if interval is not None:
            if healthy():
                fields.append("WATCHDOG=1")
                if unhealthy:
                    log.info("healthy again; systemd watchdog fed")
                unhealthy = False
            elif not unhealthy:
                unhealthy = True
                log.error("unhealthy; no longer feeding the systemd watchdog")
        if status is not None and (now := status()) != text:
            text = now
            fields.append(f"STATUS={text}")
        if fields:
            notifier.send(*fields)


def notify_stopping(
    status: str = "stopping: draining and flushing", *, notifier: Notifier | None = None
) -> None:
    """``STOPPING=1``: shutdown has begun (call it when SIGINT/SIGTERM arrives)."""
    (notifier or _default()).send("STOPPING=1", f"STATUS={status}", wait_s=_MUST_ARRIVE_S)


def notify_status(status: str, *, notifier: Notifier | None = None) -> None:
    (notifier or _default()).send(f"STATUS={status}")
