"""One Binance WebSocket connection plan, kept alive forever (trio).

A :class:`Feed` runs one :class:`~marketd.feed.streams.ConnectionPlan`: it connects
(opening the TCP/TLS stream itself and wrapping it with trio-websocket, so the socket is
always closed), subscribes (streams in the URL, or paced ``SUBSCRIBE`` messages whose acks
are checked by id), reads frames and hands data frames on in :class:`FrameBatch` es.

Unplanned ends reconnect, forever, on the retryable errors only, with capped jittered
backoff (break, then make; the pipeline backfills the trades missed meanwhile):

* ``error`` — connect/handshake failure, timeout, an error reply from the exchange;
* ``closed`` — the peer closed the connection or it dropped;
* ``stale`` — no frame for ``stale_after_s`` (time spent waiting on downstream
  backpressure does not count).

Planned replacements are **make-before-break** (a *handover*):

* ``rotation`` — the connection is older than ``rotate_after_s`` (Binance cuts at 24 h);
* ``server_shutdown`` — the exchange announced ``serverShutdown`` (it will go away soon).

The old connection keeps delivering while a successor connects and subscribes; the
successor's frames are *held* (its own bounded buffer) meanwhile. Once the successor is
subscribed and the overlap is proven (a frame delivered by both, see
:mod:`marketd.feed.handover`) — or ``HANDOVER_GRACE_S`` after its first data frame, or
``HANDOVER_MAX_S`` after its subscription when its streams are quiet — the old connection
is closed (close handshake; frames already read are kept), and the held frames follow the
old connection's last frame, minus the prefix that repeats it. So each connection's frames
reach downstream in one contiguous run, old before new: no interleaving, no gap, and what
duplicates remain (frames not byte-identical across connections) are sequenced kinds that
:class:`~marketd.pipeline.sequence.TradeSequencer` drops. A successor that fails is retried with
backoff while the old connection keeps serving. A replacement of a connection that was
healthy for ``reconnect.reset_after_s`` starts at once; otherwise after the backoff delay.

Frames: control frames (acks, error replies, ``serverShutdown``) are handled here and not
forwarded as data; everything else — including binary frames (decoded as UTF-8) and frames
that are not valid combined-stream JSON — is forwarded unparsed, and the codec counts
malformed ones. trio-websocket answers the server's pings itself.

Recording (``record_control``, while the recorder records): the control frames go
downstream too, beside the data in the same batches and in their place among the frames
(:attr:`FrameBatch.control <marketd.data.records.FrameBatch.control>`), and so do a
``connected`` marker once the handshake is done and a ``closed`` marker after the
connection's last frame (their shapes: :mod:`marketd.recorder.format`). They follow the
frames of their connection through a handover: the old connection's ``closed`` marker
comes before the successor's ``connected`` one.

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

from marketd.config.settings import ExchangeSettings
from marketd.data.records import FrameBatch
from marketd.errors import ConfigError, FeedError, FeedTimeout, ServerShutdown
from marketd.exchanges import adapter
from marketd.exchanges.seam import Ack, ErrorReply
from marketd.feed import ws_compat
from marketd.feed.buffer import FrameBuffer, chunks, drop_prefix
from marketd.feed.handover import Overlap
from marketd.feed.link import Link
from marketd.feed.stats import RECONNECT_REASONS, FeedStatistics
from marketd.feed.streams import ConnectionPlan, SubscribeMessage
from marketd.obs.telemetry import span
from marketd.recorder.format import closed_marker, connected_marker
from marketd.runtime.backoff import Backoff, policy_from_settings
from marketd.status import StatusStream

ws_compat.install()
log = structlog.get_logger()

# The errors a connection recovers from by reconnecting; anything else propagates.
RECONNECT_ON: tuple[type[Exception], ...] = (
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

# Handover: without proof of overlap, the old connection is closed this long after the
# successor's first data frame, or this long after its subscription when nothing came.
HANDOVER_GRACE_S = 0.25
HANDOVER_MAX_S = 3.0


class StaleFeed(FeedTimeout):
    """No frame arrived within ``binance.stale_after_s``: the connection is replaced."""


class _Rotate(Exception):
    """The connection reached ``binance.rotate_after_s`` and is replaced (a reason, not raised)."""


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

    def __init__(
        self,
        plan: ConnectionPlan,
        settings: ExchangeSettings,
        *,
        record_control: bool = False,
        status: StatusStream | None = None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        # Hand on control frames and connection markers too (the recorder records them).
        self.record_control = record_control
        # Where the streams' ups and downs are reported; whether they are up now.
        self.status = status
        self._up = False
        # The exchange this connection speaks to: its control frames, its subscribe message.
        self.adapter = adapter(plan.market)
        self._log = log.bind(connection=plan.connection_id)
        try:
            self._target = _Target.parse(plan.url)
        except ValueError as exc:
            raise ConfigError([f"binance ws url of {plan.connection_id}: {exc}"]) from None
        self._capacity = max(1, settings.max_frames_per_batch) * PENDING_BATCHES
        self._buffer = FrameBuffer(self._capacity)
        self._ssl_context: ssl.SSLContext | None = None
        self._subscribed_once = trio.Event()
        self._changed = trio.Event()
        self._links = 0
        self._primary: Link | None = None
        self._successor: Link | None = None
        # Statistics.
        self._connects = 0
        self._reconnects = dict.fromkeys(RECONNECT_REASONS, 0)
        self._frames_received = 0
        self._control_frames = 0
        self._frames_forwarded = 0
        self._batches_sent = 0
        self._last_frame_at: float | None = None
        self._last_error = ""
        # Make-before-break handovers completed, and overlap frames they dropped.
        self.handovers = 0
        self.overlap_frames_dropped = 0

    @property
    def connection_id(self) -> str:
        return self.plan.connection_id

    def statistics(self) -> FeedStatistics:
        age = None
        if self._last_frame_at is not None:
            age = max(0.0, trio.current_time() - self._last_frame_at)
        primary, successor = self._primary, self._successor
        return FeedStatistics(
            connection_id=self.plan.connection_id,
            market=self.plan.market,
            route=self.plan.route,
            url=self.plan.url,
            streams=len(self.plan.streams),
            connected=primary is not None and primary.connected,
            subscribed=primary is not None and primary.subscribed,
            connects=self._connects,
            reconnects=dict(self._reconnects),
            frames_received=self._frames_received,
            control_frames=self._control_frames,
            frames_forwarded=self._frames_forwarded,
            batches_sent=self._batches_sent,
            frames_pending=len(self._buffer) + (successor.pending() if successor else 0),
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
        that was received (a successor's held frames follow the old connection's).
        """
        async with out:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._flush, out)
                    nursery.start_soon(self._supervise)
                    await self._subscribed_once.wait()
                    task_status.started()
            finally:
                with trio.move_on_after(DRAIN_TIMEOUT_S) as drain:
                    drain.shield = True
                    await self._drain(out)
                    if self._successor is not None:
                        await self._drain_held(out, self._successor)
                self._report_down(self._primary, "stopped")
        raise AssertionError("unreachable: the feed's tasks never return")

    def _report_up(self) -> None:
        self._up = True
        if self.status is not None:
            plan = self.plan
            for stream in plan.streams:
                self.status.stream_up(plan.market, stream, plan.connection_id)

    def _report_down(self, link: Link | None, reason: str | None = None) -> None:
        """The streams are no longer seen (if they were): ``link`` ended without a
        successor, or the feed stops."""
        if not self._up:
            return
        self._up = False
        if self.status is None:
            return
        if reason is None:
            failure = (link.replace or link.failure) if link is not None else None
            reason = _reason(failure or FeedError("connection ended"))
        last_ns = 0
        if self._last_frame_at is not None:  # trio's clock → the wall clock
            ago_s = max(0.0, trio.current_time() - self._last_frame_at)
            last_ns = time.time_ns() - int(ago_s * 1e9)
        plan = self.plan
        for stream in plan.streams:
            self.status.stream_down(plan.market, stream, plan.connection_id, reason, last_ns)

    async def _drain(self, out: trio.abc.SendChannel[FrameBatch]) -> None:
        limit = max(1, self.settings.max_frames_per_batch)
        while len(self._buffer):
            frames, received_ns, control = await self._buffer.take(limit)
            try:
                await out.send(
                    FrameBatch(
                        self.plan.market, self.plan.connection_id, frames, received_ns, control
                    )
                )
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            self._batches_sent += 1
            self._frames_forwarded += len(frames)

    async def _drain_held(self, out: trio.abc.SendChannel[FrameBatch], link: Link) -> None:
        """On shutdown mid-handover: the successor's held frames, after the old ones."""
        held = link.held
        if held is None or not len(held):
            return
        frames, received_ns, control = await held.take(len(held))
        if link.overlap is not None:
            dropped = link.overlap.duplicate_prefix(frames)
            del frames[:dropped], received_ns[:dropped]
            control = drop_prefix(control, dropped)
        limit = max(1, self.settings.max_frames_per_batch)
        market, connection = self.plan.market, self.plan.connection_id
        for part in chunks(frames, received_ns, control, limit):
            batch = FrameBatch(market, connection, *part)
            try:
                await out.send(batch)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            self._batches_sent += 1
            self._frames_forwarded += len(batch.frames)

    # -- batching ---------------------------------------------------------------------

    async def _flush(self, out: trio.abc.SendChannel[FrameBatch]) -> None:
        limit = max(1, self.settings.max_frames_per_batch)
        market, connection = self.plan.market, self.plan.connection_id
        while True:
            frames, received_ns, control = await self._buffer.take(limit)
            await out.send(FrameBatch(market, connection, frames, received_ns, control))
            self._batches_sent += 1
            self._frames_forwarded += len(frames)

    # -- supervision: reconnects and handovers --------------------------------------------

    def _notify(self) -> None:
        """Wake the supervisor: a link changed state."""
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_change(self, deadline: float = math.inf) -> None:
        with trio.move_on_at(deadline):
            await self._changed.wait()

    def _start_link(self, nursery: trio.Nursery, *, successor: bool = False) -> Link:
        self._links += 1
        if successor:
            held = FrameBuffer(self._capacity)
            link = Link(self._links, held, held=held, overlap=Overlap(2 * self._capacity))
        else:
            link = Link(self._links, self._buffer)
        nursery.start_soon(self._run_link, link)
        return link

    async def _run_link(self, link: Link) -> None:
        try:
            with link.scope:
                await self._session(link)
        except* RECONNECT_ON as group:
            link.failure = _first_leaf(group)
        finally:
            link.connected = False
            if self.record_control and link.connected_at is not None:
                self._record_closed(link)  # after its last frame, before anyone sees it done
            link.done.set()
            self._notify()

    def _record_closed(self, link: Link) -> None:
        """The ``closed`` marker of ``link``: its close code and reason, and who ended it."""
        code, reason = link.closed_with or (None, None)
        # The exchange closed it, or the network dropped it; else marketd ended it.
        dropped = isinstance(link.failure, ConnectionClosed | OSError)
        marker = closed_marker(code, reason, "exchange" if dropped else "marketd")
        link.buffer.append_control_nowait(marker, time.time_ns())

    async def _supervise(self) -> NoReturn:
        backoff = Backoff(policy_from_settings(self.settings.reconnect))
        async with trio.open_nursery() as nursery:
            link = self._primary = self._start_link(nursery)
            while True:
                while not link.done.is_set() and link.replace is None:
                    await self._wait_change()
                if link.done.is_set():
                    delay = self._count_end(backoff, link)
                    self._report_down(link)
                    await trio.sleep(delay)
                    link = self._start_link(nursery)
                else:
                    link = await self._hand_over(nursery, backoff, link)
                self._primary = link

    def _count_end(self, backoff: Backoff, link: Link) -> float:
        """Count and log the end of the primary ``link``; return the delay before the next."""
        failure = link.replace or link.failure or FeedError("connection ended")
        healthy_for = link.healthy_for(trio.current_time())
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
            connected_for_s=round(healthy_for, 3),
            attempt=backoff.attempt,
        )
        return delay

    async def _hand_over(self, nursery: trio.Nursery, backoff: Backoff, old: Link) -> Link:
        """Replace ``old`` make-before-break; return the promoted successor."""
        delay = self._count_end(backoff, old)
        started_at = trio.current_time()
        deadline = started_at + delay
        while True:
            while not old.done.is_set() and trio.current_time() < deadline:
                await self._wait_change(deadline)
            if old.done.is_set():
                # Gone before a successor was even started: a plain reconnect.
                self._report_down(old)
                await trio.sleep_until(deadline)
                return self._start_link(nursery)
            new = self._successor = self._start_link(nursery, successor=True)
            old.on_data = self._old_side(new)
            await self._wait_promotable(old, new)
            if old.done.is_set() and new.subscribed_at is None:
                self._report_down(old)  # gone before its successor could take over
            if not new.done.is_set() or old.done.is_set():
                break
            # The successor failed while the old connection still serves: try again.
            failure = new.failure or FeedError("successor ended")
            self._reconnects[_reason(failure)] += 1
            self._last_error = _describe(failure)
            delay = backoff.next_delay()
            self._log.warning(
                "feed.handover_retry",
                error=self._last_error,
                delay_s=round(delay, 3),
                held_frames_dropped=new.pending(),  # the old connection delivers them too
            )
            old.on_data = None
            self._successor = None
            deadline = trio.current_time() + delay
        proven = new.overlap is not None and new.overlap.proven
        if not old.done.is_set():
            old.retire()
        await old.done.wait()
        old.on_data = None
        dropped = await self._release_held(new)
        self._successor = None
        self.handovers += 1
        self.overlap_frames_dropped += dropped
        self._log.info(
            "feed.handover",
            proven=proven,
            overlap_s=round(trio.current_time() - started_at - delay, 3),
            overlap_frames_dropped=dropped,
            old_failure=_describe(old.failure) if old.failure else "",
        )
        return new

    async def _wait_promotable(self, old: Link, new: Link) -> None:
        """Wait until ``new`` may replace ``old`` (or one of them ended)."""
        while not (new.done.is_set() or old.done.is_set()):
            now = trio.current_time()
            deadline = math.inf
            if new.subscribed_at is not None:
                assert new.overlap is not None
                assert new.held is not None
                if new.overlap.proven or new.held.full:
                    return
                if new.first_data_at is not None:
                    deadline = new.first_data_at + HANDOVER_GRACE_S
                deadline = min(deadline, new.subscribed_at + HANDOVER_MAX_S)
                if now >= deadline:
                    return
            await self._wait_change(deadline)

    def _old_side(self, new: Link) -> Callable[[str], None]:
        overlap = new.overlap
        assert overlap is not None

        def on_old(frame: str) -> None:
            proven = overlap.proven
            overlap.on_old(frame)
            if overlap.proven and not proven:
                self._notify()

        return on_old

    def _new_side(self, new: Link) -> Callable[[str], None]:
        overlap = new.overlap
        assert overlap is not None

        def on_new(frame: str) -> None:
            if new.first_data_at is None:
                new.first_data_at = trio.current_time()
                self._notify()
            proven = overlap.proven
            overlap.on_new(frame)
            if overlap.proven and not proven:
                self._notify()

        return on_new

    async def _release_held(self, link: Link) -> int:
        """Move ``link``'s held frames behind the feed's, minus the overlap; forward its
        frames directly from now on. Returns how many held frames were duplicates."""
        held, main = link.held, self._buffer
        if held is None:
            return 0
        dropped = 0
        first = True
        while len(held):
            frames, received_ns, control = await held.take(len(held))
            if first and link.overlap is not None:
                dropped = link.overlap.duplicate_prefix(frames)
                del frames[:dropped], received_ns[:dropped]
                control = drop_prefix(control, dropped)
            first = False
            k = 0
            for i, (frame, ns) in enumerate(zip(frames, received_ns, strict=True)):
                while k < len(control) and control[k].at <= i:
                    main.append_control_nowait(control[k].text, control[k].received_ns)
                    k += 1
                while main.full:
                    await main.wait_space()
                main.append_nowait(frame, ns)
            for c in control[k:]:
                main.append_control_nowait(c.text, c.received_ns)
        # No checkpoint since `held` was seen empty: the reader now appends to `main`.
        link.buffer = main
        link.held = None
        link.on_data = None
        return dropped

    # -- one connection -------------------------------------------------------------------

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

    async def _session(self, link: Link) -> None:
        """One connection, from connect to the error that ends it — or to its retirement.

        trio-websocket's reader runs in the outer nursery and our tasks in an inner one,
        so that when one of ours ends the session (or the link is retired: the inner
        scope is cancelled) the reader still sees the peer's reply to our close frame.
        """
        plan, target = self.plan, self._target
        # The session's own tasks (watch, subscribe, read) run inside its span: intended.
        with span(
            "feed.session",
            connection=plan.connection_id,
            market=plan.market.value,
            streams=len(plan.streams),
            server=f"{target.host}:{target.port}",
            successor=link.held is not None,
        ):
            async with trio.open_nursery() as ws_nursery:
                try:
                    with span("feed.connect", tls=target.tls):
                        ws, stream = await self._connect(ws_nursery)
                    try:
                        self._on_connected(link)
                        connected_at = link.alive_at
                        rate = self.settings.messages_per_second(self.plan.market)
                        messages = self.plan.subscribe_messages(rate)
                        async with trio.open_nursery() as nursery:
                            link.inner = nursery.cancel_scope
                            if link.retiring:
                                nursery.cancel_scope.cancel()
                            nursery.start_soon(self._watch, link, connected_at)
                            nursery.start_soon(self._subscribe, link, ws, messages, connected_at)
                            await self._read(link, ws)
                    finally:
                        link.connected = False
                        await self._close(ws, stream)
                        if (closed := ws.closed) is not None:
                            link.closed_with = (closed.code, closed.reason)
                finally:
                    ws_nursery.cancel_scope.cancel()

    def _on_connected(self, link: Link) -> None:
        self._connects += 1
        link.connected = True
        link.connected_at = link.alive_at = trio.current_time()
        if self.record_control:
            link.buffer.append_control_nowait(connected_marker(self.plan.url), time.time_ns())
        self._log.info(
            "feed.connected",
            url=self.plan.url[:200],
            streams=len(self.plan.streams),
            connects=self._connects,
            successor=link.held is not None,
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
        link: Link,
        ws: WebSocketConnection,
        messages: tuple[SubscribeMessage, ...],
        connected_at: float,
    ) -> None:
        timeout = self.settings.connect_timeout_s
        with span("feed.subscribe", messages=len(messages), streams=len(self.plan.streams)):
            for message in messages:
                await trio.sleep_until(connected_at + message.at_s)
                acked = link.acks[message.id] = trio.Event()
                await ws.send_message(self.adapter.subscribe_message(message.id, message.params))
                with trio.move_on_after(timeout):
                    await acked.wait()
                if not acked.is_set():
                    raise FeedTimeout(
                        f"SUBSCRIBE id {message.id} was not acknowledged within {timeout} s"
                    )
        link.subscribed_at = trio.current_time()
        if link.overlap is not None and link.held is not None:
            # A successor: from now on its frames are proof candidates of the overlap.
            link.on_data = self._new_side(link)
        self._log.info("feed.subscribed", streams=len(self.plan.streams), messages=len(messages))
        if not self._up:  # a successor subscribes while its predecessor still serves
            self._report_up()
        self._subscribed_once.set()
        self._notify()

    def _request_replace(self, link: Link, reason: BaseException) -> None:
        if link.replace is None:
            link.replace = reason
            self._notify()

    async def _watch(self, link: Link, connected_at: float) -> NoReturn:
        """Ask for a replacement at ``rotate_after_s``; raise :class:`StaleFeed`."""
        stale_after = self.settings.stale_after_s
        rotate_at = connected_at + self.settings.rotate_after_s
        while True:
            now = trio.current_time()
            if now >= rotate_at and link.replace is None:
                self._request_replace(
                    link, _Rotate(f"connection is {self.settings.rotate_after_s} s old")
                )
            stale_at = link.stale_at(stale_after)
            if now >= stale_at:
                raise StaleFeed(f"no frame for {stale_after} s")
            wake = min(stale_at, now + stale_after)
            if link.replace is None:
                wake = min(wake, rotate_at)
            await trio.sleep_until(wake)

    async def _read(self, link: Link, ws: WebSocketConnection) -> NoReturn:
        receive_nowait = ws._recv_channel.receive_nowait
        queued: collections.deque[str | bytes] = collections.deque()
        try:
            await self._read_loop(link, ws.get_message, receive_nowait, queued)
        finally:
            # Messages already read off the socket are data received: keep them even when
            # the connection dropped, is retired, or the feed is being stopped.
            self._salvage(link, queued, receive_nowait)

    def _salvage(
        self,
        link: Link,
        queued: collections.deque[str | bytes],
        receive_nowait: Callable[[], str | bytes],
    ) -> None:
        with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            while True:
                queued.append(receive_nowait())
        now_ns = time.time_ns()
        buffer, on_data = link.buffer, link.on_data
        parse_control = self.adapter.parse_control
        for message in queued:
            frame = message if isinstance(message, str) else message.decode("utf-8", "replace")
            if parse_control(frame) is None:
                self._frames_received += 1
                buffer.append_nowait(frame, now_ns)
                if on_data is not None:
                    on_data(frame)
            elif self.record_control:
                buffer.append_control_nowait(frame, now_ns)
        queued.clear()

    async def _read_loop(
        self,
        link: Link,
        get_message: Callable[[], Awaitable[str | bytes]],
        receive_nowait: Callable[[], str | bytes],
        queued: collections.deque[str | bytes],
    ) -> NoReturn:
        busy = False
        parse_control = self.adapter.parse_control
        current_time, time_ns = trio.current_time, time.time_ns
        while True:
            if queued:
                message = queued.popleft()
            elif busy:
                # Under load, let trio-websocket queue a millisecond of messages and take
                # them in one go, instead of a task switch per message.
                await trio.sleep(_BATCH_WAIT_S)
                try:
                    while len(queued) < _DRAIN_MAX:
                        queued.append(receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    pass
                busy = len(queued) > 1
                if queued:
                    # They were all read off the socket by now: one liveness stamp for
                    # the lot (the messages are taken without a checkpoint in between).
                    self._last_frame_at = link.alive_at = current_time()
                continue
            else:
                message = await get_message()
                busy = True
                self._last_frame_at = link.alive_at = current_time()
            received_ns = time_ns()
            self._frames_received += 1
            frame = message if isinstance(message, str) else message.decode("utf-8", "replace")
            control = parse_control(frame)
            if control is None:
                buffer = link.buffer
                if buffer.full:
                    # Waiting on downstream is not staleness of the exchange.
                    link.alive_at = math.inf
                    self._notify()  # a successor's full held buffer: time to promote it
                    # The buffer may change while we wait (a successor is promoted).
                    while (buffer := link.buffer).full:
                        await buffer.wait_space()
                    self._last_frame_at = link.alive_at = current_time()
                buffer.append_nowait(frame, received_ns)
                on_data = link.on_data
                if on_data is not None:
                    on_data(frame)
                continue
            self._control_frames += 1
            if self.record_control:
                link.buffer.append_control_nowait(frame, received_ns)
            if isinstance(control, Ack):
                event = link.acks.pop(control.id, None)
                if event is not None:
                    event.set()
            elif isinstance(control, ErrorReply):
                raise FeedError(
                    f"the exchange rejected request id {control.id}: {control.message}; "
                    "check the subscribed stream names"
                )
            else:
                # Make before break: keep reading while a successor connects.
                self._request_replace(link, ServerShutdown("the exchange announced serverShutdown"))
