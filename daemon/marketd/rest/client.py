"""A minimal HTTP/1.1 GET client for an exchange's REST API over trio streams (h11).

One connection per request: REST is used rarely (snapshots, gap backfill), so keep-alive
buys little and a fresh connection never inherits a broken one.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlencode, urlsplit

import attrs
import h11
import trio

from marketd.errors import RestError

_MAX_BODY = 32 * 1024 * 1024


@attrs.frozen
class RestResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def header_int(self, name: str) -> int | None:
        """The non-negative integer in header ``name`` (lower case), or None."""
        value = self.headers.get(name)
        return int(value) if value and value.isdigit() else None


# How a REST request of the book snapshots or the backfill ended, as their metrics count it.
OUTCOMES = ("ok", "429", "418", "http_error", "network", "bad_body")

# ``http_get`` or a stand-in with its signature (tests).
HttpGet = Callable[..., Awaitable[RestResponse]]


async def http_get(
    base_url: str,
    path: str,
    params: Mapping[str, str | int] | None = None,
    *,
    time_limit: float = 10.0,
) -> RestResponse:
    """GET ``base_url + path?params``; raise :class:`RestError` on network errors or timeout.

    Non-2xx statuses are returned, not raised: the caller decides (429/418 carry Retry-After).
    """
    url = base_url.rstrip("/") + path
    if params:
        url += "?" + urlencode(params)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RestError(f"unsupported REST URL {url!r}: use http:// or https://")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = parts.path + ("?" + parts.query if parts.query else "")
    try:
        with trio.fail_after(time_limit):
            return await _get(parts.scheme, parts.hostname, port, target, parts.netloc)
    except trio.TooSlowError:
        raise RestError(f"GET {url} timed out after {time_limit} s") from None
    except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
        raise RestError(f"GET {url} failed: {exc!r}") from exc


async def _get(scheme: str, host: str, port: int, target: str, netloc: str) -> RestResponse:
    stream: trio.abc.Stream
    if scheme == "https":
        stream = await trio.open_ssl_over_tcp_stream(
            host, port, ssl_context=ssl.create_default_context()
        )
    else:
        stream = await trio.open_tcp_stream(host, port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="GET",
            target=target,
            headers=[("Host", netloc), ("User-Agent", "marketd"), ("Connection", "close")],
        )
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        status = 0
        headers: dict[str, str] = {}
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(bytes(data))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY:
                    raise RestError(f"response body over {_MAX_BODY} bytes")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return RestResponse(status, headers, bytes(body))
