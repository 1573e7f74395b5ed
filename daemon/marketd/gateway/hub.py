"""The alert hub: recent-alert history and the fan-out to WebSocket clients.

``AlertHub.publish`` is called by the detector and never blocks: each alert is kept in a
bounded history (every alert: the replay and ``/api/alerts`` see them all), then offered
live to every client's bounded queue, encoded to JSON once and appended once to the log
all the queues read (:mod:`marketd.gateway.livelog`); the gateway's writer
(:mod:`marketd.gateway.fanout`), woken by :meth:`AlertHub.wait_queued`, takes it from
there. A client whose queue is full is dropped (reason ``slow``) on the spot, counted, and
told to go; it never slows the detector or the other clients.

At most ``max_alerts_per_s`` alerts are offered live in any second (:class:`LiveCap`; 0:
no cap). The excess is counted (``suppressed``) and, once a second while it lasts, each
client is told how many it missed: ``{"type": "suppressed", "count": N, "since_ms": T,
"limit_per_s": L}`` (T: wall-clock ms of the first alert held back that N counts). The
summaries are sent by :meth:`AlertHub.serve_summaries`, and by ``publish`` when one is
due. Each alert offered live is observed in the push-latency histogram: its tick's
exchange event time (``price_time_ms``) to the moment it is offered.

An alert of a muted symbol (:meth:`AlertHub.mute_with`: the gateway's
:class:`marketd.gateway.mutes.MuteStore`, asked when the alert arrives) is kept in the
history but not offered live, nor counted by the cap; it is counted (``muted``), and its
JSON in the replay and ``/api/alerts`` carries ``"muted": true`` (:meth:`AlertHub.alert_json`).

What happened after an alert (:meth:`AlertHub.publish_outcomes`, the price 1, 5 and 15
minutes later) is kept beside the alert while it is in the history (its JSON's
``outcomes``: ``{"60": {...}, ...}``) and pushed to every client as ``{"type": "outcome",
"outcome": {...}}`` (not capped: at most three per alert; an outcome of an alert no longer
held is ignored).
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, Protocol

import attrs
import orjson
import trio

from marketd.alerts.model import Alert, Outcome
from marketd.gateway.livelog import (
    ClientQueue,
    Entry,
    LiveLog,
    Notice,
    Queued,
    Summary,
)
from marketd.gateway.policy import LiveCap
from marketd.gateway.timing import Histogram, HistogramSnapshot

# Why the gateway disconnected a client (marketd_gateway_clients_dropped_total{reason}).
SLOW: Final = "slow"
"""The client's queue overflowed (it reads slower than alerts arrive)."""
SEND_TIMEOUT: Final = "send_timeout"
"""A send to the client stalled (it stopped reading) until the connection was cut."""
GOING_AWAY: Final = "going_away"
"""The server is shutting down (closed with 1001)."""
PROTOCOL: Final = "protocol"
"""The client sent what /ws/alerts does not take (binary, or a text message too big)."""
ERROR: Final = "error"
"""The handler failed (a bug; Quart logs it, Hypercorn closes with 1011)."""
DROP_REASONS: Final = (SLOW, SEND_TIMEOUT, GOING_AWAY, PROTOCOL, ERROR)

# Why a WebSocket handshake was refused (marketd_gateway_clients_rejected_total{reason}).
ORIGIN: Final = "origin"
"""Not the page's own Origin, nor one in ``gateway.allowed_origins``."""
HOST: Final = "host"
"""A Host header not in the allow-list (see :class:`marketd.gateway.policy.HostAllowList`)."""
SHUTTING_DOWN: Final = "shutting_down"
"""The server is shutting down (503)."""
REJECT_REASONS: Final = (ORIGIN, HOST, SHUTTING_DOWN)

MAX_BATCH: Final = 200
"""Most alerts a client receives in one ``{"type": "alerts"}`` message."""

SUMMARY_INTERVAL_S: Final = 1.0
"""While alerts are held back, a summary goes out this often."""

LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Bounds of ``marketd_alert_push_latency_seconds``: 1 ms to 10 s."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def encode_alert(alert: Alert) -> str:
    """One alert as JSON text, encoded once per publish and shared by every client."""
    return orjson.dumps(alert.to_json()).decode()


