"""The gateway's routes on the Quart-Trio app: the UI, ``/ws/alerts`` and the JSON API.

``install_gateway`` adds them to the app :func:`marketd.obs.web.create_app` returns, plus an
``after_request`` hook that sets the security headers and times every HTTP request.

API (JSON; errors are ``{"error": "<message>"}``):

* ``GET /api/alerts?limit=N``: ``{"alerts": [...]}``, newest first; N in [0, history],
  default ``replay``; anything else is a 400.
* ``GET /api/rules``: ``{"rules": [...], "editable": bool}``; 404 when the detector does
  not run (``alerts.enabled`` is false), and in a process without the detector role
  (the rules live with the detector: 404 for GET, 409 for PUT, saying so).
* ``PUT /api/rules`` with ``Authorization: Bearer <gateway.api_token>`` and body
  ``{"rules": [{"name", "window_s", "threshold_pct", "cooldown_s"}, ...]}``:
  200 with the new rules (persisted by the store); 400 with the store's message for an
  invalid body; 401 for a missing or wrong token; 403 when ``api_token`` is empty
  (rule changes over HTTP are disabled); 413 for a body over 64 KiB.

``/ws/alerts`` sends ``{"type": "replay", "alerts": [...]}`` (oldest first) and then one
``{"type": "alert", "alert": {...}}`` per alert, or ``{"type": "alerts", "alerts": [...]}``
when several alerts are waiting for that client (a burst: one frame instead of many).
A handshake from a foreign Origin gets a
403 before it is accepted. The server closes with 1001 on shutdown and with 1008 when
the client was dropped as too slow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Protocol

import attrs
import orjson
import quart
import trio
from prometheus_client.core import Metric
from quart import Response
from quart_trio import QuartTrio

from marketd.config.alerts import GatewaySettings, RuleSettings
from marketd.gateway import policy
from marketd.gateway.hub import MAX_BATCH, AlertHub, HubClient, alerts_message, replay_message
from marketd.gateway.timing import RouteTimings
from marketd.obs.metrics import counter, gauge

MAX_RULES_BODY: Final = 64 * 1024
RULES_ELSEWHERE: Final = (
    "the rules live with the detector role, which this process does not run: change "
    "alerts.rules in the detector's configuration, or its alerts.state_dir/rules.json "
    "(the detector re-reads that file within seconds)"
)
CLOSE_TIMEOUT_S: Final = 1.0
GOING_AWAY: Final = 1001
POLICY_VIOLATION: Final = 1008


class RulesAccess(Protocol):
    """The detector's rules, readable and replaceable at runtime (persisted by the store)."""

    def rules(self) -> tuple[RuleSettings, ...]: ...

    def replace(self, raw: object) -> tuple[RuleSettings, ...]:
        """Validate and apply ``raw`` (the JSON list of rule objects); ValueError with a
        message for the user when it is invalid."""
        ...


def default_ui_dir(package: Path | None = None) -> Path:
    """The browser UI shipped with marketd: ``marketd/ui`` in the installed package (package
    data; in a checkout a link to the repository's ``ui/``), else the repository's ``ui/``.
    ``package`` is the ``marketd`` package directory (default: this one)."""
    package = package or Path(__file__).resolve().parents[1]
    for candidate in (package / "ui", package.parents[1] / "ui"):
        if (candidate / "index.html").is_file():
            return candidate
    return package / "ui"


