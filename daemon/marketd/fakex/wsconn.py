"""One client WebSocket connection of the fake exchange: its queue, sender, reader and pinger.

trio-websocket runs the connection (handshake, pings, pongs, close), but data frames do
not go through its ``send_message``: the sender frames a batch of queued texts itself
(:func:`marketd.gateway.frames.text_frames`, the gateway's fan-out framing: a server's
frames are unmasked, so a frame is a header and the UTF-8 text) and writes the batch at
once, about a twentieth of the per-frame cost. That is safe
because each write is whole frames, appended to the stream's buffer without a pause (a
pong or close trio-websocket writes in between lands between frames), and nothing is
written once the connection is closing. The ``CorkedStream`` under both coalesces the
bytes of a burst into few ``send_all`` calls (one syscall per 64 KiB rather than per
frame). The stream is also where faults act: a stall holds every write (data, pings,
pongs), and a drop resets the TCP connection without a WebSocket close.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections import deque

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from marketd.data.records import Market
from marketd.fakex.config import MarketLimits
from marketd.fakex.fanout import StreamHub
from marketd.fakex.protocol import (
    ControlError,
    Route,
    StreamRef,
    UnknownStream,
    parse_control,
    parse_stream,
    result_reply,
)
from marketd.gateway.frames import text_frames as text_frames  # re-exported: its old home

CORK_BYTES = 64 * 1024
LOW_WATER = 2_000
CLOSE_TIMEOUT = 1.0
SEND_BATCH = 256  # queued frames framed and written at a time


class CorkedStream(trio.abc.Stream):
    """A socket stream whose writes can be buffered (corked), stalled, or reset."""

    def __init__(self, inner: trio.SocketStream) -> None:
        self._inner = inner
        self._buf = bytearray()
        self._lock = trio.StrictFIFOLock()
        self.corked = False
        self.stalled_until = 0.0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data
        if self.corked and len(self._buf) < CORK_BYTES:
            return
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            await self.wait_unstalled()
            while self._buf:
                buf, self._buf = self._buf, bytearray()
                await self._inner.send_all(buf)

    async def wait_unstalled(self) -> None:
        # A loop, not an Event: another stall may push the deadline while we sleep.
        while self.stalled_until > trio.current_time():  # noqa: ASYNC110
            await trio.sleep_until(self.stalled_until)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self._inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0): the peer sees no WebSocket close at all."""
        with contextlib.suppress(OSError):
            self._inner.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await self._inner.aclose()


@attrs.define
class MarketCounters:
    """What happened to one market's connections (reported by ``/_fake/state``)."""

    connections_open: int = 0
    connections_total: int = 0
    wrong_route_subscriptions: int = 0
    unknown_url_streams: int = 0  # names in a connection URL that are no stream (ignored)
    rate_limit_disconnects: int = 0
    pong_timeouts: int = 0
    slow_disconnects: int = 0
    frames_skipped: int = 0  # by `gap` faults
    fuzz_frames: int = 0  # queued to a connection by `fuzz` faults
    fuzz_pending: int = 0  # of `fuzz` faults, still to be queued (paced, see server)


