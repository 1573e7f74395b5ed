"""A fix for a race in trio-websocket 0.12.2: a ping that arrives while we are closing.

After ``aclose()`` sends our Close frame, wsproto is in ``LOCAL_CLOSING`` and refuses to
send anything else; if the peer's Ping was already on the wire, trio-websocket's reader
task answers it with a Pong, wsproto raises ``LocalProtocolError``, and the error escapes
the nursery that runs the reader — a clean close turns into a crash
(python-trio/trio-websocket#184, fix proposed in #198, not released).

RFC 6455 §5.5.2 only requires a Pong until a Close frame is received, and none is needed
after we sent ours: the connection is ending. :func:`install` makes the reader skip the
Pong unless the connection is open. Both our client (the feed) and our server (the fake
exchange) install it at import; it is idempotent.
"""

from __future__ import annotations

from typing import Any

from trio_websocket import WebSocketConnection
from wsproto.connection import ConnectionState

_original = WebSocketConnection._handle_ping_event


async def _handle_ping_event(self: WebSocketConnection, event: Any) -> None:
    # No await between this check and wsproto's send in the original: the state cannot
    # change in between.
    if self._wsproto.state is not ConnectionState.OPEN:
        return
    await _original(self, event)


def install() -> None:
    """Patch :class:`WebSocketConnection` (once; later calls do nothing)."""
    WebSocketConnection._handle_ping_event = _handle_ping_event  # type: ignore[method-assign]
