"""Helpers for the gateway tests: a served app on 127.0.0.1:0, WebSocket clients, alerts,
and a restartable server on a fixed port for the browser tests."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import attrs
import prometheus_client
import trio
import trio_websocket
from kit.net import free_port

from marketd.alerts.model import Alert, Direction
from marketd.config.alerts import GatewaySettings, RuleSettings
from marketd.gateway import AlertHub, Gateway, install_gateway
from marketd.obs.metrics import StatisticsCollector
from marketd.obs.web import create_app, serve_http

_seq = itertools.count(1)


def make_alert(
    symbol: str = "BTCUSDT",
    direction: Direction = Direction.UP,
    change_pct: float = 2.57,
    *,
    price: str = "65432.10",
    base_price: str = "63800.00",
    at_ms: int | None = None,
    market: str = "usdm",
) -> Alert:
    n = next(_seq)
    at = at_ms if at_ms is not None else 1_760_000_000_000 + n * 1000
    return Alert(
        id=f"{symbol}-{market}-default-{n}",
        symbol=symbol,
        market=market,
        rule="default",
        direction=direction,
        change_pct=change_pct,
        price=price,
        price_time_ms=at,
        base_price=base_price,
        base_time_ms=at - 45_000,
        detected_at_ms=at + 3,
    )


class MemoryRules:
    """An in-memory rules store with the detector store's contract."""

    def __init__(self, rules: Sequence[RuleSettings] = (RuleSettings(),)) -> None:
        self._rules = tuple(rules)
        self.replaced = 0

    def rules(self) -> tuple[RuleSettings, ...]:
        return self._rules

    def replace(self, raw: object) -> tuple[RuleSettings, ...]:
        if not isinstance(raw, list) or not raw:
            raise ValueError("rules must be a non-empty list")
        rules = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise ValueError(f"rules[{i}] must be an object")  # noqa: TRY004 (the contract)
            try:
                rules.append(RuleSettings(**item))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"rules[{i}]: {exc}") from None
        self._rules = tuple(rules)
        self.replaced += 1
        return self._rules


@attrs.define
class Served:
    url: str  # http://127.0.0.1:PORT
    host: str
    port: int
    hub: AlertHub
    gateway: Gateway
    shutdown: trio.Event
    registry: prometheus_client.CollectorRegistry

    def metrics_text(self) -> str:
        return prometheus_client.generate_latest(self.registry).decode()


@contextlib.asynccontextmanager
async def open_gateway(
    settings: GatewaySettings | None = None,
    *,
    hub: AlertHub | None = None,
    rules: MemoryRules | None = None,
    rules_elsewhere: bool = False,
    listen: str = "127.0.0.1:0",
    send_timeout_s: float = 15.0,
    state_dir: str | None = None,
) -> AsyncIterator[Served]:
    """Serve create_app() + install_gateway() with Hypercorn's trio worker until the block
    ends; then set the shutdown event and wait for the server to stop. ``rules_elsewhere``
    serves it as a gateway-only process does: no rules store, the detector has them.
    ``state_dir``: where the mutes are kept (None: in memory)."""
    settings = settings or GatewaySettings()
    hub = hub or AlertHub(
        history=settings.history, replay=settings.replay, client_queue=settings.client_queue
    )
    registry = prometheus_client.CollectorRegistry()
    app = create_app(lambda: (True, {}), registry)
    shutdown = trio.Event()
    store = None if rules_elsewhere else rules or MemoryRules()
    gateway = install_gateway(
        app, hub, store, settings, shutdown, rules_elsewhere=rules_elsewhere, state_dir=state_dir
    )
    collector = StatisticsCollector()
    collector.add(gateway.metrics)
    registry.register(collector)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            functools.partial(serve_http, send_timeout_s=send_timeout_s), app, listen, shutdown
        )
        address = binds[0].removeprefix("http://")
        host, _, port = address.rpartition(":")
        try:
            yield Served(
                url=f"http://{address}",
                host=host,
                port=int(port),
                hub=hub,
                gateway=gateway,
                shutdown=shutdown,
                registry=registry,
            )
        finally:
            shutdown.set()


class Address(Protocol):
    """Where a gateway listens: a :class:`Served` app, or a ``marketd run`` process."""

    host: str
    port: int


@contextlib.asynccontextmanager
async def open_ws(
    served: Address,
    *,
    origin: str | None = None,
    path: str = "/ws/alerts",
    rcvbuf: int | None = None,
    message_queue_size: int = 1024,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A WebSocket client whose TCP stream we own (STACK.md pitfall 4)."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    stream = trio.SocketStream(sock)
    try:
        await sock.connect((served.host, served.port))
        headers = [] if origin is None else [(b"Origin", origin.encode())]
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery,
                stream,
                f"{served.host}:{served.port}",
                path,
                extra_headers=headers,
                message_queue_size=message_queue_size,
            )
            try:
                yield ws
            finally:
                with trio.move_on_after(2) as cleanup:
                    cleanup.shield = True
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await stream.aclose()


async def receive_json(ws: trio_websocket.WebSocketConnection, wait_s: float = 5.0) -> Any:
    with trio.fail_after(wait_s):
        return json.loads(await ws.get_message())


async def http(
    served: Served,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    wait_s: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """A minimal HTTP/1.1 request over trio (no thread, no extra dependency)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {served.host}:{served.port}", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    with trio.fail_after(wait_s):
        stream = await trio.open_tcp_stream(served.host, served.port)
        async with stream:
            await stream.send_all(request)
            raw = bytearray()
            while chunk := await stream.receive_some(65536):
                raw += chunk
    head, _, payload = bytes(raw).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    if parsed.get("transfer-encoding") == "chunked":
        payload = _unchunk(payload)
    return int(status_line.split()[1]), parsed, payload


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)


TOKEN = "browser-test-token"


@attrs.define
class Server:
    """A gateway on a fixed port that the test can stop and start again (same hub)."""

    nursery: trio.Nursery
    hub: AlertHub
    settings: GatewaySettings
    rules: MemoryRules
    port: int
    state_dir: str | None = None
    served: Served | None = None
    _stop: trio.Event | None = None
    _stopped: trio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._stop, self._stopped = trio.Event(), trio.Event()
        self.served = await self.nursery.start(self._run, self._stop, self._stopped)

    async def stop(self) -> None:
        assert self._stop is not None
        assert self._stopped is not None
        self._stop.set()
        await self._stopped.wait()

    async def _run(
        self, stop: trio.Event, stopped: trio.Event, *, task_status: trio.TaskStatus[Served]
    ) -> None:
        async with open_gateway(
            self.settings, hub=self.hub, rules=self.rules, listen=f"127.0.0.1:{self.port}",
            state_dir=self.state_dir,
        ) as served:  # fmt: skip
            task_status.started(served)
            await stop.wait()
        stopped.set()

    def publish(self, *alerts: Alert) -> None:
        """From the browser thread: publish into the hub on the trio loop."""
        trio.from_thread.run_sync(self.hub.publish, list(alerts))


@contextlib.asynccontextmanager
async def running_server(
    settings: GatewaySettings | None = None, *, state_dir: str | None = None
) -> AsyncIterator[Server]:
    """A gateway for browser tests (its API token is ``TOKEN``, unless ``settings``)."""
    settings = settings or GatewaySettings(api_token=TOKEN)
    hub = AlertHub(history=settings.history, replay=settings.replay, client_queue=64)
    async with trio.open_nursery() as nursery:
        port = free_port()
        server = Server(nursery, hub, settings, MemoryRules(), port, state_dir=state_dir)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
