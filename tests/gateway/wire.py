"""Clients for the gateway's guard tests: HTTP and WebSocket requests with a chosen Host
header and a chosen loopback source address (127.0.0.2, ... are all this machine), and
the samples of an exposition by name and labels."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import trio
import trio_websocket
from prometheus_client.parser import text_string_to_metric_families

from .support import Address


async def request(
    served: Address,
    method: str,
    path: str,
    *,
    host: str | None = None,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    wait_s: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with ``Host: host`` (default: the served address), sent from
    ``source``. Returns the status, the headers (lower-cased names) and the body."""
    host = host if host is not None else f"{served.host}:{served.port}"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with trio.fail_after(wait_s):
        stream = await trio.open_tcp_stream(served.host, served.port, local_address=source)
        async with stream:
            await stream.send_all(raw)
            received = bytearray()
            while chunk := await stream.receive_some(65536):
                received += chunk
    head, _, payload = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    if parsed.get("transfer-encoding") == "chunked":
        out = bytearray()
        while payload:
            size_line, _, rest = payload.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out += rest[:size]
            payload = rest[size + 2 :]
        payload = bytes(out)
    return int(status_line.split()[1]), parsed, payload


@contextlib.asynccontextmanager
async def open_ws_as(
    served: Address, *, host: str, origin: str | None = None
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A WebSocket client to ``/ws/alerts`` that sends ``Host: host`` (its TCP stream
    owned here, as in ``support.open_ws``: STACK.md pitfall 4)."""
    stream = await trio.open_tcp_stream(served.host, served.port)
    try:
        headers = [] if origin is None else [(b"Origin", origin.encode())]
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, host, "/ws/alerts", extra_headers=headers
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


async def handshake_refused(
    served: Address, *, host: str, origin: str | None = None
) -> trio_websocket.ConnectionRejected:
    found: list[trio_websocket.ConnectionRejected] = []
    try:
        async with open_ws_as(served, host=host, origin=origin):
            pass
    except* trio_websocket.ConnectionRejected as group:
        found += [e for e in group.exceptions if isinstance(e, trio_websocket.ConnectionRejected)]
    assert len(found) == 1, "the handshake was not refused"
    return found[0]


def samples(exposition: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample named ``name`` (a family's ``_total``, ``_bucket``, ...): its sorted
    labels → value. A series that is not exported is absent (unlike ``metric_value``)."""
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def by_reason(exposition: str, name: str) -> dict[str, float]:
    return {dict(labels)["reason"]: value for labels, value in samples(exposition, name).items()}
