"""The fan-out writer: what the hub queues for the ``/ws/alerts`` clients, written straight to
their sockets by one task.

Through Quart and Hypercorn a message to one client costs a task wake-up, the ASGI and
wsproto layers and the scheduler round trips around the socket write: 45-60 µs of CPU
(on the 2-core machine of ``bench/bench_fanout.py``), so 1,000 clients at 50 alerts/s
would need 2.5 cores. :class:`Fanout` instead visits the clients in turn (one task, no
wake-up per client), takes what is queued for each, frames it
(:func:`marketd.gateway.frames.text_frames`: built once per pass for all the clients at
the same position in the hub's log, which is all of them unless some are behind, see
:meth:`marketd.gateway.livelog.ClientQueue.take_span`) and writes it with one
non-blocking ``write``: about 1.5 µs of Python a client besides the system call, which is
most of the cost on loopback TCP (6-9 µs of CPU a write on that machine: the receiving
side's TCP work is done in the writer's call). A client that was behind gets
what it missed in one write (alerts batched as ``{"type": "alerts"}``, as before), so a
pass costs the same however many alerts it carries, and a writer short of CPU falls
behind by a pass or two, not by a queue. The messages are the ones Quart would have sent
(the same JSON text).

How it stays correct:

* Each write is whole frames, made while nothing else writes to that connection:
  Hypercorn writes (the handshake, pongs, close frames, what the handler sends through
  Quart) under its connection's send lock, and the writer writes only while that lock is
  free, in one synchronous step. When a connection is attached, the lock is replaced by a
  semaphore (Hypercorn's ``async with`` takes it alike) that any task may release: after a
  partial write the writer leaves it held and the connection's own task writes the rest
  of the frame, then releases it, so nothing comes between the two halves.
* A client whose socket does not take everything at once (it reads slowly, or not at all)
  is handed over to its own task (:meth:`Outlet.handed_over`), which writes the rest and
  then whatever is queued through Quart, as every message went before, and gives the
  client back to the writer once its queue is empty. Meanwhile the writer skips it: a
  slow client costs the others one failed write. If it stays slow its queue overflows and
  the hub drops it (``slow``), or the kernel cuts it (``send_timeout``).
* Per client, messages stay in queue order: either the writer or the client's own task
  takes from its queue, never both (:attr:`Outlet.own_task`).
* Only what this was checked against takes the direct path (:func:`direct_socket`):
  Hypercorn 0.18's trio worker serving HTTP/1.1 on a plain TCP socket. Anything else
  (TLS, HTTP/2, another Hypercorn version) sends through Quart, one task per client.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any, Final, TypeAlias, cast

import attrs
import trio
from wsproto.connection import ConnectionState

from marketd.gateway.frames import text_frames
from marketd.gateway.hub import AlertHub, HubClient, live_messages
from marketd.gateway.livelog import Queued

VERIFIED_HYPERCORN: Final = ("0.18.",)
"""Hypercorn versions whose send path :func:`direct_socket` was checked against."""

YIELD_EVERY: Final = 128
"""Clients written between two checkpoints of a pass (other tasks run in between)."""

TAKE_LIMIT: Final = 4096
"""Most queued messages taken for one client in one pass."""


def _hypercorn_version() -> str:
    try:
        return importlib.metadata.version("hypercorn")
    except importlib.metadata.PackageNotFoundError:
        return ""


_VERIFIED = _hypercorn_version().startswith(VERIFIED_HYPERCORN)


@attrs.define(eq=False)
class DirectSocket:
    """The socket of one Hypercorn WebSocket connection, written to directly."""

    stream: trio.SocketStream
    lock: trio.Semaphore  # Hypercorn's send lock (see direct_socket)
    ws_stream: Any  # hypercorn.protocol.ws_stream.WSStream

    def open(self) -> bool:
        """Data may be sent: neither side has started the closing handshake."""
        ws = self.ws_stream
        return not ws.closed and ws.connection.state is ConnectionState.OPEN

    def try_write(self, data: bytes) -> int | None:
        """Write what the socket takes of ``data`` now, without waiting.

        None: nothing was written (another write is in progress, the connection is closing,
        or it failed). Otherwise the bytes written; when fewer than ``len(data)``, the lock
        stays held and :meth:`write_rest` must write the rest.
        """
        ws = self.ws_stream
        if self.lock.value == 0 or ws.closed or ws.connection.state is not ConnectionState.OPEN:
            return None
        fd = self.stream.socket.fileno()
        if fd < 0:  # closed (and its number possibly reused): never write to it
            return None
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError:  # reset, or shut down: Hypercorn's reader sees it too
            return None
        if written < len(data):
            self.lock.acquire_nowait()
        return written

    async def write_rest(self, rest: memoryview) -> None:
        """Write the rest of a partial :meth:`try_write`, then release the lock. Shielded,
        as Hypercorn writes: a client that stopped reading is cut by the kernel's send
        timeout (``TCP_USER_TIMEOUT``, :func:`marketd.obs.web.listening_socket`)."""
        try:
            with trio.CancelScope(shield=True):
                await self.stream.send_all(rest)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the connection is gone: Hypercorn's reader ends it
        finally:
            self.lock.release()


def direct_socket(websocket: object) -> DirectSocket | None:
    """The direct path to the connection of ``websocket`` (Quart's, accepted), or None
    where it is not known to be safe.

    It follows Quart's send callable to Hypercorn's ``WSStream.app_send``, then the
    ``H11Protocol`` to the trio ``TCPServer``, whose ``send_lock`` guards every write to
    the socket. That lock is replaced by a :class:`trio.Semaphore` of one, which Hypercorn
    takes the same way and which the task that did not take it may release (see the
    module's notes); this happens only while nobody holds or waits for the lock.
    """
    if not _VERIFIED:
        return None
    try:
        from hypercorn.protocol.h11 import H11Protocol
        from hypercorn.protocol.ws_stream import WSStream
        from hypercorn.trio.tcp_server import TCPServer

        asgi_send = websocket._send.args[0]  # type: ignore[attr-defined]
        ws_stream = asgi_send.__self__
        h11 = ws_stream.send.__self__
        server = h11.send.__self__
    except (ImportError, AttributeError, IndexError, TypeError):
        return None
    if not (
        isinstance(ws_stream, WSStream)
        and isinstance(h11, H11Protocol)
        and isinstance(server, TCPServer)
        and asgi_send == ws_stream.app_send
        and h11.send == server.protocol_send
    ):
        return None
    stream, lock = getattr(server, "stream", None), getattr(server, "send_lock", None)
    if type(stream) is not trio.SocketStream or type(lock) is not trio.Lock:
        return None
    if lock.locked() or lock.statistics().tasks_waiting:
        return None
    direct = DirectSocket(stream, trio.Semaphore(1, max_value=1), ws_stream)
    if not direct.open():
        return None
    server.send_lock = direct.lock  # type: ignore[assignment] # taken with `async with` only
    return direct


class Outlet:
    """One client of the writer: its queue and its socket; and, while its own task writes
    for it (:attr:`own_task`), what the writer handed over."""

    def __init__(self, client: HubClient, direct: DirectSocket) -> None:
        self.client = client
        self.queue = client.messages
        self.direct = direct
        self.attached = True
        self.own_task = False
        # Handed over: the rest of a partial write (the lock held), or messages taken from
        # the queue and not written; and how many alerts they carry.
        self.rest: memoryview | None = None
        self.unsent: list[str] = []
        self.alerts = 0
        self._woken = trio.Event()

    def hand_over(self, rest: memoryview | None, unsent: list[str], alerts: int) -> None:
        self.own_task = True
        self.rest, self.unsent, self.alerts = rest, unsent, alerts
        self._woken.set()

    async def handed_over(self) -> bool:
        """Wait until the writer hands this client over to its own task: True; or until
        it is detached (the writer stopped): False, and its task writes from then on."""
        await self._woken.wait()
        self._woken = trio.Event()
        return self.attached

    def detach(self) -> None:
        self.attached = False
        self.own_task = True
        self._woken.set()


_Frames: TypeAlias = tuple[bytes, list[str], int]
"""Messages as the writer writes them: framed, as text (for a client's own task), and
how many alerts they carry."""


def _frames(items: list[Queued]) -> _Frames:
    messages, alerts = live_messages(items)
    return text_frames(messages), messages, alerts


@attrs.define
class FanoutStatistics:
    clients: int  # attached (on the direct path)
    passes: int
    writes: int  # direct writes that took everything
    handovers: int  # clients handed to their own task (a partial or failed write)
    partial: int  # of those, after a partial write (its own task wrote the rest)


class Fanout:
    """The writer task of one gateway (:meth:`serve`) and the clients attached to it."""

    def __init__(self, hub: AlertHub) -> None:
        self.hub = hub
        self._outlets: dict[Outlet, None] = {}  # in attach order
        self._serving = False
        self._turn = 0
        self._passes = 0
        self._writes = 0
        self._handovers = 0
        self._partial = 0

    def attach(self, client: HubClient, websocket: object) -> Outlet | None:
        """Serve ``client`` through the writer from now on (after its replay was sent):
        its Outlet, or None (the writer is not running, or the connection has no direct
        path) and the connection's own task sends everything."""
        if not self._serving:
            return None
        direct = direct_socket(websocket)
        if direct is None:
            return None
        outlet = Outlet(client, direct)
        self._outlets[outlet] = None
        if len(client.messages):
            self.hub.mark_queued()  # what was queued before it was attached
        return outlet

    def detach(self, outlet: Outlet) -> None:
        self._outlets.pop(outlet, None)
        outlet.detach()

    def give_back(self, outlet: Outlet) -> None:
        """The client's own task has written all it was handed and emptied the queue."""
        outlet.own_task = not outlet.attached
        self.hub.mark_queued()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write what the hub queues for attached clients (forever; cancel to stop: the
        clients attached go back to their own tasks)."""
        self._serving = True
        try:
            task_status.started()
            while True:
                await self.hub.wait_queued()
                await self._pass()
        finally:
            self._serving = False
            for outlet in list(self._outlets):
                self.detach(outlet)

    async def _pass(self) -> None:
        self._passes += 1
        outlets = list(self._outlets)
        if not outlets:
            return
        # Start each pass one client further, so that no client is always served last.
        self._turn = (self._turn + 1) % len(outlets)
        order = outlets[self._turn :] + outlets[: self._turn]
        log = self.hub.log
        # Frames built once per pass: for the clients at one span of the log (all of them,
        # unless some are behind), and for the same messages read differently (a summary).
        shared: dict[tuple[int, int], _Frames] = {}
        own: dict[tuple[Queued, ...], _Frames] = {}
        for start in range(0, len(order), YIELD_EVERY):
            if start:
                await trio.lowlevel.checkpoint()
            delivered = writes = 0
            for outlet in order[start : start + YIELD_EVERY]:
                if outlet.own_task:  # also once detached
                    continue
                queue = outlet.queue
                span = queue.take_span(TAKE_LIMIT)
                if span is not None:
                    first, stop = span
                    if first == stop:
                        continue
                    if stop - first == TAKE_LIMIT:
                        self.hub.mark_queued()  # more is queued: another pass
                    frames = shared.get(span)
                    if frames is None:
                        items = cast("list[Queued]", log.entries(first, stop))  # no Summary
                        frames = shared[span] = _frames(items)
                else:
                    items = queue.take(TAKE_LIMIT)
                    if not items:
                        continue
                    if len(items) == TAKE_LIMIT:
                        self.hub.mark_queued()
                    key = tuple(items)
                    frames = own.get(key)
                    if frames is None:
                        frames = own[key] = _frames(items)
                data = frames[0]
                written = outlet.direct.try_write(data)
                if written == len(data):
                    writes += 1
                    delivered += frames[2]
                else:
                    self._hand_over(outlet, frames, written)
            self._writes += writes
            self.hub.record_delivered(delivered)

    def _hand_over(self, outlet: Outlet, frames: _Frames, written: int | None) -> None:
        """Give the client to its own task with what the write did not take."""
        data, messages, alerts = frames
        self._handovers += 1
        if written:
            self._partial += 1
            outlet.hand_over(memoryview(data)[written:], [], alerts)
        else:
            outlet.hand_over(None, messages, alerts)

    def statistics(self) -> FanoutStatistics:
        return FanoutStatistics(
            len(self._outlets), self._passes, self._writes, self._handovers, self._partial
        )
