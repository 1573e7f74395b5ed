"""The gateway's guards, at the I/O edge of the decisions in :mod:`marketd.gateway.policy`:
the Host allow-list, the Origin check of ``/ws/alerts``, the bearer token of
``PUT /api/rules`` and ``PUT /api/mutes`` and the slow-down of repeated wrong tokens.

Each refusal is counted by reason (every reason exported at 0 from the start) and
logged, at most one line per kind of refusal per ``LOG_INTERVAL_S`` (the next line says
how many were held back: ``suppressed``). Client-supplied values are logged truncated.

``install_gateway`` applies the Host guard to the gateway's routes (the UI, its assets,
``/ws/alerts``) and to everything under ``/api/``: ``/healthz``, ``/readyz`` and ``/metrics``
(:mod:`marketd.obs.web`) answer whatever the Host, since probes and Prometheus reach them
by address or service name.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs
import orjson
import quart
import structlog
import trio
from quart import Response

from marketd.config.alerts import GatewaySettings
from marketd.gateway import policy
from marketd.gateway.hub import HOST, ORIGIN, AlertHub
from marketd.obs.logs import RateLimitedLog

log = structlog.get_logger(__name__)

LOG_INTERVAL_S: Final = 10.0

# Why a PUT /api/rules or /api/mutes was refused for its token
# (marketd_gateway_token_refused_total).
MISSING: Final = "missing"
"""No ``Authorization: Bearer`` header."""
WRONG: Final = "wrong"
"""A token that is not ``gateway.api_token``."""
THROTTLED: Final = "throttled"
"""Refused unchecked (429): too many wrong tokens from that address lately."""
TOKEN_REASONS: Final = (MISSING, WRONG, THROTTLED)

# Why an HTTP request to a gateway route was refused (marketd_gateway_requests_refused_total).
HTTP_REFUSED_REASONS: Final = (HOST,)


def json_error(status: int, message: str) -> Response:
    response = Response(
        orjson.dumps({"error": message}), status=status, content_type="application/json"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def peer_of(scope: Mapping[str, Any]) -> str:
    """The remote address of an ASGI connection (the client's IP; no port)."""
    client = scope.get("client")
    return str(client[0]) if client else "<unknown>"


def local_of(scope: Mapping[str, Any]) -> str | None:
    """The local address the connection arrived on."""
    server = scope.get("server")
    return str(server[0]) if server else None


@attrs.frozen
class GuardStatistics:
    # HTTP requests to gateway routes refused, by reason (only reasons seen).
    refused: Mapping[str, int]
    # PUT /api/rules refused for its token, by reason (only reasons seen).
    token_refused: Mapping[str, int]
    # Addresses remembered for their failed tokens (bounded).
    token_clients: int


class Guard:
    """Host, Origin and token checks of one gateway; counts and logs its refusals.

    ``listen`` is the HTTP listen address (its host is allowed like ``localhost``);
    ``clock`` (trio's by default) times the token slow-down.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        hub: AlertHub,
        *,
        listen: str = "",
        throttle: policy.FailureThrottle | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.hub = hub
        self.hosts = policy.HostAllowList.of(settings.allowed_hosts, listen)
        self.allowed_origins = settings.allowed_origins
        self.token = settings.api_token
        self.throttle = throttle or policy.FailureThrottle()
        self._clock = clock
        self._refused: collections.Counter[str] = collections.Counter()
        self._token_refused: collections.Counter[str] = collections.Counter()
        self._logs: dict[str, RateLimitedLog] = {}

    def _log(self, kind: str, event: str, **fields: Any) -> None:
        limiter = self._logs.get(kind)
        if limiter is None:
            limiter = self._logs[kind] = RateLimitedLog(interval=LOG_INTERVAL_S)
        held = limiter.ready()
        if held is not None:
            log.warning(event, **fields, suppressed=held)

    # -- HTTP ---------------------------------------------------------------------------

    def check_host(self) -> Response | None:
        """None when the request's Host is allowed; else the 403 (counted, logged)."""
        request = quart.request
        host = request.headers.get("Host")
        if self.hosts.allows(host, local_of(request.scope)):
            return None
        self._refused[HOST] += 1
        self._log(
            "host", "request refused: host not allowed",
            host=policy.shown(host), client=peer_of(request.scope), path=policy.shown(request.path),
        )  # fmt: skip
        return json_error(403, host_refusal(host))

    def check_token(self) -> Response | None:
        """None when the request carries the right bearer token; else the refusal: 429
        with Retry-After while its address is slowed down, 401 otherwise."""
        request = quart.request
        client, now = peer_of(request.scope), self._clock()
        wait = self.throttle.retry_after(client, now)
        if wait is not None:
            self._token_refused[THROTTLED] += 1
            self._log("throttled", "token attempt refused: too many failures", client=client,
                      retry_after_s=round(wait, 1))  # fmt: skip
            response = json_error(429, "too many failed tokens from this address: retry later")
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        authorization = request.headers.get("Authorization")
        if policy.bearer_matches(authorization, self.token):
            self.throttle.succeeded(client)
            return None
        reason = MISSING if not authorization else WRONG
        self._token_refused[reason] += 1
        blocked = self.throttle.failed(client, now)
        self._log("token", "token refused", reason=reason, client=client,
                  blocked_s=None if blocked is None else round(blocked, 1))  # fmt: skip
        response = json_error(401, "a valid bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="marketd"'
        return response

    # -- WebSocket ------------------------------------------------------------------------

    def check_handshake(self) -> Response | None:
        """The refusal of a ``/ws/alerts`` handshake with a foreign Host or Origin."""
        ws = quart.websocket
        host, origin = ws.headers.get("Host"), ws.headers.get("Origin")
        if not self.hosts.allows(host, local_of(ws.scope)):
            self.refuse_handshake(HOST, host=policy.shown(host))
            return json_error(403, host_refusal(host))
        if not policy.origin_allowed(origin, host, self.allowed_origins):
            self.refuse_handshake(ORIGIN, origin=policy.shown(origin), host=policy.shown(host))
            return json_error(403, "origin not allowed")
        return None

    def refuse_handshake(self, reason: str, **fields: Any) -> None:
        self.hub.record_rejected(reason)
        self._log(f"handshake:{reason}", "websocket handshake refused", reason=reason,
                  client=peer_of(quart.websocket.scope), **fields)  # fmt: skip

    def statistics(self) -> GuardStatistics:
        return GuardStatistics(
            refused=dict(self._refused),
            token_refused=dict(self._token_refused),
            token_clients=len(self.throttle),
        )


def host_refusal(host: str | None) -> str:
    return (
        f"host {policy.shown(host, 60)!r} not allowed: add it to gateway.allowed_hosts "
        "(MARKETD_GATEWAY__ALLOWED_HOSTS)"
    )


def with_zeros(seen: Mapping[str, int], known: Iterable[str]) -> dict[tuple[str, ...], int]:
    """Counts by reason for a metric: every known reason (0 until seen), and any other."""
    values: dict[tuple[str, ...], int] = {(reason,): 0 for reason in known}
    values.update({(reason,): n for reason, n in seen.items()})
    return values
