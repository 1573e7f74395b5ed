"""A tiny HTTP/1.1 server on trio + h11: enough for the fake's REST and control endpoints.

Keep-alive is supported; request bodies are capped; each response is complete (no
streaming). The handler is called with a parsed ``HttpRequest`` and returns ``HttpResponse``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlsplit

import attrs
import h11
import trio

MAX_BODY = 1 << 20
READ_TIMEOUT = 30.0
log = logging.getLogger(__name__)


@attrs.frozen
class HttpRequest:
    method: str
    path: str
    query: dict[str, str]
    body: bytes


@attrs.frozen
class HttpResponse:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json;charset=UTF-8"


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


async def serve_http11(
    handler: Handler,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve forever; ``task_status.started(port)`` once listening (port 0 picks one)."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]

    async def on_connection(stream: trio.SocketStream) -> None:
        async with stream:
            await _serve_connection(handler, stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, on_connection, listeners)
        task_status.started(bound)
        await trio.sleep_forever()


async def _receive_event(
    conn: h11.Connection, stream: trio.SocketStream
) -> h11.Event | type[h11.PAUSED]:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]
        with trio.fail_after(READ_TIMEOUT):
            data = await stream.receive_some(65536)
        conn.receive_data(data)


async def _send(conn: h11.Connection, stream: trio.SocketStream, event: h11.Event) -> None:
    data = conn.send(event)
    if data:
        await stream.send_all(data)


async def _serve_connection(handler: Handler, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = await _receive_event(conn, stream)
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if not isinstance(event, h11.Request):
                return
            body = bytearray()
            while True:
                part = await _receive_event(conn, stream)
                if isinstance(part, h11.Data):
                    body += part.data
                    if len(body) > MAX_BODY:
                        await _respond(conn, stream, HttpResponse(413, b'{"error":"too large"}'))
                        return
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:
                    return
            target = urlsplit(event.target.decode("latin-1"))
            request = HttpRequest(
                event.method.decode("ascii"),
                target.path,
                dict(parse_qsl(target.query)),
                bytes(body),
            )
            try:
                response = await handler(request)
            except Exception:
                log.exception("fake exchange HTTP handler failed")
                response = HttpResponse(500, b'{"code":-1000,"msg":"internal error"}')
            await _respond(conn, stream, response)
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (h11.RemoteProtocolError, trio.TooSlowError, trio.BrokenResourceError):
        return
    except h11.LocalProtocolError:
        return


async def _respond(conn: h11.Connection, stream: trio.SocketStream, response: HttpResponse) -> None:
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        *response.headers,
    ]
    await _send(conn, stream, h11.Response(status_code=response.status, headers=headers))
    if response.body:
        await _send(conn, stream, h11.Data(data=response.body))
    await _send(conn, stream, h11.EndOfMessage())
