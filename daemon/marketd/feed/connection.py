"""One Binance WebSocket connection, kept alive forever (trio).

A :class:`Feed` runs one :class:`~marketd.feed.streams.ConnectionPlan`: it connects
(opening the TCP/TLS stream itself and wrapping it with trio-websocket, so the socket is
always closed), subscribes (streams in the URL, or paced ``SUBSCRIBE`` messages whose acks
are checked by id), reads frames and hands data frames on in :class:`FrameBatch` es.
It reconnects, forever, on the retryable errors only, with capped jittered backoff:

* ``error`` — connect/handshake failure, timeout, an error reply from the exchange;
* ``closed`` — the peer closed the connection or it dropped;
* ``stale`` — no frame for ``stale_after_s`` (time spent waiting on downstream
  backpressure does not count);
* ``rotation`` — the connection is older than ``rotate_after_s`` (Binance cuts at 24 h);
* ``server_shutdown`` — the exchange announced ``serverShutdown``.

A planned reconnect (rotation, server shutdown) of a connection that was healthy for
``reconnect.reset_after_s`` is immediate; every other reconnect waits the backoff delay.

Frames: control frames (acks, error replies, ``serverShutdown``) are handled here and not
forwarded; everything else — including binary frames (decoded as UTF-8) and frames that
are not valid combined-stream JSON — is forwarded unparsed, and the codec counts malformed
ones. trio-websocket answers the server's pings itself.

Backpressure: the reader waits when the pending buffer (``max_frames_per_batch`` times
``PENDING_BATCHES``) is full, so a stuck downstream stops reading this socket — and with
it the pong replies. A later spool will let the reader always keep reading.
"""

from __future__ import annotations

import collections
import contextlib
import math
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeAlias

