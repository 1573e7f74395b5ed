"""Two changes to trio-websocket 0.12.2's reader: a race fix and a hot-path fix.

**A ping that arrives while we are closing.**

After ``aclose()`` sends our Close frame, wsproto is in ``LOCAL_CLOSING`` and refuses to
send anything else; if the peer's Ping was already on the wire, trio-websocket's reader
task answers it with a Pong, wsproto raises ``LocalProtocolError``, and the error escapes
the nursery that runs the reader — a clean close turns into a crash
(python-trio/trio-websocket#184, fix proposed in #198, not released).

RFC 6455 §5.5.2 only requires a Pong until a Close frame is received, and none is needed
after we sent ours: the connection is ending. :func:`install` makes the reader skip the
Pong unless the connection is open.

**A task switch per message.** The reader hands each complete message to its queue with
``await send(...)``, a trio checkpoint: every WebSocket message cost a round of the
scheduler, about half of the daemon's CPU per message at 15,000 messages/s. The patched
handler puts a whole message (one wsproto event) on the queue with ``send_nowait`` and
only awaits when the queue is full (backpressure as before) or the message is
fragmented (the original path). Order and bounds are unchanged; the reader still
checkpoints once per socket read.

Both our client (the feed) and our server (the fake exchange) call :func:`install` at
import; it is idempotent.
"""

from __future__ import annotations

from typing import Any

import trio
from trio_websocket import WebSocketConnection
from wsproto.connection import ConnectionState

_original = WebSocketConnection._handle_ping_event
_original_message = WebSocketConnection._handle_message_event


async def _handle_ping_event(self: WebSocketConnection, event: Any) -> None:
    # No await between this check and wsproto's send in the original: the state cannot
    # change in between.
    if self._wsproto.state is not ConnectionState.OPEN:
        return
    await _original(self, event)


async def _handle_message_event(self: WebSocketConnection, event: Any) -> None:
    # A whole message in one event, within the size limit: what the original would send.
    if event.message_finished and not self._message_parts:
        data = event.data
        if len(data) <= self._max_message_size:
            try:
                self._send_channel.send_nowait(data)
            except trio.WouldBlock:
                pass  # the queue is full: wait for room the original way
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return  # our side closed the queue: dropped, as the original does
            else:
                return
    await _original_message(self, event)


def install() -> None:
    """Patch :class:`WebSocketConnection` (once; later calls do nothing)."""
    WebSocketConnection._handle_ping_event = _handle_ping_event  # type: ignore[method-assign]
    WebSocketConnection._handle_message_event = _handle_message_event  # type: ignore[method-assign]