def _json(body: Any, status: int = 200) -> Response:
    response = Response(orjson.dumps(body), status=status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _rules_json(rules: Iterable[RuleSettings]) -> list[dict[str, Any]]:
    return [attrs.asdict(rule) for rule in rules]


class Gateway:
    """The installed gateway: its hub, settings and metrics."""

    def __init__(
        self,
        hub: AlertHub,
        rules: RulesAccess | None,
        settings: GatewaySettings,
        shutdown: trio.Event,
        ui_dir: Path,
        *,
        rules_elsewhere: bool = False,
    ) -> None:
        self.hub = hub
        self.rules = rules
        self.rules_elsewhere = rules_elsewhere
        self.settings = settings
        self.shutdown = shutdown
        self.ui_dir = ui_dir
        self.timings = RouteTimings()

    def metrics(self) -> Iterable[Metric]:
        st = self.hub.statistics()
        yield gauge(
            "marketd_gateway_clients",
            "WebSocket clients connected to /ws/alerts.",
            (),
            {(): float(st.clients)},
        )
        yield counter(
            "marketd_gateway_alerts_delivered_total",
            "Alert messages written to WebSocket clients (replays included).",
            (),
            {(): st.delivered},
        )
        yield counter(
            "marketd_gateway_clients_dropped_total",
            "WebSocket clients disconnected by the gateway, by reason (slow: queue full).",
            ("reason",),
            {(r,): n for r, n in st.dropped.items()},
        )
        yield counter(
            "marketd_gateway_clients_rejected_total",
            "WebSocket handshakes refused, by reason (origin: not an allowed Origin).",
            ("reason",),
            {(r,): n for r, n in st.rejected.items()},
        )
        yield counter(
            "marketd_gateway_alerts_total",
            "Alerts accepted by the gateway (duplicates by id excluded).",
            (),
            {(): st.published},
        )
        yield from self.timings.metrics()

    # -- WebSocket ----------------------------------------------------------------------

    async def serve_client(self) -> Response | None:
        ws = quart.websocket
        if not policy.origin_allowed(
            ws.headers.get("Origin"), ws.headers.get("Host"), self.settings.allowed_origins
        ):
            self.hub.record_rejected("origin")
            return _error(403, "origin not allowed")
        if self.shutdown.is_set():
            return _error(503, "shutting down")
        await ws.accept()
        with self.hub.subscribe() as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._push, client)
                nursery.start_soon(_discard_incoming)
                nursery.start_soon(_cancel_when, self.shutdown, nursery.cancel_scope)
                nursery.start_soon(_cancel_when, client.kicked, nursery.cancel_scope)
        if client.dropped is not None:
            code, reason = POLICY_VIOLATION, f"dropped: {client.dropped}"
        else:
            code, reason = GOING_AWAY, "server shutting down"
        with trio.move_on_after(CLOSE_TIMEOUT_S):
            await ws.close(code, reason)
        return None

    async def _push(self, client: HubClient) -> None:
        ws = quart.websocket
        await ws.send(replay_message(client.replay))
        self.hub.record_delivered(len(client.replay))
        async for first in client.messages:
            batch = [first]
            with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
                while len(batch) < MAX_BATCH:
                    batch.append(client.messages.receive_nowait())
            await ws.send(alerts_message(batch))
            self.hub.record_delivered(len(batch))

    # -- HTTP -----------------------------------------------------------------------------

    async def index(self) -> Response:
        response = await quart.send_from_directory(self.ui_dir, "index.html")
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def asset(self, name: str) -> Response:
        response = await quart.send_from_directory(self.ui_dir, name)
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def get_alerts(self) -> Response:
        try:
            limit = policy.parse_limit(
                quart.request.args.get("limit"),
                default=self.settings.replay,
                maximum=self.hub.history_size,
            )
        except ValueError as exc:
            return _error(400, str(exc))
        return _json({"alerts": [a.to_json() for a in self.hub.recent(limit)]})

    def _no_rules(self, status_elsewhere: int) -> Response:
        if self.rules_elsewhere:
            return _error(status_elsewhere, RULES_ELSEWHERE)
        return _error(404, "the detector is not running (alerts.enabled is false)")

    async def get_rules(self) -> Response:
        if self.rules is None:
            return self._no_rules(404)
        return _json(
            {"rules": _rules_json(self.rules.rules()), "editable": bool(self.settings.api_token)}
        )

    async def put_rules(self) -> Response:
        request = quart.request
        if self.rules is None:
            return self._no_rules(409)
        if not self.settings.api_token:
            return _error(403, "rule changes over HTTP are disabled (gateway.api_token is empty)")
        if not policy.bearer_matches(request.headers.get("Authorization"), self.settings.api_token):
            response = _error(401, "a valid bearer token is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="marketd"'
            return response
        if (request.content_length or 0) > MAX_RULES_BODY:
            return _error(413, f"the body must be at most {MAX_RULES_BODY} bytes")
        body = bytearray()
        async for chunk in request.body:
            body += chunk
            if len(body) > MAX_RULES_BODY:
                return _error(413, f"the body must be at most {MAX_RULES_BODY} bytes")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, 'the body must be JSON: {"rules": [...]}')
        if not isinstance(parsed, dict) or set(parsed) != {"rules"}:
            return _error(400, 'the body must be a JSON object {"rules": [...]}')
        try:
            rules = self.rules.replace(parsed["rules"])
        except ValueError as exc:
            return _error(400, str(exc))
        except OSError as exc:
            return _error(500, f"the rules could not be saved: {exc.strerror or exc}")
        return _json({"rules": _rules_json(rules), "editable": True})

    async def after_request(self, response: Response) -> Response:
        request = quart.request
        started = getattr(quart.g, "marketd_started", None)
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else None
            self.timings.observe(rule, request.method, trio.current_time() - started)
        headers = response.headers
        for name, value in policy.COMMON_HEADERS.items():
            headers.setdefault(name, value)
        if response.mimetype == "text/html":
            headers["Content-Security-Policy"] = policy.page_csp(request.headers.get("Host"))
        else:
            headers.setdefault("Content-Security-Policy", policy.API_CSP)
        return response


async def _discard_incoming() -> None:
    """Read and drop client messages, so a chatty client cannot stall its connection."""
    while True:
        await quart.websocket.receive()


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _mark_start() -> None:
    quart.g.marketd_started = trio.current_time()


def install_gateway(
    app: QuartTrio,
    hub: AlertHub,
    rules: RulesAccess | None,
    settings: GatewaySettings,
    shutdown: trio.Event,
    *,
    rules_elsewhere: bool = False,
) -> Gateway:
    """Add the UI, ``/ws/alerts`` and ``/api/*`` to ``app``; return the :class:`Gateway`
    (add ``gateway.metrics`` to the daemon's metric sources).

    ``shutdown`` is the event that stops the HTTP server: WebSocket handlers watch it
    and close with 1001 themselves (Hypercorn sends no close frame on shutdown).
    ``rules_elsewhere``: the detector runs in another process (``rules`` is None), and
    ``/api/rules`` says so.
    """
    ui_dir = Path(settings.ui_dir) if settings.ui_dir else default_ui_dir()
    gateway = Gateway(hub, rules, settings, shutdown, ui_dir, rules_elsewhere=rules_elsewhere)
    app.before_request(_mark_start)
    app.after_request(gateway.after_request)
    app.add_url_rule("/", "ui_index", gateway.index, methods=["GET"])
    app.add_url_rule("/ui/<path:name>", "ui_asset", gateway.asset, methods=["GET"])
    app.add_url_rule("/api/alerts", "api_alerts", gateway.get_alerts, methods=["GET"])
    app.add_url_rule("/api/rules", "api_rules", gateway.get_rules, methods=["GET"])
    app.add_url_rule("/api/rules", "api_rules_put", gateway.put_rules, methods=["PUT"])
    app.add_websocket("/ws/alerts", "ws_alerts", gateway.serve_client)
    return gateway
