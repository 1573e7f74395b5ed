"""The alert hub: recent-alert history and the fan-out to WebSocket clients.

``AlertHub.publish`` is called by the detector and never blocks: each alert is encoded
to JSON once, kept in a bounded history, and offered to every client's bounded queue
with ``send_nowait``. A client whose queue is full is dropped (reason ``slow``) on the
spot, counted, and told to go; it never slows the detector or the other clients.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator, Mapping
from typing import Final

import attrs
import orjson
import trio

from marketd.alerts.model import Alert

SLOW: Final = "slow"
"""Drop reason: the client's queue overflowed (it reads slower than alerts arrive)."""


MAX_BATCH: Final = 200
"""Most alerts a client receives in one ``{"type": "alerts"}`` message."""


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


def replay_message(alerts: list[Alert]) -> str:
    """The first message on every connection: recent alerts, oldest first."""
    return orjson.dumps({"type": "replay", "alerts": [a.to_json() for a in alerts]}).decode()


@attrs.frozen
class HubStatistics:
    clients: int
    # Alerts accepted into the history (duplicates by id excluded).
    published: int
    # Alerts ignored because an alert with the same id is already in the history.
    duplicates: int
    # Messages written to client sockets.
    delivered: int
    # Clients disconnected by the hub, by reason.
    dropped: Mapping[str, int]
    # WebSocket handshakes refused, by reason (e.g. "origin").
    rejected: Mapping[str, int]
    history: int


class HubClient:
    """One client's view of the hub: the replay taken at subscribe time, then live messages.

    ``messages`` yields each alert's JSON text in publish order (see
    :func:`alerts_message`). When the hub drops the client,
    ``dropped`` holds the reason and ``kicked`` is set; the handler closes the socket.
    """

    def __init__(self, replay: list[Alert], capacity: int) -> None:
        self.replay = replay
        self._send, self.messages = trio.open_memory_channel[str](capacity)
        self.kicked = trio.Event()
        self.dropped: str | None = None

    def _offer(self, messages: list[str]) -> bool:
        """Queue ``messages``; False (and nothing more queued) when the queue is full."""
        try:
            for message in messages:
                self._send.send_nowait(message)
        except trio.WouldBlock:
            return False
        return True

    def _kick(self, reason: str) -> None:
        self.dropped = reason
        self._send.close()
        self.kicked.set()


class AlertHub:
    """Implements :class:`marketd.alerts.model.AlertListener` for the browser gateway."""

    def __init__(self, *, history: int = 1000, replay: int = 50, client_queue: int = 256) -> None:
        if history < 1 or replay < 0 or client_queue < 1:
            raise ValueError("history >= 1, replay >= 0 and client_queue >= 1 are required")
        self.replay_size = min(replay, history)
        self.client_queue = client_queue
        self._history: collections.deque[Alert] = collections.deque(maxlen=history)
        self._ids: set[str] = set()
        self._clients: set[HubClient] = set()
        self._published = 0
        self._duplicates = 0
        self._delivered = 0
        self._dropped: collections.Counter[str] = collections.Counter()
        self._rejected: collections.Counter[str] = collections.Counter()

    @property
    def history_size(self) -> int:
        return self._history.maxlen or 0

    def publish(self, alerts: list[Alert]) -> None:
        messages: list[str] = []
        for alert in alerts:
            if alert.id in self._ids:
                self._duplicates += 1
                continue
            if len(self._history) == self._history.maxlen:
                self._ids.discard(self._history[0].id)
            self._history.append(alert)
            self._ids.add(alert.id)
            messages.append(encode_alert(alert))
        if not messages:
            return
        self._published += len(messages)
        for client in [c for c in self._clients if not c._offer(messages)]:
            self._drop(client, SLOW)

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
        in one step, so a client sees every alert exactly once.
        """
        replay = self.recent(self.replay_size)
        replay.reverse()
        client = HubClient(replay, self.client_queue)
        self._clients.add(client)
        try:
            yield client
        finally:
            self._clients.discard(client)
            client._send.close()

    def record_delivered(self, n: int = 1) -> None:
        self._delivered += n

    def record_rejected(self, reason: str) -> None:
        self._rejected[reason] += 1

    def _drop(self, client: HubClient, reason: str) -> None:
        self._clients.discard(client)
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
        )