import attrs
import structlog
import trio
from trio_websocket import (
    ConnectionClosed,
    DisconnectionTimeout,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from marketd.backoff import Backoff, policy_from_settings
from marketd.config import BinanceSettings
from marketd.errors import ConfigError, FeedError, FeedTimeout, ServerShutdown
from marketd.feed.buffer import FrameBuffer
from marketd.feed.control import Ack, ErrorReply, parse_control
from marketd.feed.stats import RECONNECT_REASONS, FeedStatistics
from marketd.feed.streams import ConnectionPlan, SubscribeMessage, messages_per_second_for
from marketd.records import FrameBatch
from marketd.telemetry import span

log = structlog.get_logger()

# The errors a connection recovers from by reconnecting; anything else propagates.
RETRYABLE: tuple[type[Exception], ...] = (
    OSError,
    HandshakeError,
    ConnectionClosed,
    DisconnectionTimeout,
    trio.TooSlowError,
    FeedError,
)
# The pending buffer holds this many batches' worth of frames before the reader waits.
PENDING_BATCHES = 4
# Bound on the closing handshake (send close, wait for the peer's close).
DISCONNECT_TIMEOUT_S = 1.0
# When cancelled: time to put the close frame on the wire, not waiting for the reply.
CANCELLED_CLOSE_S = 0.05
# trio-websocket's own queue between its socket reader and ours.
WS_MESSAGE_QUEUE_SIZE = 256
WS_MAX_MESSAGE_SIZE = 16 * 2**20
WS_RECEIVE_BUFFER_SIZE = 64 * 2**10


_Stream: TypeAlias = trio.SocketStream | trio.SSLStream[trio.SocketStream]


# Queued WebSocket messages taken per wake-up of the reader, and the wait under load.
_DRAIN_MAX = 512
_BATCH_WAIT_S = 0.001

# How long a cancelled feed may take to hand on the frames it has already read.
DRAIN_TIMEOUT_S = 5.0


class StaleFeed(FeedTimeout):
    """No frame arrived within ``binance.stale_after_s``: the connection is replaced."""


class _Rotate(Exception):
    """The connection reached ``binance.rotate_after_s`` and is replaced."""


@attrs.frozen
class _Target:
    host: str
    port: int
    tls: bool
    resource: str

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> _Target:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
        tls = parts.scheme == "wss"
        resource = parts.path or "/"
        if parts.query:
            resource += "?" + parts.query
        return cls(parts.hostname, parts.port or (443 if tls else 80), tls, resource)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _Rotate):
        return "rotation"
    if isinstance(exc, StaleFeed):
        return "stale"
    if isinstance(exc, ServerShutdown):
        return "server_shutdown"
    if isinstance(exc, ConnectionClosed):
        return "closed"
    return "error"


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Feed:
    """One connection plan served forever; :meth:`statistics` is safe to call any time."""

    def __init__(self, plan: ConnectionPlan, settings: BinanceSettings) -> None:
        self.plan = plan
        self.settings = settings
        self._log = log.bind(connection=plan.connection_id)
        try:
            self._target = _Target.parse(plan.url)
        except ValueError as exc:
            raise ConfigError([f"binance ws url of {plan.connection_id}: {exc}"]) from None
        self._buffer = FrameBuffer(max(1, settings.max_frames_per_batch) * PENDING_BATCHES)
        self._ssl_context: ssl.SSLContext | None = None
        self._subscribed_once = trio.Event()
        self._acks: dict[int, trio.Event] = {}
        # Statistics.
        self._connected = False
        self._subscribed = False
        self._connects = 0
        self._reconnects = dict.fromkeys(RECONNECT_REASONS, 0)
        self._frames_received = 0
        self._control_frames = 0
        self._frames_forwarded = 0
        self._batches_sent = 0
        self._last_frame_at: float | None = None
        self._last_error = ""
        self._busy = False
        # The staleness reference: last frame, or connect, or end of a backpressure wait
        # (infinite during one).
        self._alive_at = 0.0
        self._subscribed_at: float | None = None

    @property
    def connection_id(self) -> str:
        return self.plan.connection_id

    def statistics(self) -> FeedStatistics:
        age = None
        if self._last_frame_at is not None:
            age = max(0.0, trio.current_time() - self._last_frame_at)
        return FeedStatistics(
            connection_id=self.plan.connection_id,
            market=self.plan.market,
            route=self.plan.route.value,
            url=self.plan.url,
            streams=len(self.plan.streams),
            connected=self._connected,
            subscribed=self._subscribed,
            connects=self._connects,
            reconnects=dict(self._reconnects),
            frames_received=self._frames_received,
            control_frames=self._control_frames,
            frames_forwarded=self._frames_forwarded,
            batches_sent=self._batches_sent,
            frames_pending=len(self._buffer),
            last_frame_at=self._last_frame_at,
            last_frame_age_s=age,
            last_error=self._last_error,
        )

    async def serve(
        self,
        out: trio.abc.SendChannel[FrameBatch],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Run forever; ``started()`` once first subscribed. Closes ``out`` on exit.

        When cancelled (the daemon stops intake), frames already read are still handed
        on — shielded, for at most ``DRAIN_TIMEOUT_S`` — so a graceful stop loses nothing
        that was received.
        """
        async with out:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._flush, out)
                    nursery.start_soon(self._reconnect_forever)
                    await self._subscribed_once.wait()
                    task_status.started()
            finally:
                with trio.move_on_after(DRAIN_TIMEOUT_S) as drain:
                    drain.shield = True
                    await self._drain(out)
        raise AssertionError("unreachable: the feed's tasks never return")

    async def _drain(self, out: trio.abc.SendChannel[FrameBatch]) -> None:
        limit = max(1, self.settings.max_frames_per_batch)
        while len(self._buffer):
            frames, received_ns = await self._buffer.take(limit)
            try:
                await out.send(
                    FrameBatch(self.plan.market, self.plan.connection_id, frames, received_ns)
                )
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            self._batches_sent += 1
            self._frames_forwarded += len(frames)

    # -- batching ---------------------------------------------------------------------

    async def _flush(self, out: trio.abc.SendChannel[FrameBatch]) -> None:
        limit = max(1, self.settings.max_frames_per_batch)
        market, connection = self.plan.market, self.plan.connection_id
        while True:
            frames, received_ns = await self._buffer.take(limit)
            await out.send(FrameBatch(market, connection, frames, received_ns))
            self._batches_sent += 1
            self._frames_forwarded += len(frames)

    # -- connection lifecycle -----------------------------------------------------------

    async def _reconnect_forever(self) -> NoReturn:
        backoff = Backoff(policy_from_settings(self.settings.reconnect))
        while True:
            started_at = trio.current_time()
            self._subscribed_at = None
            failure: BaseException | None = None
            try:
                await self._session()
            except* RETRYABLE as group:
                failure = _first_leaf(group)
            except* _Rotate as group:
                failure = _first_leaf(group)
            if failure is None:  # pragma: no cover - a session only ends by raising
                failure = FeedError("session ended without an error")
            ended_at = trio.current_time()
            subscribed_at = self._subscribed_at
            healthy_for = 0.0 if subscribed_at is None else ended_at - subscribed_at
            backoff.ran_for(healthy_for)
            reason = _reason(failure)
            planned = reason in ("rotation", "server_shutdown")
            if planned and healthy_for >= backoff.policy.reset_after:
                delay = 0.0
            else:
                delay = backoff.next_delay()
            self._reconnects[reason] += 1
            self._last_error = _describe(failure)
            # A planned reconnect is routine; anything else deserves attention.
            emit = self._log.info if planned else self._log.warning
            emit(
                "feed.reconnect",
                reason=reason,
                error=self._last_error,
                delay_s=round(delay, 3),
                connected_for_s=round(ended_at - started_at, 3),
                attempt=backoff.attempt,
            )
            await trio.sleep(delay)

    async def _connect(self, nursery: trio.Nursery) -> tuple[WebSocketConnection, _Stream]:
        """Open the stream and do the WebSocket handshake, closing the stream on failure."""
        target = self._target
        timeout = self.settings.connect_timeout_s
        stream: _Stream | None = None
        try:
            with trio.move_on_after(timeout):
                if target.tls:
                    if self._ssl_context is None:
                        self._ssl_context = ssl.create_default_context()
                    stream = await trio.open_ssl_over_tcp_stream(
                        target.host,
                        target.port,
                        ssl_context=self._ssl_context,
                        https_compatible=True,
                    )
                else:
                    stream = await trio.open_tcp_stream(target.host, target.port)
                ws = await wrap_client_stream(
                    nursery,
                    stream,
                    target.host_header,
                    target.resource,
                    message_queue_size=WS_MESSAGE_QUEUE_SIZE,
                    max_message_size=WS_MAX_MESSAGE_SIZE,
                    receive_buffer_size=WS_RECEIVE_BUFFER_SIZE,
                )
                return ws, stream
        except BaseException:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise
        if stream is not None:
            await trio.aclose_forcefully(stream)
        raise FeedTimeout(
            f"connecting to {target.host}:{target.port} took longer than {timeout} s; "
            "check the network or raise binance.connect_timeout_s"
        )

    async def _session(self) -> None:
        """One connection, from connect to the error that ends it (always raises).

        trio-websocket's reader runs in the outer nursery and our tasks in an inner one,
        so that when one of ours ends the session the reader still sees the peer's reply
        to our close frame.
        """
        plan, target = self.plan, self._target
        # The session's own tasks (watch, subscribe, read) run inside its span: intended.
        with span(
            "feed.session",
            connection=plan.connection_id,
            market=plan.market.value,
            streams=len(plan.streams),
            server=f"{target.host}:{target.port}",
        ):
            async with trio.open_nursery() as ws_nursery:
                try:
                    with span("feed.connect", tls=target.tls):
                        ws, stream = await self._connect(ws_nursery)
                    try:
                        self._on_connected()
                        connected_at = self._alive_at
                        rate = messages_per_second_for(self.plan.market, self.settings)
                        messages = self.plan.subscribe_messages(rate)
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._watch, connected_at)
                            nursery.start_soon(self._subscribe, ws, messages, connected_at)
                            await self._read(ws)
                    finally:
                        self._connected = False
                        self._subscribed = False
                        await self._close(ws, stream)
                finally:
                    ws_nursery.cancel_scope.cancel()

    def _on_connected(self) -> None:
        self._connects += 1
        self._connected = True
        self._alive_at = trio.current_time()
        self._acks.clear()
        self._log.info(
            "feed.connected",
            url=self.plan.url[:200],
            streams=len(self.plan.streams),
            connects=self._connects,
        )

    @staticmethod
    async def _close(ws: WebSocketConnection, stream: _Stream) -> None:
        """Send a close frame and wait (bounded) for the reply; then close the socket.

        When we are being cancelled (shutdown) trio-websocket's reader is cancelled too
        and cannot see the reply, so the close frame is sent without waiting for it.
        """
        cancelled = trio.current_effective_deadline() == -math.inf
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CANCELLED_CLOSE_S if cancelled else DISCONNECT_TIMEOUT_S):
                await ws.aclose()
            # After a server-initiated close trio-websocket leaves the socket open.
            await trio.aclose_forcefully(stream)

    async def _subscribe(
        self,
        ws: WebSocketConnection,
        messages: tuple[SubscribeMessage, ...],
        connected_at: float,
    ) -> None:
        timeout = self.settings.connect_timeout_s
        with span("feed.subscribe", messages=len(messages), streams=len(self.plan.streams)):
            for message in messages:
                await trio.sleep_until(connected_at + message.at_s)
                acked = self._acks[message.id] = trio.Event()
                await ws.send_message(message.to_json())
                with trio.move_on_after(timeout):
                    await acked.wait()
                if not acked.is_set():
                    raise FeedTimeout(
                        f"SUBSCRIBE id {message.id} was not acknowledged within {timeout} s"
                    )
        self._subscribed = True
        self._subscribed_at = trio.current_time()
        self._log.info("feed.subscribed", streams=len(self.plan.streams), messages=len(messages))
        self._subscribed_once.set()

    async def _watch(self, connected_at: float) -> NoReturn:
        """Raise :class:`StaleFeed` or :class:`_Rotate` when it is time to replace."""
        stale_after = self.settings.stale_after_s
        rotate_at = connected_at + self.settings.rotate_after_s
        while True:
            now = trio.current_time()
            if now >= rotate_at:
                raise _Rotate(f"connection is {self.settings.rotate_after_s} s old")
            stale_at = self._alive_at + stale_after
            if now >= stale_at:
                raise StaleFeed(f"no frame for {stale_after} s")
            await trio.sleep_until(min(rotate_at, stale_at, now + stale_after))

    async def _read(self, ws: WebSocketConnection) -> NoReturn:
        buffer = self._buffer
        get_message = ws.get_message
        receive_nowait = ws._recv_channel.receive_nowait
        queued: collections.deque[str | bytes] = collections.deque()
        try:
            await self._read_loop(ws, buffer, get_message, receive_nowait, queued)
        finally:
            # Messages already read off the socket are data received: keep them even when
            # the connection dropped or the feed is being stopped.
            self._salvage(queued, receive_nowait)

    def _salvage(
        self, queued: collections.deque[str | bytes], receive_nowait: Callable[[], str | bytes]
    ) -> None:
        with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            while True:
                queued.append(receive_nowait())
        now_ns = time.time_ns()
        for message in queued:
            frame = message if isinstance(message, str) else message.decode("utf-8", "replace")
            if parse_control(frame) is None:
                self._frames_received += 1
                self._buffer.append_nowait(frame, now_ns)
        queued.clear()

    async def _read_loop(
        self,
        ws: WebSocketConnection,
        buffer: FrameBuffer,
        get_message: Callable[[], Awaitable[str | bytes]],
        receive_nowait: Callable[[], str | bytes],
        queued: collections.deque[str | bytes],
    ) -> NoReturn:
        while True:
            if queued:
                message = queued.popleft()
            elif self._busy:
                # Under load, let trio-websocket queue a millisecond of messages and take
                # them in one go, instead of a task switch per message.
                await trio.sleep(_BATCH_WAIT_S)
                try:
                    while len(queued) < _DRAIN_MAX:
                        queued.append(receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    pass
                self._busy = len(queued) > 1
                continue
            else:
                message = await get_message()
                self._busy = True
            received_ns = time.time_ns()
            self._last_frame_at = self._alive_at = trio.current_time()
            self._frames_received += 1
            frame = message if isinstance(message, str) else message.decode("utf-8", "replace")
            control = parse_control(frame)
            if control is None:
                if buffer.full:
                    # Waiting on downstream is not staleness of the exchange.
                    self._alive_at = math.inf
                    await buffer.wait_space()
                    self._alive_at = trio.current_time()
                buffer.append_nowait(frame, received_ns)
                continue
            self._control_frames += 1
            if isinstance(control, Ack):
                event = self._acks.pop(control.id, None)
                if event is not None:
                    event.set()
            elif isinstance(control, ErrorReply):
                raise FeedError(
                    f"the exchange rejected request id {control.id}: {control.message}; "
                    "check the subscribed stream names"
                )
            else:
                raise ServerShutdown("the exchange announced serverShutdown")


async def serve_feed(
    plan: ConnectionPlan,
    settings: BinanceSettings,
    out: trio.abc.SendChannel[FrameBatch],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve one connection plan forever (see :class:`Feed`). Closes ``out`` on exit."""
    await Feed(plan, settings).serve(out, task_status=task_status)
