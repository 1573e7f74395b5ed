"""The ``/ws/alerts`` handler: replay, then live alerts, until the connection ends, and
every way the gateway ends one counted and logged.

Messages to the client (JSON text):

* ``{"type": "replay", "alerts": [...]}`` first: recent alerts, oldest first;
* ``{"type": "alert", "alert": {...}}`` per live alert, or ``{"type": "alerts",
  "alerts": [...]}`` when several are waiting for that client (one frame for a burst);
* ``{"type": "suppressed", "count": N, "since_ms": T, "limit_per_s": L}`` once a second
  while alerts beyond ``gateway.max_alerts_per_s`` are held back from the live push: N
  alerts this client did not get live since T (wall-clock ms); ``GET /api/alerts`` and
  the next replay have them all.

Live messages are written by the gateway's fan-out writer (:mod:`marketd.gateway.fanout`)
while the client keeps up, and by the connection's own task, through Quart, while it does
not (and where the writer has no direct path); the messages are the same either way.
Besides the handler's own task a connection has one task of the gateway's, its reader;
a drop (:meth:`marketd.gateway.hub.HubClient.cancel_on_drop`) and shutdown
(:meth:`AlertSocket.serve_going_away`, one task for all the connections) cancel both.

The client sends nothing; text messages are read and ignored. The gateway disconnects a
client, counted in ``marketd_gateway_clients_dropped_total{reason}`` and logged (one
line per reason per ``LOG_INTERVAL_S`` at most):

* ``slow``: its queue overflowed (:class:`marketd.gateway.hub.AlertHub`); closed 1008;
* ``send_timeout``: a send to it stalled (it stopped reading) until the kernel cut the
  connection (``TCP_USER_TIMEOUT``, see :func:`marketd.obs.web.listening_socket`);
* ``going_away``: the server shuts down; closed 1001;
* ``protocol``: it sent a binary message (closed 1003) or a text message over
  ``MAX_CLIENT_MESSAGE`` characters (closed 1009);
* ``error``: the handler failed (Quart logs the traceback; Hypercorn closes 1011).

A handshake is refused (``marketd_gateway_clients_rejected_total{reason}``, logged) for a
foreign Host (``host``, 403) or Origin (``origin``, 403), or during shutdown
(``shutting_down``, 503). Not seen here: a malformed WebSocket frame, which Hypercorn
answers by closing the connection itself; the handler only sees the client go.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Iterator
from typing import Final

import attrs
import quart
import structlog
import trio
from quart import Response

from marketd.gateway import policy
from marketd.gateway.fanout import TAKE_LIMIT, Fanout, Outlet
from marketd.gateway.guard import LOG_INTERVAL_S, Guard, json_error, peer_of
from marketd.gateway.hub import (
    DROP_REASONS,
    ERROR,
    GOING_AWAY,
    MAX_BATCH,
    PROTOCOL,
    SEND_TIMEOUT,
    SHUTTING_DOWN,
    AlertHub,
    HubClient,
    alerts_message,
    live_messages,
    replay_message,
)
from marketd.gateway.livelog import Notice, Queued
from marketd.obs.logs import RateLimitedLog

log = structlog.get_logger(__name__)

CLOSE_TIMEOUT_S: Final = 1.0
MAX_CLIENT_MESSAGE: Final = 4096

NORMAL_CLOSURE: Final = 1000
GOING_AWAY_CODE: Final = 1001
UNSUPPORTED_DATA: Final = 1003
POLICY_VIOLATION: Final = 1008
MESSAGE_TOO_BIG: Final = 1009


class _Outcome(enum.Enum):
    ENDED = "ended"  # the handler's own tasks ended it (drop, shutdown, violation)
    PEER_GONE = "peer_gone"  # cancelled from outside: the connection is gone
    FAILED = "failed"  # an exception


@attrs.define
class _Connection:
    peer: str
    opened: float
    sending_since: float | None = None
    stall_ended: float = -math.inf
    violation: tuple[int, str] | None = None  # close code, reason

    def send_started(self, now: float) -> None:
        self.sending_since = now

    def send_ended(self, now: float) -> None:
        if self.sending_since is not None and now - self.sending_since >= policy.STALLED_SEND_S:
            self.stall_ended = now
        self.sending_since = None


class AlertSocket:
    """Serves ``/ws/alerts`` for one gateway (live messages through ``fanout`` when it
    serves, see :mod:`marketd.gateway.fanout`)."""

    def __init__(
        self, hub: AlertHub, guard: Guard, shutdown: trio.Event, fanout: Fanout | None = None
    ) -> None:
        self.hub = hub
        self.guard = guard
        self.shutdown = shutdown
        self.fanout = fanout
        self._logs = {reason: RateLimitedLog(interval=LOG_INTERVAL_S) for reason in DROP_REASONS}
        # The connections' nurseries, while serve_going_away watches shutdown for them.
        self._watched: set[trio.Nursery] | None = None

    async def serve_going_away(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """When shutdown is set, end every connection (``going_away``): one task watching
        for all of them, rather than a task each (forever; cancel to stop, and the
        connections open then, and later ones, watch for shutdown themselves)."""
        watched: set[trio.Nursery] = set()
        self._watched = watched
        try:
            task_status.started()
            await self.shutdown.wait()
            for nursery in watched:
                nursery.cancel_scope.cancel()
            await trio.sleep_forever()
        finally:
            self._watched = None
            for nursery in watched:
                nursery.start_soon(_cancel_when, self.shutdown, nursery.cancel_scope)

    @contextlib.contextmanager
    def _going_away(self, nursery: trio.Nursery) -> Iterator[None]:
        """Cancel ``nursery`` (a connection's) when shutdown is set, while in the block."""
        watched = self._watched
        if watched is None:
            nursery.start_soon(_cancel_when, self.shutdown, nursery.cancel_scope)
            yield
            return
        watched.add(nursery)
        if self.shutdown.is_set():  # set before this connection was watched
            nursery.cancel_scope.cancel()
        try:
            yield
        finally:
            watched.discard(nursery)

    async def serve(self) -> Response | None:
        ws = quart.websocket
        refusal = self.guard.check_handshake()
        if refusal is not None:
            return refusal
        if self.shutdown.is_set():
            self.guard.refuse_handshake(SHUTTING_DOWN)
            return json_error(503, "shutting down")
        await ws.accept()
        conn = _Connection(peer_of(ws.scope), trio.current_time())
        with self.hub.subscribe() as client:
            outcome = _Outcome.PEER_GONE
            try:
                # This task pushes; one more reads. A drop, a violation and shutdown cancel
                # both (a task each would hold a few KB per client for nothing).
                async with trio.open_nursery() as nursery:
                    client.cancel_on_drop(nursery.cancel_scope)
                    with self._going_away(nursery):
                        nursery.start_soon(self._read, conn, nursery.cancel_scope)
                        await self._push(client, conn)
                        nursery.cancel_scope.cancel()  # its queue ended: it was dropped
                outcome = _Outcome.ENDED
            except Exception:
                outcome = _Outcome.FAILED
                raise
            finally:
                reason = self._ended(conn, client, outcome)
        if reason is None:  # not reached: the tasks above end only for a reason
            code, text = NORMAL_CLOSURE, ""
        elif reason == GOING_AWAY:
            code, text = GOING_AWAY_CODE, "server shutting down"
        elif conn.violation is not None:
            code, text = conn.violation
        else:
            code, text = POLICY_VIOLATION, f"dropped: {reason}"
        with trio.move_on_after(CLOSE_TIMEOUT_S):
            await ws.close(code, text)
        return None

    def _ended(self, conn: _Connection, client: HubClient, outcome: _Outcome) -> str | None:
        """Why the connection ended (None: the client left); counted and logged here."""
        now = trio.current_time()
        reason: str
        if outcome is _Outcome.FAILED:
            reason = ERROR
        elif client.dropped is not None:
            reason = client.dropped  # counted by the hub when it dropped the client
        elif conn.violation is not None:
            reason = PROTOCOL
        elif self.shutdown.is_set():
            reason = GOING_AWAY
        elif outcome is _Outcome.PEER_GONE and policy.lost_during_stalled_send(
            now, conn.sending_since, conn.stall_ended
        ):
            reason = SEND_TIMEOUT
        else:
            return None
        if reason != client.dropped:
            self.hub.record_dropped(reason)
        limiter = self._logs.get(reason)
        held = limiter.ready() if limiter is not None else 0
        if held is not None:
            level = log.info if reason == GOING_AWAY else log.warning
            level(
                "websocket client dropped", reason=reason, client=conn.peer,
                connected_s=round(now - conn.opened, 1), suppressed=held,
            )  # fmt: skip
        return reason

    async def _push(self, client: HubClient, conn: _Connection) -> None:
        """Send the replay, then the live messages, until the client's queue ends."""
        replay = client.take_replay()
        await self._send(conn, replay_message(map(self.hub.alert_json, replay)))
        self.hub.record_delivered(len(replay))
        del replay  # this frame lives as long as the connection; the replay need not
        if self.fanout is not None:
            outlet = self.fanout.attach(client, quart.websocket)
            if outlet is not None:
                await self._push_handed_over(self.fanout, outlet, conn)
        # No direct path (or no longer: the writer stopped): this task sends everything.
        async for first in client.messages:
            pending: list[Queued] = [first]
            with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
                while len(pending) < MAX_BATCH and not isinstance(pending[-1], Notice):
                    pending.append(client.messages.receive_nowait())
            alerts = [m for m in pending if isinstance(m, str)]
            if alerts:
                await self._send(conn, alerts_message(alerts))
                self.hub.record_delivered(len(alerts))
            if isinstance(pending[-1], Notice):
                await self._send(conn, pending[-1].text)

    async def _push_handed_over(self, fanout: Fanout, outlet: Outlet, conn: _Connection) -> None:
        """While the writer serves the client, write what it hands over (see
        :class:`marketd.gateway.fanout.Outlet`), then the queue until it is empty, and
        give the client back. Returns when the writer stops."""
        try:
            while True:
                attached = await outlet.handed_over()
                if outlet.rest is not None:
                    rest, outlet.rest = outlet.rest, None
                    conn.send_started(trio.current_time())
                    try:
                        await outlet.direct.write_rest(rest)
                    finally:
                        conn.send_ended(trio.current_time())
                for message in outlet.unsent:
                    await self._send(conn, message)
                outlet.unsent = []
                self.hub.record_delivered(outlet.alerts)
                outlet.alerts = 0
                if not attached:
                    return
                while items := outlet.client.take(TAKE_LIMIT):
                    messages, alerts = live_messages(items)
                    for message in messages:
                        await self._send(conn, message)
                    self.hub.record_delivered(alerts)
                fanout.give_back(outlet)
        finally:
            fanout.detach(outlet)
            if outlet.rest is not None:  # cancelled before it was written: the frame is
                await outlet.direct.write_rest(outlet.rest)  # finished first (shielded)

    @staticmethod
    async def _send(conn: _Connection, text: str) -> None:
        conn.send_started(trio.current_time())
        try:
            await quart.websocket.send(text)
        finally:
            conn.send_ended(trio.current_time())

    @staticmethod
    async def _read(conn: _Connection, scope: trio.CancelScope) -> None:
        """Read and ignore the client's text messages (a chatty client cannot stall its
        connection); end it for a binary one or one over ``MAX_CLIENT_MESSAGE``."""
        while True:
            message = await quart.websocket.receive()
            if isinstance(message, bytes):
                conn.violation = (UNSUPPORTED_DATA, "binary messages are not accepted")
            elif len(message) > MAX_CLIENT_MESSAGE:
                conn.violation = (MESSAGE_TOO_BIG, f"messages are limited to {MAX_CLIENT_MESSAGE}")
            else:
                continue
            scope.cancel()
            return


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