def alerts_message(encoded: list[str]) -> str:
    """The WebSocket message for live alerts already queued for a client: one alert is
    ``{"type": "alert", "alert": {...}}``; several (a burst, a market-wide move) go in
    one frame, ``{"type": "alerts", "alerts": [...]}``, oldest first."""
    if len(encoded) == 1:
        return '{"type":"alert","alert":' + encoded[0] + "}"
    return '{"type":"alerts","alerts":[' + ",".join(encoded) + "]}"


def replay_message(alerts: Iterable[dict[str, Any]]) -> str:
    """The first message on every connection: recent alerts (their JSON, see
    :meth:`AlertHub.alert_json`), oldest first."""
    return orjson.dumps({"type": "replay", "alerts": list(alerts)}).decode()


class SymbolMutes(Protocol):
    """Which symbols' alerts are not pushed live (:class:`marketd.gateway.mutes.MuteStore`)."""

    def muted(self, symbol: str, now_ms: int) -> bool: ...


def live_messages(items: Iterable[Queued]) -> tuple[list[str], int]:
    """The WebSocket messages for ``items`` taken from a client's queue, in order: each run
    of alerts in messages of at most ``MAX_BATCH`` (:func:`alerts_message`), each notice as
    it is; and how many alerts they carry."""
    messages: list[str] = []
    run: list[str] = []
    alerts = 0
    for item in items:
        if isinstance(item, Notice):
            if run:
                messages.append(alerts_message(run))
                run = []
            messages.append(item.text)
            continue
        run.append(item)
        alerts += 1
        if len(run) == MAX_BATCH:
            messages.append(alerts_message(run))
            run = []
    if run:
        messages.append(alerts_message(run))
    return messages, alerts


@attrs.frozen
class HubStatistics:
    clients: int
    # Alerts accepted into the history (duplicates by id excluded).
    published: int
    # Alerts ignored because an alert with the same id is already in the history.
    duplicates: int
    # Messages written to client sockets.
    delivered: int
    # Clients disconnected by the gateway, by reason (only reasons seen; DROP_REASONS).
    dropped: Mapping[str, int]
    # WebSocket handshakes refused, by reason (only reasons seen; REJECT_REASONS).
    rejected: Mapping[str, int]
    history: int
    # Alerts kept out of the live push by the cap (still in the history).
    suppressed: int
    # Exchange event time → offered to the clients, of each alert offered live.
    push_latency: HistogramSnapshot
    # Alerts kept out of the live push because their symbol was muted (in the history).
    muted: int = 0


class HubClient:
    """One client's view of the hub: the replay taken at subscribe time, then live messages.

    ``messages`` yields each alert's JSON text in publish order (see
    :func:`alerts_message`) and :class:`Notice` s (the suppression summaries). When the hub
    drops the client, ``dropped`` holds the reason, its queue is closed and the scope
    given to :meth:`cancel_on_drop` is cancelled; the handler closes the socket.
    """

    __slots__ = ("_scope", "dropped", "messages", "replay")

    def __init__(self, replay: list[Alert], messages: ClientQueue) -> None:
        self.replay = replay
        self.messages = messages
        self.dropped: str | None = None
        self._scope: trio.CancelScope | None = None

    def take(self, limit: int) -> list[Queued]:
        """Up to ``limit`` queued messages, oldest first, without waiting ([] when none is
        queued, and once the hub dropped the client)."""
        return self.messages.take(limit)

    def take_replay(self) -> list[Alert]:
        """The replay, forgotten here (it is sent once)."""
        replay, self.replay = self.replay, []
        return replay

    def cancel_on_drop(self, scope: trio.CancelScope) -> None:
        """Cancel ``scope`` when the hub drops the client (at once if it has already)."""
        self._scope = scope
        if self.dropped is not None:
            scope.cancel()

    def _kick(self, reason: str) -> None:
        self.dropped = reason
        self.messages.close()
        if self._scope is not None:
            self._scope.cancel()