class Connection:
    """An accepted client: subscriptions, an outgoing queue and its three tasks."""

    def __init__(
        self,
        ws: WebSocketConnection,
        stream: CorkedStream,
        hub: StreamHub,
        limits: MarketLimits,
        counters: MarketCounters,
        *,
        route: Route,
        combined: bool,
        max_queue: int,
        serial: int = 0,
    ) -> None:
        self.ws = ws
        self.stream = stream
        self.hub = hub
        self.market: Market = hub.market
        self.limits = limits
        self.counters = counters
        self.route = route
        self.combined = combined
        self.max_queue = max_queue
        self.serial = serial  # the n-th connection of its market (1-based)
        self.queue: deque[str] = deque()
        self.subscriptions: dict[str, StreamRef] = {}
        self.delivered: set[str] = set()
        self.skip = 0  # sequenced frames a `gap` fault still has to swallow
        self.abort = False  # end with a TCP reset rather than a close frame
        self.close_code = 1001
        self._lot = trio.lowlevel.ParkingLot()
        self._waiting = False
        self._drained: trio.Event | None = None
        self._scope = trio.CancelScope()
        self._arrivals: deque[float] = deque()

    # -- the hub pushes here (hot path) ---------------------------------------------------

    def push(self, frame: str) -> None:
        q = self.queue
        q.append(frame)
        if self._waiting:
            self._waiting = False
            self._lot.unpark_all()
        elif len(q) > self.max_queue:
            q.clear()
            if not self._scope.cancel_called:
                self.counters.slow_disconnects += 1
                self.end(abort=True)

    def push_seq(self, frame: str) -> None:
        if self.skip:
            self.skip -= 1
            self.counters.frames_skipped += 1
            return
        self.push(frame)

    # -- lifetime -------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._scope.cancel_called

    def end(self, *, abort: bool = False, code: int = 1001) -> None:
        """Stop the connection: a TCP reset if ``abort``, else a close frame with ``code``."""
        self.abort = self.abort or abort
        self.close_code = code
        self._scope.cancel()

    async def wait_drained(self) -> None:
        """Wait until the queue is short again (flat-out generation waits on this)."""
        if len(self.queue) <= LOW_WATER or self._scope.cancel_called:
            return
        if self._drained is None:
            self._drained = trio.Event()
        await self._drained.wait()

    async def run(self, initial: list[StreamRef]) -> None:
        """Serve until the client leaves or ``end`` is called; always unsubscribes."""
        try:
            for ref in initial:
                self._add(ref)
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._sender)
                    nursery.start_soon(self._reader)
                    nursery.start_soon(self._pinger)
        finally:
            for ref in self.subscriptions.values():
                if ref.name in self.delivered:
                    self.hub.remove(self, ref, combined=self.combined)
            self.subscriptions.clear()
            self.delivered.clear()
            if self._drained is not None:
                self._drained.set()
            with trio.CancelScope(shield=True):
                await self._close()

    async def _close(self) -> None:
        self.stream.corked = False
        if not self.abort:
            with trio.move_on_after(CLOSE_TIMEOUT):
                await self.ws.aclose(self.close_code)
                return
        await self.stream.reset()

    # -- tasks ----------------------------------------------------------------------------

    async def _sender(self) -> None:
        q, ws, stream = self.queue, self.ws, self.stream
        try:
            while True:
                if not q:
                    await stream.flush()
                    if not q:
                        self._waiting = True
                        await self._lot.park()
                    continue
                stream.corked = True
                try:
                    while q:
                        if ws.closed is not None:  # closing: no data frame may follow
                            raise ConnectionClosed(ws.closed)
                        batch = [q.popleft() for _ in range(min(len(q), SEND_BATCH))]
                        await stream.send_all(text_frames(batch))
                        if self._drained is not None and len(q) <= LOW_WATER:
                            self._drained.set()
                            self._drained = None
                finally:
                    stream.corked = False
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            self.end()

    async def _reader(self) -> None:
        try:
            while True:
                message = await self.ws.get_message()
                if self._over_rate(trio.current_time()):
                    self.counters.rate_limit_disconnects += 1
                    self.end(code=1008)
                    return
                self.push(self._handle(message))
        except ConnectionClosed:
            self.end()

    def _over_rate(self, now: float) -> bool:
        arrivals = self._arrivals
        arrivals.append(now)
        while arrivals and now - arrivals[0] >= 1.0:
            arrivals.popleft()
        return len(arrivals) > self.limits.max_messages_per_second

    async def _pinger(self) -> None:
        count = 0
        while True:
            await trio.sleep(self.limits.ping_interval)
            await self.stream.wait_unstalled()
            count += 1
            with trio.move_on_after(self.limits.pong_timeout) as scope:
                try:
                    await self.ws.ping(count.to_bytes(8, "big"))
                except ConnectionClosed:
                    self.end()
                    return
            if scope.cancelled_caught:
                self.counters.pong_timeouts += 1
                self.end(abort=True)
                return

    # -- control messages -----------------------------------------------------------------

    def _handle(self, message: str | bytes) -> str:
        try:
            request = parse_control(message)
            if request.method == "LIST_SUBSCRIPTIONS":
                return result_reply(list(self.subscriptions), request.id)
            refs: list[StreamRef] = []
            for name in request.params:
                try:
                    refs.append(parse_stream(self.market, name, self.hub.symbol_index))
                except UnknownStream:
                    raise ControlError(
                        2, f"Invalid request: unknown stream name {name!r}", request.id
                    ) from None
            if request.method == "SUBSCRIBE":
                new = {r.name for r in refs} - self.subscriptions.keys()
                if len(self.subscriptions) + len(new) > self.limits.max_streams:
                    return ControlError(
                        2,
                        f"Invalid request: too many streams (limit {self.limits.max_streams})",
                        request.id,
                    ).reply()
                for ref in refs:
                    self._add(ref)
            else:
                for ref in refs:
                    self._remove(ref)
            return result_reply(None, request.id)
        except ControlError as exc:
            return exc.reply()

    def _add(self, ref: StreamRef) -> None:
        if ref.name in self.subscriptions:
            return
        self.subscriptions[ref.name] = ref
        if self.route is Route.SPOT or ref.route is self.route:
            self.delivered.add(ref.name)
            self.hub.add(self, ref, combined=self.combined)
        else:
            self.counters.wrong_route_subscriptions += 1

    def _remove(self, ref: StreamRef) -> None:
        if self.subscriptions.pop(ref.name, None) is None:
            return
        if ref.name in self.delivered:
            self.delivered.discard(ref.name)
            self.hub.remove(self, ref, combined=self.combined)
