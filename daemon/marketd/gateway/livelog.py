"""The live messages for the ``/ws/alerts`` clients, held once for all of them: a client's
queue is its position in the shared log (:class:`LiveLog`, :class:`ClientQueue`).

Appending each alert to every client's own deque cost the detector 0.4-0.9 µs of CPU a
client (1.3-2 ms a ``publish`` at 1,000 clients, on the 2-core machine of
``bench/bench_fanout.py``), and a deque of about 760 bytes a client; appended once here,
an alert costs the same for any number of clients (about 50 µs a ``publish``), and the
clients at one position share what they read (the fan-out writer frames it once,
:meth:`ClientQueue.take_span`).

A queue holds the entries from its position to the end of the log, at most ``capacity``:
when an append leaves it further behind, it has overflowed, and :meth:`LiveLog.append`
closes it (keeping what fitted) and returns it, for the hub to drop the client. Finding
those is a pass over the queues, made only once the log's end is ``capacity`` past the
oldest position seen at the last such pass (about once per ``capacity`` messages while
every client keeps up); that pass also forgets what every queue has read.

A suppression summary tells each client how many alerts *it* missed, which is fewer for a
client that subscribed while alerts were being held back: it goes in the log once
(:class:`Summary`), and each queue makes its own :class:`Notice` as it reads it.
"""

from __future__ import annotations

import collections
from typing import TypeAlias

import attrs
import orjson
import trio


@attrs.frozen
class Notice:
    """A complete message other than alerts, queued for one client and sent as is."""

    text: str


Queued: TypeAlias = str | Notice
"""What a client's queue yields: an encoded alert (batched on send), or a notice."""


def suppressed_message(count: int, since_ms: int, limit_per_s: int) -> str:
    return orjson.dumps(
        {"type": "suppressed", "count": count, "since_ms": since_ms, "limit_per_s": limit_per_s}
    ).decode()


@attrs.frozen
class Summary:
    """A suppression summary as logged: each queue reads it as a :class:`Notice` of the
    alerts held back since that queue's previous summary (or since it opened), or not at
    all when there are none."""

    total: int  # alerts the hub had held back in all, when the summary was made
    since_ms: int  # wall ms of the first alert held back in this summary's window
    limit_per_s: int

    def notice_for(self, queue: ClientQueue) -> Notice | None:
        count = self.total - queue.reported
        queue.reported = self.total
        if count <= 0:
            return None
        since_ms = max(self.since_ms, queue.since_ms)
        return Notice(suppressed_message(count, since_ms, self.limit_per_s))


Entry: TypeAlias = Queued | Summary
"""What the log holds."""


