"""The fake exchange as a running thing: WS and REST servers, market drivers, faults.

``open_fake_exchange(config)`` starts everything on loopback (port 0 = a free port) and
yields a ``FakeExchange`` with the five base URLs and direct methods for tests (state,
pause/resume, faults, price jumps). Leaving the block closes every connection (WebSocket
close 1001) and stops the servers.

A ``fuzz`` fault queues its frames in chunks, each once the connection's queue is short
again, so even 10,000 of them never get a reading client cut as too slow; the state's
``fuzz_frames`` counts frames queued, ``fuzz_pending`` those still to come.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import orjson
import trio
from trio_websocket import WebSocketRequest, wrap_server_stream

from marketd.data.records import Market
from marketd.fakex import control
from marketd.fakex.config import FakeExchangeConfig, Fault, FaultKind, PeriodicFault
from marketd.fakex.faults import (
    fuzz_bases,
    malformed_frames,
    shutdown_frame,
    unknown_event_frames,
)
from marketd.fakex.fuzz import fuzz_frames
from marketd.fakex.http11 import HttpRequest, HttpResponse, serve_http11
from marketd.fakex.hub import MarketHub
from marketd.fakex.market import MarketModel, symbol_specs
from marketd.fakex.protocol import BadPath, UnknownStream, parse_stream, parse_ws_path
from marketd.fakex.rest import RestApi
from marketd.fakex.wsconn import Connection, CorkedStream, MarketCounters
from marketd.feed import ws_compat

ws_compat.install()
FLAT_OUT_BATCH = 100
TICK = 0.01
CONNECT_TIMEOUT = 10.0
FUZZ_CHUNK = 500  # fuzzed frames queued at a time


def _error_body(exc: Exception) -> bytes:
    return orjson.dumps({"code": -1, "msg": f"{type(exc).__name__}: {exc}"})


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class FakeExchange:
    """A running fake exchange. Build it with ``open_fake_exchange``."""

    def __init__(self, config: FakeExchangeConfig) -> None:
        self.config = config
        specs = symbol_specs(config.symbols, config.seed)
        self.hubs: dict[Market, MarketHub] = {}
        self.rest: dict[Market, RestApi] = {}
        self.counters: dict[Market, MarketCounters] = {}
        for market in Market:
            model = MarketModel(
                market,
                specs,
                config.seed,
                book_levels=config.book_levels,
                history=config.history,
                journal=config.book_journal,
            )
            hub = self.hubs[market] = MarketHub(model, kline_ms=config.kline_ms)
            limits = config.limits(market)
            self.rest[market] = RestApi(
                hub, limits.rest_weight_per_minute, limits.ban_after_rejections, limits.ban_seconds
            )
            self.counters[market] = MarketCounters()
        self.connections: set[Connection] = set()
        self.faults_injected: dict[str, int] = {k.value: 0 for k in FaultKind}
        self.paused = config.paused
        self._resumed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.ws_port = 0
        self.rest_port = 0

    # -- URLs -----------------------------------------------------------------------------

    @property
    def spot_ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.ws_port}/spot"

    @property
    def futures_ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.ws_port}/usdm"

    @property
    def spot_rest_url(self) -> str:
        return f"http://{self.config.host}:{self.rest_port}/spot"

    @property
    def futures_rest_url(self) -> str:
        return f"http://{self.config.host}:{self.rest_port}/usdm"

    @property
    def control_url(self) -> str:
        return f"http://{self.config.host}:{self.rest_port}/_fake"

    def urls(self) -> dict[str, str]:
        return {
            "spot_ws_url": self.spot_ws_url,
            "spot_rest_url": self.spot_rest_url,
            "futures_ws_url": self.futures_ws_url,
            "futures_rest_url": self.futures_rest_url,
            "control_url": self.control_url,
        }

    # -- direct control (the HTTP control API calls these too) ----------------------------

    def model(self, market: Market) -> MarketModel:
        """The seeded market model: the true books and trade histories."""
        return self.hubs[market].model

    def pause(self) -> None:
        """Stop generating events (no trades, diffs, tickers or mark prices)."""
        self.paused = True
        self._resumed = trio.Event()

    def resume(self) -> None:
        self.paused = False
        self._resumed.set()

    def jump(self, market: Market, symbol: str, percent: float) -> str:
        """Move ``symbol``'s price by ``percent`` now; return the new last price."""
        hub = self.hubs[market]
        idx = hub.symbol_index.get(symbol.lower())
        if idx is None:
            raise KeyError(f"unknown symbol {symbol!r}")
        now = wall_ms()
        shift, trade, diff = hub.model.symbols[idx].jump(percent, now)
        hub.publish(idx, None, shift, now)
        hub.publish(idx, trade, diff, now)
        return hub.frames[idx].fmt_p(trade.price)

    def true_book(
        self, market: Market, symbol: str, update_id: int | None = None
    ) -> tuple[int, list[tuple[str, str]], list[tuple[str, str]]]:
        """``(update id, bids, asks)`` of the true book, best first, as the exchange prints.

        ``update_id`` None: the book now; else the book right after that update (needs
        ``book_journal``; ``LookupError`` when outside it). ``KeyError``: no such symbol.
        """
        hub = self.hubs[market]
        idx = hub.symbol_index.get(symbol.lower())
        if idx is None:
            raise KeyError(f"unknown symbol {symbol!r}")
        model, fr = hub.model.symbols[idx], hub.frames[idx]
        if update_id is None:
            book = model.book
        elif model.journal is None:
            raise LookupError("the fake keeps no book journal: set book_journal")
        else:
            book = model.journal.book_at(update_id)
        last, bids, asks = book.snapshot(len(book.bids) + len(book.asks))
        fp, fq = fr.fmt_p, fr.fmt_q
        return last, [(fp(p), fq(q)) for p, q in bids], [(fp(p), fq(q)) for p, q in asks]

    def ban(self, market: Market, seconds: float) -> None:
        """Answer every REST request of ``market`` with 418 for ``seconds``."""
        self.rest[market].meter.ban(seconds, wall_ms() / 1000)

    def inject_fault(self, fault: Fault) -> int:
        """Inject ``fault`` into the matching open connections; return how many.

        A ``gap`` with a ``symbol`` skips that symbol's next depth diffs at the source, on
        every connection of the market(s); it returns the number of markets.
        """
        self.faults_injected[fault.kind.value] += 1
        if fault.kind is FaultKind.GAP and fault.symbol is not None:
            hubs = [h for m, h in self.hubs.items() if fault.market in (None, m)]
            for hub in hubs:
                idx = hub.symbol_index.get(fault.symbol.lower())
                if idx is None:
                    raise KeyError(f"unknown symbol {fault.symbol!r}")
                hub.skip_depth[idx] += fault.count
            return len(hubs)
        if fault.kind is FaultKind.CORRUPT_LEVEL:
            hubs = [h for m, h in self.hubs.items() if fault.market in (None, m)]
            for hub in hubs:
                if fault.symbol is None:
                    indices = list(range(len(hub.corrupt_depth)))
                elif (found := hub.symbol_index.get(fault.symbol.lower())) is None:
                    raise KeyError(f"unknown symbol {fault.symbol!r}")
                else:
                    indices = [found]
                for idx in indices:
                    hub.corrupt_depth[idx] += fault.count
            return len(hubs)
        targets = [c for c in self.connections if fault.market is None or c.market is fault.market]
        now = wall_ms()
        fuzz_seed = fault.seed
        if fuzz_seed is None:
            fuzz_seed = self.config.seed * 1_000_003 + self.faults_injected[FaultKind.FUZZ.value]
        for conn in targets:
            first = next(iter(conn.delivered), None)
            ref = conn.subscriptions[first] if first is not None else None
            symbol = (
                self.hubs[conn.market].model.symbols[max(ref.symbol, 0)].spec.symbol
                if ref
                else "BTCUSDT"
            )
            kind = fault.kind
            if kind is FaultKind.DROP:
                conn.end(abort=True)
            elif kind is FaultKind.SERVER_SHUTDOWN:
                conn.push(shutdown_frame(now, is_combined=conn.combined))
                if fault.seconds > 0 and self._nursery is not None:
                    self._nursery.start_soon(self._close_later, conn, fault.seconds)
            elif kind is FaultKind.MALFORMED:
                for frame in malformed_frames(
                    fault.count, ref, symbol, now, is_combined=conn.combined
                ):
                    conn.push(frame)
            elif kind is FaultKind.UNKNOWN_EVENT:
                for frame in unknown_event_frames(
                    fault.count, ref, symbol, now, is_combined=conn.combined
                ):
                    conn.push(frame)
            elif kind is FaultKind.STALL:
                until = trio.current_time() + fault.seconds
                conn.stream.stalled_until = max(conn.stream.stalled_until, until)
            elif kind is FaultKind.GAP:
                conn.skip += fault.count
            elif kind is FaultKind.FUZZ:
                self._start_fuzz(
                    conn, fault.count, f"{fuzz_seed}/{conn.market.value}/{conn.serial}"
                )
        return len(targets)

    def _start_fuzz(self, conn: Connection, count: int, seed: str) -> None:
        refs = [conn.subscriptions[name] for name in sorted(conn.delivered)]
        bases = fuzz_bases(self.hubs[conn.market], refs, wall_ms())
        frames = (f.text for f in fuzz_frames(count, seed, bases, is_combined=conn.combined))
        conn.counters.fuzz_pending += count
        if self._nursery is not None:
            self._nursery.start_soon(self._push_fuzz, conn, frames, count)
            return
        for frame in frames:
            conn.push(frame)
        conn.counters.fuzz_pending -= count
        conn.counters.fuzz_frames += count

    @staticmethod
    async def _push_fuzz(conn: Connection, frames: Iterator[str], count: int) -> None:
        """Queue ``frames`` in chunks, each once the queue is short again (never cut as slow)."""
        counters, left = conn.counters, count
        try:
            while left and not conn.ended:
                await conn.wait_drained()
                if conn.ended:
                    break
                chunk = list(itertools.islice(frames, FUZZ_CHUNK))
                for frame in chunk:
                    conn.push(frame)
                left -= len(chunk)
                counters.fuzz_frames += len(chunk)
                counters.fuzz_pending -= len(chunk)
                await trio.lowlevel.checkpoint()
        finally:
            counters.fuzz_pending -= left

    @staticmethod
    async def _close_later(conn: Connection, seconds: float) -> None:
        await trio.sleep(seconds)
        conn.end(code=1001)

    def state(self) -> dict[str, Any]:
        """A JSON-able picture of what was generated and what happened to connections."""
        markets: dict[str, Any] = {}
        for market, hub in self.hubs.items():
            symbols: dict[str, Any] = {}
            for idx, m in enumerate(hub.model.symbols):
                h = m.history
                symbols[m.spec.symbol] = {
                    "first_trade_id": h.first_id,
                    "last_trade_id": h.next_id - 1 if h.first_id is not None else None,
                    "first_agg_id": h.first_agg_id,
                    "last_agg_id": h.next_agg_id - 1 if h.first_agg_id is not None else None,
                    "last_update_id": m.book.last_update_id,
                    "last_price": hub.frames[idx].fmt_p(m.stats.last),
                    "frames_sent": hub.frames_sent[idx],
                }
            c = self.counters[market]
            markets[market.value] = {
                "symbols": symbols,
                "events": hub.events,
                "frames_sent": sum(hub.frames_sent) + hub.global_frames_sent,
                "connections_open": c.connections_open,
                "connections_total": c.connections_total,
                "wrong_route_subscriptions": c.wrong_route_subscriptions,
                "unknown_url_streams": c.unknown_url_streams,
                "rate_limit_disconnects": c.rate_limit_disconnects,
                "pong_timeouts": c.pong_timeouts,
                "slow_disconnects": c.slow_disconnects,
                "frames_skipped": c.frames_skipped,
                "fuzz_frames": c.fuzz_frames,
                "fuzz_pending": c.fuzz_pending,
                "rest_weight_used": self.rest[market].meter.used,
                "rest_weight_peak": self.rest[market].meter.peak,
                "rest_rejected": self.rest[market].meter.rejected,
                "rest_banned": self.rest[market].meter.banned,
                "depth_skipped": hub.depth_skipped,
                "corrupted_levels": [attrs.asdict(c) for c in hub.corrupted],
            }
        return {
            "paused": self.paused,
            "connections_open": len(self.connections),
            "faults_injected": dict(self.faults_injected),
            "markets": markets,
        }

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
            await request.reject(404, body=_error_body(exc))
            return
        hub = self.hubs[path.market]
        limits = self.config.limits(path.market)
        # A name in the URL that is no stream is ignored, not refused: clients such as
        # ccxt open /ws/<their own id> and then SUBSCRIBE, and Binance lets them.
        refs = []
        ignored = 0
        for name in path.streams:
            try:
                refs.append(parse_stream(path.market, name, hub.symbol_index))
            except UnknownStream:
                ignored += 1
        if len(refs) > limits.max_streams:
            await request.reject(400, body=b'{"code":-1,"msg":"too many streams"}')
            return
        ws = await request.accept()
        counters = self.counters[path.market]
        counters.unknown_url_streams += ignored
        conn = Connection(
            ws,
            stream,
            hub,
            limits,
            counters,
            route=path.route,
            combined=path.combined,
            max_queue=self.config.max_queue,
            serial=counters.connections_total + 1,
        )
        self.connections.add(conn)
        counters.connections_open += 1
        counters.connections_total += 1
        try:
            await conn.run(refs)
        finally:
            self.connections.discard(conn)
            counters.connections_open -= 1

    async def _on_http(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/_fake/"):
            return control.handle(self, request)
        for market in Market:
            prefix = f"/{market.value}/"
            if request.path.startswith(prefix):
                if request.method != "GET":
                    return HttpResponse(405, b'{"code":-1,"msg":"Method not allowed"}')
                reply = self.rest[market].handle(
                    request.path[len(prefix) - 1 :], request.query, wall_ms()
                )
                return HttpResponse(reply.status, reply.body, reply.headers)
        return HttpResponse(404, b'{"code":-1,"msg":"Not found"}')

    async def drive(self, market: Market) -> None:
        """Generate ``market``'s events forever at the configured rate (0: flat out)."""
        hub = self.hubs[market]
        rate = self.config.rate
        credit = 0.0
        last = trio.current_time()
        next_second = last + 1.0
        while True:
            if self.paused:
                await self._resumed.wait()
                last = trio.current_time()
                next_second = last + 1.0
            now = trio.current_time()
            now_ms = wall_ms()
            # Before this round's events: a candle closing now holds only earlier trades.
            hub.tick(now_ms)
            if rate > 0:
                credit = min(credit + (now - last) * rate, max(rate * 0.1, 1.0))
                last = now
                n = int(credit)
                credit -= n
                if n:
                    hub.run_steps(n, now_ms)
            else:
                hub.run_steps(FLAT_OUT_BATCH, now_ms)
            if now >= next_second:
                hub.tick_second(now_ms)
                next_second = max(next_second + 1.0, now + 0.5)
            if rate > 0:
                await trio.sleep(TICK)
            else:
                await self._wait_backlog(market)

    async def _wait_backlog(self, market: Market) -> None:
        """Flat-out pacing: wait while any client of ``market`` has a backlog.

        With no client at all there is nobody to pace us: tick along at 1000 events/s.
        """
        conns = [c for c in self.connections if c.market is market]
        if not conns:
            await trio.sleep(FLAT_OUT_BATCH / 1000)
            return
        await trio.lowlevel.checkpoint()
        for conn in conns:
            await conn.wait_drained()

    async def repeat_fault(self, periodic: PeriodicFault) -> None:
        while True:
            await trio.sleep(periodic.every)
            self.inject_fault(periodic.fault)


@contextlib.asynccontextmanager
async def open_fake_exchange(
    config: FakeExchangeConfig | None = None,
) -> AsyncIterator[FakeExchange]:
    """Run a fake exchange for the duration of the block."""
    fx = FakeExchange(config or FakeExchangeConfig())
    async with trio.open_nursery() as nursery:
        fx._nursery = nursery
        fx.ws_port = await nursery.start(fx.serve_ws)
        fx.rest_port = await nursery.start(
            serve_http11, fx._on_http, fx.config.host, fx.config.rest_port
        )
        for market in Market:
            nursery.start_soon(fx.drive, market)
        for periodic in fx.config.periodic_faults:
            nursery.start_soon(fx.repeat_fault, periodic)
        try:
            yield fx
        finally:
            nursery.cancel_scope.cancel()
