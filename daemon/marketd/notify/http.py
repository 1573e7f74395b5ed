"""One HTTP/1.1 POST over trio streams (h11), for the notifiers.

A fresh connection per request, as :mod:`marketd.rest.client` does for GETs: alerts are
rare, and a new connection never inherits a broken one. Errors never quote the URL, which
may hold a token (Telegram's path, a Discord webhook): the caller names the target.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import h11
import trio

from marketd.errors import RetryableError
from marketd.rest.client import RestResponse

# Answers are small JSON documents (or nothing); a longer one is cut off here.
MAX_BODY = 64 * 1024
# Seconds allowed to close a connection after its answer (TLS close_notify).
CLOSE_S = 1.0


class PostError(RetryableError):
    """The request got no complete answer: network error, timeout, protocol error."""


# ``post`` or a stand-in with its signature.
Post = Callable[..., Awaitable[RestResponse]]


async def post(
    url: str, headers: Sequence[tuple[str, str]], body: bytes, *, time_limit: float
) -> RestResponse:
    """POST ``body`` to ``url``; the answer whatever its status. :class:`PostError` when
    there is none within ``time_limit`` seconds."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostError("unsupported URL scheme: use http:// or https://")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host_header = f"[{host}]" if ":" in host else host
    if parts.port:
        host_header += f":{parts.port}"
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    request = h11.Request(
        method="POST",
        target=target,
        headers=[
            ("Host", host_header),
            *headers,
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
    )
    stream: trio.abc.Stream | None = None
    try:
        with trio.fail_after(time_limit):
            if parts.scheme == "https":
                # https_compatible: many servers close without TLS close_notify.
                context = ssl.create_default_context()
                stream = await trio.open_ssl_over_tcp_stream(
                    host, port, ssl_context=context, https_compatible=True
                )
            else:
                stream = await trio.open_tcp_stream(host, port)
            return await _exchange(stream, request, body)
    except trio.TooSlowError:
        raise PostError(f"no answer within {time_limit:g} s") from None
    except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
        raise PostError(f"{type(exc).__name__}: {exc}") from None
    finally:
        # Outside the time limit: an answer received is never lost to a slow close.
        if stream is not None:
            with (
                trio.move_on_after(CLOSE_S),
                contextlib.suppress(OSError, trio.BrokenResourceError),
            ):
                await stream.aclose()


async def _exchange(stream: trio.abc.Stream, request: h11.Request, body: bytes) -> RestResponse:
    conn = h11.Connection(h11.CLIENT)
    await stream.send_all(
        conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    )
    status = 0
    headers: dict[str, str] = {}
    received = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(65536)))
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode().lower(): v.decode(errors="replace") for k, v in event.headers}
        elif isinstance(event, h11.Data):
            received += event.data[: MAX_BODY - len(received)]
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            if not status:
                raise PostError("the connection closed without an answer")
            return RestResponse(status, headers, bytes(received))
