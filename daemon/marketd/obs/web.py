"""The HTTP surface: Quart-Trio app on Hypercorn's trio worker, inside the supervisor.

Serves ``/metrics`` (Prometheus), ``/healthz`` (liveness: the event loop answers) and
``/readyz`` (200 only when every required component is ready, else 503 with JSON); the
daemon adds ``/api/status`` (:mod:`marketd.obs.status`) and, with the gateway role, the UI
and its API (:mod:`marketd.gateway`).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import attrs
import orjson
import prometheus_client
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart import Response
from quart_trio import QuartTrio

Readiness = Callable[[], tuple[bool, dict[str, Any]]]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@attrs.frozen
class Probes:
    """What a process serves beside its own state: the parent of shards adds its workers'
    to ``/metrics`` (``exposition``: own text → served text), ``/readyz`` (``readiness``:
    own answer → served answer) and ``/api/status`` (``status``: own body → served)."""

    exposition: Callable[[bytes], Awaitable[bytes]]
    readiness: Callable[[tuple[bool, dict[str, Any]]], tuple[bool, dict[str, Any]]]
    status: Callable[[dict[str, Any]], dict[str, Any]]


def create_app(
    readiness: Readiness,
    registry: prometheus_client.CollectorRegistry | None = None,
    *,
    exposition: Callable[[bytes], Awaitable[bytes]] | None = None,
) -> QuartTrio:
    """The probes' app: ``/metrics`` (``registry``'s samples, passed through
    ``exposition`` when given: the parent of shards adds its workers'), ``/healthz``,
    ``/readyz``."""
    app = QuartTrio("marketd")
    reg = registry or prometheus_client.REGISTRY

    @app.get("/metrics")
    async def metrics() -> Response:
        body = prometheus_client.generate_latest(reg)
        if exposition is not None:
            body = await exposition(body)
        return Response(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', content_type="application/json")

    @app.get("/readyz")
    async def readyz() -> Response:
        ready, detail = readiness()
        body = orjson.dumps({"ready": ready, **detail}, default=str)
        return Response(body, status=200 if ready else 503, content_type="application/json")

    return app


class ShieldFinalSend:
    """ASGI middleware for hypercorn issue 330 (STACK.md pitfall 1).

    Quart-Trio cancels the handler when the client half-closes, which interrupts
    Hypercorn while it sends the last body chunk of a ``Connection: close`` response;
    shielding that final send (for at most a few seconds) lets the response complete.
    """

    def __init__(self, app: ASGIApp, timeout: float = 5.0) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def shielded_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                with trio.move_on_after(self.timeout) as scope_:
                    scope_.shield = True
                    await send(message)
                return
            await send(message)

        await self.app(scope, receive, shielded_send)


SEND_TIMEOUT_S = 15.0
"""Default bound on a stalled client (see :func:`listening_socket`)."""


def listening_socket(listen: str, send_timeout_s: float = SEND_TIMEOUT_S) -> socket.socket:
    """A bound TCP socket for ``listen`` (host:port, IPv6 as [address]:port).

    It carries ``TCP_USER_TIMEOUT`` (inherited by accepted connections): the kernel
    aborts a connection whose sent data stays unacknowledged, or whose peer keeps a zero
    receive window, for ``send_timeout_s``. Hypercorn's trio worker writes in a shielded
    scope with no timeout, so without this a client that stops reading (a stuck browser
    tab on /ws/alerts) would hold its handler, and the server's shutdown, forever.
    """
    host, _, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT") and send_timeout_s > 0:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(send_timeout_s * 1000))
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_http(
    app: QuartTrio,
    listen: str,
    shutdown: trio.Event,
    *,
    send_timeout_s: float = SEND_TIMEOUT_S,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``listen`` (host:port) until ``shutdown`` is set.

    ``task_status.started`` receives the bound addresses (useful with port 0). A client
    that stops reading is cut after ``send_timeout_s`` (:func:`listening_socket`).
    """
    try:
        sock = listening_socket(listen, send_timeout_s)
    except (OSError, UnicodeError) as exc:  # in use, no such host: one line, not a trace
        from marketd.errors import ListenError

        host = listen.rpartition(":")[0].removeprefix("[").removesuffix("]")
        change = "--listen (marketd demo) or http.listen (MARKETD_HTTP__LISTEN)"
        raise ListenError.bind_failed(listen, exc, host=host, change=change) from exc
    config = HypercornConfig()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 2.0
    await hypercorn_serve(
        ShieldFinalSend(app),  # type: ignore[arg-type]
        config,
        shutdown_trigger=shutdown.wait,
        task_status=task_status,
    )