class AlertHub:
    """Implements :class:`marketd.alerts.model.AlertListener` for the browser gateway.

    ``clock`` (trio's by default) times the cap and the summaries; ``wall_ns`` (epoch ns)
    the push latency and the summaries' ``since_ms``.
    """

    def __init__(
        self,
        *,
        history: int = 1000,
        replay: int = 50,
        client_queue: int = 256,
        max_alerts_per_s: int = 0,
        clock: Callable[[], float] = trio.current_time,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if history < 1 or replay < 0 or client_queue < 1:
            raise ValueError("history >= 1, replay >= 0 and client_queue >= 1 are required")
        self.replay_size = min(replay, history)
        self.client_queue = client_queue
        self._clock, self._wall_ns = clock, wall_ns
        self._live = LiveCap(max_alerts_per_s)
        self._history: collections.deque[Alert] = collections.deque(maxlen=history)
        self._ids: set[str] = set()
        self._log = LiveLog(client_queue)  # what is queued for the clients
        self._clients: dict[ClientQueue, HubClient] = {}
        self._published = 0
        self._duplicates = 0
        self._delivered = 0
        self._dropped: collections.Counter[str] = collections.Counter()
        self._rejected: collections.Counter[str] = collections.Counter()
        self._latency = Histogram(LATENCY_BUCKETS)
        # Alerts held back so far; the open summary window (due time, trio clock; since
        # when, wall ms) and the event that wakes serve_summaries when one opens.
        self._suppressed = 0
        self._summary_due: float | None = None
        self._summary_since_ms = 0
        self._window_opened = trio.Event()
        # Symbols muted by the user; ids in the history of alerts that arrived muted.
        self._mutes: SymbolMutes | None = None
        self._muted_ids: set[str] = set()
        self._muted = 0
        # Outcomes of alerts in the history: id -> {after_s: outcome JSON}.
        self._outcomes: dict[str, dict[str, dict[str, Any]]] = {}
        # Set when messages were queued for clients: wakes the fan-out writer.
        self._queued = trio.Event()

    @property
    def log(self) -> LiveLog:
        """What is queued for the clients: the log all their queues read."""
        return self._log

    @property
    def history_size(self) -> int:
        return self._history.maxlen or 0

    @property
    def max_alerts_per_s(self) -> int:
        return self._live.per_s

    def limit_live(self, max_alerts_per_s: int) -> None:
        """Set the cap on alerts offered live per second (``gateway.max_alerts_per_s``;
        0: none). The gateway applies its settings to the hub it serves with this."""
        if max_alerts_per_s != self._live.per_s:
            self._live = LiveCap(max_alerts_per_s)

    def mute_with(self, mutes: SymbolMutes | None) -> None:
        """Keep alerts of the symbols ``mutes`` says are muted out of the live push (the
        gateway's mute store; None: no mutes)."""
        self._mutes = mutes

    def _remember(self, alerts: list[Alert]) -> tuple[list[Alert], int]:
        """Add ``alerts`` to the history; return those it did not hold (by id) whose
        symbol is not muted, and how many it did not hold were muted."""
        now_ms = self._wall_ns() // 1_000_000
        unmuted: list[Alert] = []
        muted = 0
        for alert in alerts:
            if alert.id in self._ids:
                self._duplicates += 1
                continue
            if len(self._history) == self._history.maxlen:
                oldest = self._history[0].id
                self._ids.discard(oldest)
                self._muted_ids.discard(oldest)
                self._outcomes.pop(oldest, None)
            self._history.append(alert)
            self._ids.add(alert.id)
            self._published += 1
            if self._mutes is not None and self._mutes.muted(alert.symbol, now_ms):
                self._muted_ids.add(alert.id)
                muted += 1
            else:
                unmuted.append(alert)
        return unmuted, muted

    def preload(self, alerts: list[Alert]) -> None:
        """Alerts from before this process (the alerts topic read back at start-up): into
        the history, for the replay and the API only; not pushed live, so neither capped,
        timed nor counted as muted (those of a muted symbol are marked so)."""
        self._remember(alerts)

    def publish(self, alerts: list[Alert]) -> None:
        fresh, muted = self._remember(alerts)
        self._muted += muted
        if not fresh:
            return
        live = fresh
        if self._live.per_s:
            now = self._clock()
            self.flush_summaries(now)
            live = [alert for alert in fresh if self._live.admit(now)]
            if len(live) < len(fresh):
                self._hold(len(fresh) - len(live), now)
            if not live:
                return
        offered_ns = self._wall_ns()
        for alert in live:
            self._latency.observe(max(0, offered_ns - alert.price_time_ms * 1_000_000) / 1e9)
        messages: list[Entry] = [encode_alert(alert) for alert in live]
        self._broadcast(messages)

    def publish_outcomes(self, outcomes: list[Outcome]) -> None:
        """Remember what happened after alerts in the history and push it to every
        client (an outcome of an alert not held, or already known, is ignored)."""
        messages: list[Entry] = []
        for outcome in outcomes:
            if outcome.alert_id not in self._ids:
                continue
            known = self._outcomes.setdefault(outcome.alert_id, {})
            key = str(outcome.after_s)
            if key in known:
                continue
            body = known[key] = outcome.to_json()
            messages.append(Notice(orjson.dumps({"type": "outcome", "outcome": body}).decode()))
        if messages:
            self._broadcast(messages)

    def _broadcast(self, entries: list[Entry]) -> None:
        """Queue the same ``entries`` for every client (once, in the log they all read);
        drop the clients whose queue this overflowed."""
        for queue in self._log.append(entries):
            self._drop(self._clients[queue], SLOW)
        self._queued.set()

    def mark_queued(self) -> None:
        """Wake :meth:`wait_queued` (as when messages are queued for clients)."""
        self._queued.set()

    async def wait_queued(self) -> None:
        """Wait until messages were queued for clients since the last call returned (for
        the writer of :mod:`marketd.gateway.fanout`)."""
        await self._queued.wait()
        self._queued = trio.Event()

    def _hold(self, n: int, now: float) -> None:
        self._suppressed += n
        if self._summary_due is None:
            self._summary_due = now + SUMMARY_INTERVAL_S
            self._summary_since_ms = self._wall_ns() // 1_000_000
            self._window_opened.set()

    def flush_summaries(self, now: float) -> None:
        """When the open summary window is due, tell each client how many alerts it
        missed since its last summary (or since it subscribed); then close the window."""
        if self._summary_due is None or now < self._summary_due:
            return
        summary = Summary(self._suppressed, self._summary_since_ms, self._live.per_s)
        self._summary_due = None
        self._window_opened = trio.Event()
        self._broadcast([summary])

    async def serve_summaries(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Send each suppression summary when it is due (forever; cancel to stop)."""
        task_status.started()
        while True:
            await self._window_opened.wait()
            if self._summary_due is not None:
                await trio.sleep_until(self._summary_due)
            self.flush_summaries(self._clock())

    def alert_json(self, alert: Alert) -> dict[str, Any]:
        """An alert of the history as the replay and ``/api/alerts`` give it: its JSON,
        with ``"muted": true`` when its symbol was muted as it arrived."""
        body = alert.to_json()
        if alert.id in self._muted_ids:
            body["muted"] = True
        if outcomes := self._outcomes.get(alert.id):
            body["outcomes"] = outcomes
        return body

    def recent(self, limit: int) -> list[Alert]:
        """Up to ``limit`` most recent alerts, newest first."""
        if limit <= 0:
            return []
        n = min(limit, len(self._history))
        return [self._history[-i] for i in range(1, n + 1)]

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[HubClient]:
        """Register a client for the duration of the ``with`` block.

        The replay (the last ``replay`` alerts, oldest first) and the registration happen
        in one step, so a client sees every alert exactly once (live, in its replay, or
        counted in a summary).
        """
        replay = self.recent(self.replay_size)
        replay.reverse()
        queue = self._log.open_queue(
            reported=self._suppressed, since_ms=self._wall_ns() // 1_000_000
        )
        client = self._clients[queue] = HubClient(replay, queue)
        del replay  # the client holds it until it is sent (HubClient.take_replay), not this frame
        try:
            yield client
        finally:
            self._clients.pop(queue, None)
            queue.close()

    def record_delivered(self, n: int = 1) -> None:
        self._delivered += n

    def record_rejected(self, reason: str) -> None:
        self._rejected[reason] += 1

    def record_dropped(self, reason: str) -> None:
        """Count a client the gateway disconnected for ``reason`` (one of DROP_REASONS)."""
        self._dropped[reason] += 1

    def _drop(self, client: HubClient, reason: str) -> None:
        self._clients.pop(client.messages, None)
        self._dropped[reason] += 1
        client._kick(reason)

    def statistics(self) -> HubStatistics:
        return HubStatistics(
            clients=len(self._clients),
            published=self._published,
            duplicates=self._duplicates,
            delivered=self._delivered,
            dropped=dict(self._dropped),
            rejected=dict(self._rejected),
            history=len(self._history),
            suppressed=self._suppressed,
            push_latency=self._latency.snapshot(),
            muted=self._muted,
        )