class LiveLog:
    """The messages offered live to every client, in order, and the clients' queues."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a client's queue holds at least one message (client_queue >= 1)")
        self.capacity = capacity
        self._entries: list[Entry] = []
        self._base = 0  # the position of _entries[0]
        self.head = 0  # the position after the last entry
        self._oldest = 0  # no open queue is behind this position
        self._last_summary = -1  # the position of the newest Summary
        self._queues: set[ClientQueue] = set()
        self._waiting: list[ClientQueue] = []  # readers waiting in ClientQueue.receive

    def __len__(self) -> int:
        """The entries held (what some open queue may still read)."""
        return len(self._entries)

    def open_queue(self, *, reported: int = 0, since_ms: int = 0) -> ClientQueue:
        """A queue of what is appended from now on (``reported``, ``since_ms``: see
        :class:`ClientQueue`); :meth:`ClientQueue.close` it when the client goes."""
        queue = ClientQueue(self, self.head, reported, since_ms)
        self._queues.add(queue)
        return queue

    def append(self, entries: list[Entry]) -> list[ClientQueue]:
        """Add ``entries`` to every open queue; return the queues this left more than
        ``capacity`` behind, closed, each holding what fitted."""
        for offset, entry in enumerate(entries):
            if isinstance(entry, Summary):
                self._last_summary = self.head + offset
        self._entries.extend(entries)
        self.head += len(entries)
        overflowed: list[ClientQueue] = []
        if self.head - self.capacity > self._oldest:
            limit = self.head - self.capacity
            overflowed = [queue for queue in self._queues if queue._position < limit]
            for queue in overflowed:
                queue.close()
            self._forget_read()
        waiting, self._waiting = self._waiting, []
        for queue in waiting:
            if queue._readable is not None:
                queue._readable.set()
        return overflowed

    def entries(self, start: int, stop: int) -> list[Entry]:
        """The entries at positions [start, stop), held while a queue has not read them."""
        return self._entries[start - self._base : stop - self._base]

    def _forget_read(self) -> None:
        oldest = min((queue._position for queue in self._queues), default=self.head)
        del self._entries[: oldest - self._base]
        self._base = self._oldest = oldest

    def _closed(self, queue: ClientQueue) -> None:
        self._queues.discard(queue)


class ClientQueue:
    """One client's bounded queue: its position in a :class:`LiveLog`, with one reader at a
    time — the fan-out writer (:meth:`take`, :meth:`take_span`) or the connection's own
    task (:meth:`receive`, or ``async for``). Once closed (the client went, or overflowed)
    it yields what it held, then ends (:class:`trio.EndOfChannel`), like a trio memory
    channel; the writer takes nothing more from it.

    ``reported`` is the hub's count of alerts held back that this client was already told
    of (or that were held back before it subscribed), and ``since_ms`` the wall ms its next
    summary counts from (see :class:`Summary`).
    """

    __slots__ = ("_held", "_log", "_position", "_readable", "reported", "since_ms")

    def __init__(self, log: LiveLog, position: int, reported: int, since_ms: int) -> None:
        self._log = log
        self._position = position
        self._held: collections.deque[Entry] | None = None  # once closed: what it held
        self._readable: trio.Event | None = None  # its reader waits in receive()
        self.reported = reported
        self.since_ms = since_ms

    def __len__(self) -> int:
        """The entries queued (a summary counts one, even if it says nothing to this client)."""
        if self._held is not None:
            return len(self._held)
        return self._log.head - self._position

    @property
    def closed(self) -> bool:
        return self._held is not None

    def close(self) -> None:
        """No more from the log: keep what is queued (at most ``capacity``) to be read."""
        if self._held is not None:
            return
        log = self._log
        stop = min(log.head, self._position + log.capacity)
        self._held = collections.deque(log.entries(self._position, stop))
        log._closed(self)
        if self._readable is not None:
            self._readable.set()

    def take(self, limit: int) -> list[Queued]:
        """Up to ``limit`` entries, read, without waiting ([] when none is queued, and once
        the queue is closed)."""
        if self._held is not None:
            return []
        log = self._log
        start = self._position
        stop = min(log.head, start + limit)
        self._position = stop
        entries = log.entries(start, stop)
        if start > log._last_summary:
            return entries  # type: ignore[return-value] # no Summary among them
        return [item for entry in entries if (item := self._read(entry)) is not None]

    def take_span(self, limit: int) -> tuple[int, int] | None:
        """For the writer: take up to ``limit`` entries when they read the same for every
        queue (no summary among them), and return where they are in the log (``start,
        stop``: equal when none is queued, or the queue is closed), for the caller to
        read with :meth:`LiveLog.entries` and share with the other queues at ``start``;
        None, taking nothing, when they hold a summary (:meth:`take` them)."""
        start = self._position
        if self._held is not None:
            return start, start
        log = self._log
        if start <= log._last_summary:
            return None
        self._position = stop = min(log.head, start + limit)
        return start, stop

    def receive_nowait(self) -> Queued:
        while True:
            held = self._held
            if held is not None:
                if not held:
                    raise trio.EndOfChannel
                entry = held.popleft()
            else:
                log = self._log
                if self._position == log.head:
                    raise trio.WouldBlock
                entry = log._entries[self._position - log._base]
                self._position += 1
            item = self._read(entry)
            if item is not None:
                return item

    async def receive(self) -> Queued:
        await trio.lowlevel.checkpoint()
        while True:
            try:
                return self.receive_nowait()
            except trio.WouldBlock:
                self._readable = readable = trio.Event()
                self._log._waiting.append(self)
                await readable.wait()
                self._readable = None

    def _read(self, entry: Entry) -> Queued | None:
        if isinstance(entry, Summary):
            return entry.notice_for(self)
        return entry

    def __aiter__(self) -> ClientQueue:
        return self

    async def __anext__(self) -> Queued:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
