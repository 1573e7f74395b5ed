"""A recording served as an exchange (trio): WebSocket and REST servers and the clock.

``open_replay(config)`` starts the servers on loopback (port 0: a free one) and yields a
:class:`Replay` with the base URLs, laid out as the fake exchange's (``/spot``, ``/usdm``;
WebSocket ``/spot/stream?streams=``, ``/usdm/public/ws``, ``SUBSCRIBE`` ...; REST
``/spot/api/v3/...``, ``/usdm/fapi/v1/...``; ``/_replay/state``). Client connections are
the fake exchange's (:class:`~marketd.fakex.wsconn.Connection`: pings, limits, control
messages), fed by a replay hub instead of a market model.

The clock starts when every WebSocket stream the recording holds has a subscriber, or
``wait_s`` after the first connection (0: at once). Then every entry is played in recorded
order: a frame goes to the subscribers of its stream exactly as it was received (raw
``/ws`` connections get its ``data``); at ``speed`` N the gaps between receive times are
divided by N, at ``speed`` None (max) nothing waits but the clients (each batch waits until
every connection's queue is short again). The recording is read ahead of the clock
(``LOOKAHEAD_S``, in a worker thread) so that REST answers marketd received later than the
frames that led to them — a book snapshot, a page of trades filling a gap — are there when
a client asks the same question at the same point.

Recorded control frames (acks, ``serverShutdown``) and marketd's connection markers are
counted, not re-sent: the data frames of a recording are those marketd kept across its own
reconnects and handovers, so a client sees them as one continuous stream, with holes where
marketd saw none — which is what makes a second ``marketd run`` on the replay publish the
same records (its backfill asks the replay for the same pages, answered from the recording).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import Any

import attrs
import orjson
import structlog
import trio
from trio_websocket import WebSocketRequest, wrap_server_stream

from marketd.data.records import Market
from marketd.fakex.config import SPOT_LIMITS, USDM_LIMITS, MarketLimits
from marketd.fakex.fanout import Group, Subscriber, join, leave
from marketd.fakex.frames import combined_prefix
from marketd.fakex.http11 import HttpRequest, HttpResponse, serve_http11
from marketd.fakex.protocol import BadPath, StreamRef, UnknownStream, parse_stream, parse_ws_path
from marketd.fakex.wsconn import Connection, CorkedStream, MarketCounters
from marketd.feed import ws_compat
from marketd.recorder.format import Entry
from marketd.recorder.reader import Reading, Summary, directory_summary, read
from marketd.replay.rest import ReplayRest
from marketd.replay.state import MarketState
from marketd.replay.timeline import data_of, market_of

ws_compat.install()
log = structlog.get_logger(__name__)

LOOKAHEAD_S = 10.0  # recorded seconds read ahead of the clock
MAX_AHEAD = 200_000  # entries read ahead at most (memory), whatever the time they span
READ_CHUNK = 5_000  # entries read per worker-thread call
MAX_BATCH = 500  # entries played between checkpoints at max speed
CONNECT_TIMEOUT = 10.0
END_GRACE_S = 2.0  # --exit-at-end: after the last frame is sent
SURVEY_ENTRIES = 200_000  # entries read before playing, to tell each stream's market


@attrs.frozen
class ReplayConfig:
    directory: Path
    start_ns: int | None = None
    end_ns: int | None = None
    speed: float | None = 1.0  # None: max
    streams: frozenset[str] | None = None  # WebSocket streams to play (None: all)
    host: str = "127.0.0.1"
    ws_port: int = 0
    rest_port: int = 0
    wait_s: float = 10.0  # after the first connection, start even if streams are missing
    max_queue: int = 200_000  # frames queued per client before it is cut as too slow


class ReplayHub:
    """One market's subscriptions: stream name → group (the fake's fan-out groups)."""

    def __init__(self, market: Market, symbols: Collection[str]) -> None:
        self.market = market
        self.symbol_index: dict[str, int] = {s: i for i, s in enumerate(sorted(symbols))}
        self.groups: dict[str, Group] = {}
        self.changed = trio.Event()  # set on every subscription change

    def add(self, sub: Subscriber, ref: StreamRef, *, combined: bool) -> None:
        group = self.groups.setdefault(ref.name, {})
        join(group, sub, combined_prefix(ref.name) if combined else None)
        self.changed.set()
        self.changed = trio.Event()

    def remove(self, sub: Subscriber, ref: StreamRef, *, combined: bool) -> None:
        group = self.groups.get(ref.name)
        if group is None:
            return
        leave(group, sub, combined_prefix(ref.name) if combined else None)
        if not group:
            del self.groups[ref.name]


@attrs.frozen
class Survey:
    """What a recording holds, before playing it: its summary, and the markets of each
    WebSocket stream."""

    summary: Summary
    markets: dict[str, frozenset[Market]]

    @classmethod
    def of(cls, config: ReplayConfig, scan: int = SURVEY_ENTRIES) -> Survey:
        """Blocking: run it in a worker thread. The index counts ``ws:<stream>`` without
        its market, so the first ``scan`` entries of the range say which market carried
        each stream; a stream not met by then is offered on every market that has it."""
        summary = directory_summary(config.directory)
        streams = {k.partition(":")[2] for k in summary["streams"] if k.startswith("ws:")}
        streams.discard("")
        seen: dict[str, set[Market]] = {}
        for entry in itertools.islice(
            read(config.directory, start_ns=config.start_ns, end_ns=config.end_ns), scan
        ):
            market = market_of(entry)
            if entry.kind == "ws" and entry.stream and market is not None:
                seen.setdefault(entry.stream, set()).add(market)
                if len(seen) == len(streams):
                    break
        markets = {}
        for stream in streams:
            found = seen.get(stream) or {m for m in Market if _served(m, stream)}
            markets[stream] = frozenset(found)
        return cls(summary, markets)


def _served(market: Market, stream: str) -> bool:
    try:
        parse_stream(market, stream, {stream.partition("@")[0]: 0})
    except UnknownStream:
        return False
    return True


class Replay:
    """A running replay. Build it with :func:`open_replay`."""

    def __init__(self, config: ReplayConfig, survey: Survey) -> None:
        self.config = config
        self.summary = survey.summary
        recorded: dict[Market, set[str]] = {m: set() for m in Market}
        symbols: dict[Market, set[str]] = {m: set() for m in Market}
        for stream, markets in survey.markets.items():
            if config.streams is not None and stream not in config.streams:
                continue
            symbol = stream.partition("@")[0]
            for market in markets:
                recorded[market].add(stream)
                if not stream.startswith("!"):
                    symbols[market].add(symbol)
        self.recorded = recorded
        self.hubs = {m: ReplayHub(m, symbols[m]) for m in Market}
        self.states = {m: MarketState(m) for m in Market}
        for market, names in symbols.items():
            for name in names:
                self.states[market].symbol(name)
        self.rest = {m: ReplayRest(self.states[m]) for m in Market}
        self.counters = {m: MarketCounters() for m in Market}
        self.limits: dict[Market, MarketLimits] = {Market.SPOT: SPOT_LIMITS,
                                                   Market.USDM: USDM_LIMITS}  # fmt: skip
        self.connections: set[Connection] = set()
        self.ws_port = self.rest_port = 0
        self.clock_ns: int | None = None  # the receive time played up to
        self.first_ns: int | None = None  # of the first entry played
        self.started = trio.Event()
        self.finished = trio.Event()
        self.entries_played = 0
        self.frames_sent = 0
        self.control_frames = 0  # recorded, not re-sent (see the module documentation)
        self.reading: Reading | None = None
        self._first_connection = trio.Event()
        self._origin = 0.0  # trio time at which first_ns is played
        self._nursery: trio.Nursery | None = None

    # -- URLs -----------------------------------------------------------------------------

    def urls(self) -> dict[str, str]:
        host = self.config.host
        ws, rest = f"ws://{host}:{self.ws_port}", f"http://{host}:{self.rest_port}"
        return {
            "spot_ws_url": f"{ws}/spot",
            "spot_rest_url": f"{rest}/spot",
            "futures_ws_url": f"{ws}/usdm",
            "futures_rest_url": f"{rest}/usdm",
            "control_url": f"{rest}/_replay",
        }

    def clock(self) -> int:
        """The replay's time (ns): the receive time played up to (before the start: the
        recording's first; at speed N, it moves between entries too)."""
        if self.clock_ns is None:
            first = self.summary["first_ns"]
            return self.config.start_ns or first or 0
        speed = self.config.speed
        if speed is None or self.first_ns is None or self.finished.is_set():
            return self.clock_ns
        moving = self.first_ns + int((trio.current_time() - self._origin) * speed * 1e9)
        return max(self.clock_ns, moving)

    def state(self) -> dict[str, Any]:
        reading = self.reading.statistics() if self.reading is not None else None
        return {
            "started": self.started.is_set(),
            "finished": self.finished.is_set(),
            "clock_ms": self.clock() // 1_000_000,
            "speed": self.config.speed or "max",
            "entries_played": self.entries_played,
            "frames_sent": self.frames_sent,
            "control_frames": self.control_frames,
            "connections_open": len(self.connections),
            "recording": {k: v for k, v in self.summary.items() if k != "streams"},
            "read": attrs.asdict(reading) if reading is not None else None,
            "bad_frames": sum(s.bad_frames for s in self.states.values()),
        }

    async def drained(self, grace_s: float = END_GRACE_S) -> None:
        """Wait until every client's queue is sent, then ``grace_s`` more (their last
        REST questions)."""
        for conn in list(self.connections):
            while conn.queue and not conn.ended:
                await conn.wait_drained()
                await trio.sleep(0.05)
        await trio.sleep(grace_s)

    # -- serving --------------------------------------------------------------------------

    async def serve_ws(
        self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(self.config.ws_port, host=self.config.host)
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._on_ws_tcp, listeners)
            task_status.started(port)
            await trio.sleep_forever()

    async def _on_ws_tcp(self, tcp: trio.SocketStream) -> None:
        stream = CorkedStream(tcp)
        try:
            async with trio.open_nursery() as nursery:
                request: WebSocketRequest | None = None
                with trio.move_on_after(CONNECT_TIMEOUT):
                    request = await wrap_server_stream(nursery, stream)
                if request is not None:
                    await self._on_ws_request(request, stream)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _on_ws_request(self, request: WebSocketRequest, stream: CorkedStream) -> None:
        try:
            path = parse_ws_path(request.path)
        except BadPath as exc:
            await request.reject(404, body=orjson.dumps({"code": -1, "msg": f"no such path {exc}"}))
            return
        hub = self.hubs[path.market]
        limits = self.limits[path.market]
        refs = []
        for name in path.streams:
            with contextlib.suppress(UnknownStream):  # as the fake: ignored, then SUBSCRIBE
                refs.append(parse_stream(path.market, name, hub.symbol_index))
        if len(refs) > limits.max_streams:
            await request.reject(400, body=b'{"code":-1,"msg":"too many streams"}')
            return
        ws = await request.accept()
        counters = self.counters[path.market]
        conn = Connection(
            ws, stream, hub, limits, counters, route=path.route, combined=path.combined,
            max_queue=self.config.max_queue, serial=counters.connections_total + 1,
        )  # fmt: skip
        self.connections.add(conn)
        counters.connections_open += 1
        counters.connections_total += 1
        self._first_connection.set()
        try:
            await conn.run(refs)
        finally:
            self.connections.discard(conn)
            counters.connections_open -= 1

    async def _on_http(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/_replay/state":
            return HttpResponse(200, orjson.dumps(self.state()))
        for market in Market:
            prefix = f"/{market.value}/"
            if request.path.startswith(prefix):
                if request.method != "GET":
                    return HttpResponse(405, b'{"code":-1,"msg":"Method not allowed"}')
                reply = self.rest[market].handle(
                    request.path[len(prefix) - 1 :], request.query, self.clock()
                )
                return HttpResponse(reply.status, reply.body)
        return HttpResponse(404, b'{"code":-1,"msg":"Not found"}')

    # -- the clock --------------------------------------------------------------------------

    def _all_subscribed(self) -> bool:
        return all(
            name in self.hubs[m].groups for m, names in self.recorded.items() for name in names
        )

    async def _wait_for_clients(self) -> None:
        if self.config.wait_s <= 0:
            return
        await self._first_connection.wait()
        with trio.move_on_after(self.config.wait_s):
            while not self._all_subscribed():
                events = [h.changed for h in self.hubs.values()]
                async with trio.open_nursery() as nursery:
                    for event in events:
                        nursery.start_soon(_set_then_cancel, event, nursery.cancel_scope)
        missing = sum(
            1 for m, names in self.recorded.items() for n in names if n not in self.hubs[m].groups
        )
        if missing:
            log.info("replay starts with recorded streams nobody subscribed to", missing=missing)

    async def play(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Play the recording once, then set ``finished`` (started: read ahead, ready)."""
        c = self.config
        self.reading = reading = read(c.directory, start_ns=c.start_ns, end_ns=c.end_ns)
        ahead: deque[Entry] = deque()
        exhausted = False

        async def fill(until_ns: int) -> None:
            nonlocal exhausted
            while (
                not exhausted
                and len(ahead) < MAX_AHEAD
                and (not ahead or ahead[-1].received_ns < until_ns)
            ):
                chunk = await trio.to_thread.run_sync(
                    lambda: list(itertools.islice(reading, READ_CHUNK))
                )
                exhausted = len(chunk) < READ_CHUNK
                for entry in chunk:
                    if entry.kind == "rest":
                        market = market_of(entry)
                        if market is not None:
                            self.states[market].read_ahead(
                                entry.stream, entry.payload, entry.received_ns
                            )
                ahead.extend(chunk)

        lookahead_ns = int(LOOKAHEAD_S * 1e9)
        # Read ahead before the start: a client asking for a book before the first frame
        # gets the snapshot marketd received then.
        await fill(0)
        if ahead:
            await fill(ahead[0].received_ns + lookahead_ns)
        task_status.started()
        await self._wait_for_clients()
        self.started.set()
        log.info("replay started", speed=c.speed or "max", **self.urls())
        played = 0
        while ahead:
            entry = ahead[0]
            if self.first_ns is None:
                self.first_ns = entry.received_ns
                self._origin = trio.current_time()
            if c.speed is not None:
                due = self._origin + (entry.received_ns - self.first_ns) / 1e9 / c.speed
                if due > trio.current_time():
                    await trio.sleep_until(due)
            ahead.popleft()
            self._play(entry)
            played += 1
            if not exhausted and (
                not ahead or ahead[-1].received_ns < entry.received_ns + lookahead_ns
            ):
                await fill(entry.received_ns + lookahead_ns)
                for state in self.states.values():
                    state.forget_before(entry.received_ns - lookahead_ns)
            if c.speed is None and played % MAX_BATCH == 0:
                await trio.lowlevel.checkpoint()
                for conn in list(self.connections):
                    await conn.wait_drained()
        self.finished.set()
        log.info(
            "replay finished", played=self.entries_played, frames_sent=self.frames_sent,
            **attrs.asdict(reading.statistics()),
        )  # fmt: skip

    def _play(self, entry: Entry) -> None:
        self.entries_played += 1
        self.clock_ns = entry.received_ns
        market = market_of(entry)
        if market is None:
            return
        if entry.kind == "rest":
            self.states[market].passed(entry.stream, entry.received_ns)
            return
        stream = entry.stream
        if not stream:  # a control frame, or one of marketd's connection markers
            self.control_frames += 1
            return
        if self.config.streams is not None and stream not in self.config.streams:
            return
        frame = entry.payload.decode("utf-8", "replace")
        data = data_of(frame, stream)
        if data is None:
            return
        self.states[market].sent(stream, data)
        group = self.hubs[market].groups.get(stream)
        if group:
            for prefix, subs in group.items():
                text = data if prefix is None else frame
                for sub in subs:
                    sub.push(text)
                self.frames_sent += len(subs)


async def _set_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


@contextlib.asynccontextmanager
async def open_replay(config: ReplayConfig) -> AsyncIterator[Replay]:
    """Serve ``config.directory`` for the duration of the block (the clock starts as the
    config says; :attr:`Replay.finished` is set at the end of the recording)."""
    survey = await trio.to_thread.run_sync(Survey.of, config)
    replay = Replay(config, survey)
    async with trio.open_nursery() as nursery:
        replay._nursery = nursery
        replay.ws_port = await nursery.start(replay.serve_ws)
        replay.rest_port = await nursery.start(
            serve_http11, replay._on_http, config.host, config.rest_port
        )
        await nursery.start(replay.play)
        try:
            yield replay
        finally:
            nursery.cancel_scope.cancel()
