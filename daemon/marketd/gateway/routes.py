"""The gateway's routes on the Quart-Trio app: the UI, ``/ws/alerts`` and the JSON API.

``install_gateway`` adds them to the app :func:`marketd.obs.web.create_app` returns, plus
hooks that refuse a foreign Host on the gateway's routes (:mod:`marketd.gateway.guard`),
set the security headers and time every HTTP request, and tasks, for as long as the app
serves, that send the hub's suppression summaries and write the live alerts to the
WebSocket clients (:mod:`marketd.gateway.fanout`).

API (JSON; errors are ``{"error": "<message>"}``):

* ``GET /api/alerts?limit=N``: ``{"alerts": [...]}``, newest first; N in [0, history],
  default ``replay``; anything else is a 400. Every alert, also those held back from the
  live push by ``gateway.max_alerts_per_s`` and those of a muted symbol (these with
  ``"muted": true``).
* ``GET /api/rules``: ``{"rules": [...], "editable": bool}``; 404 when the detector does
  not run (``alerts.enabled`` is false), and in a process without the detector role
  (the rules live with the detector: 404 for GET, 409 for PUT, saying so).
* ``PUT /api/rules`` with ``Authorization: Bearer <gateway.api_token>`` and body
  ``{"rules": [{"name", "window_s", "threshold_pct", "cooldown_s"}, ...]}`` (and the
  optional ``notify``, ``symbols``, ``exclude``, ``markets``, ``min_quote_volume_24h``):
  200 with the new rules (persisted by the store); 400 with the store's message for an
  invalid body; 401 for a missing or wrong token; 429 with ``Retry-After`` after repeated
  wrong tokens from one address (:class:`marketd.gateway.policy.FailureThrottle`); 403
  when ``api_token`` is empty (rule changes over HTTP are disabled); 413 for a body over
  64 KiB.
* ``GET /api/mutes``: ``{"mutes": [{"symbol", "until_ms"}, ...], "editable": bool}``, the
  symbols muted now (``until_ms``: epoch ms, or null for no end), sorted by symbol.
* ``PUT /api/mutes`` with the bearer token and body ``{"mutes": [{"symbol": "BTCUSDT",
  "until_ms": 1760000000000 | null}, ...]}``: replaces the whole set (persisted in
  ``<alerts.state_dir>/mutes.json``, see :mod:`marketd.gateway.mutes`); 200 with the new
  set; 400 naming each invalid entry; 401, 403, 413 and 429 as for ``PUT /api/rules``.

Every gateway route answers 403 to a Host header that is not allowed (see
:class:`marketd.gateway.policy.HostAllowList`); ``/ws/alerts`` is described in
:mod:`marketd.gateway.websocket`.
"""

from __future__ import annotations

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
from marketd.errors import ConfigError
from marketd.gateway import policy
from marketd.gateway.fanout import Fanout
from marketd.gateway.guard import (
    HTTP_REFUSED_REASONS,
    TOKEN_REASONS,
    Guard,
    json_error,
    with_zeros,
)
from marketd.gateway.hub import DROP_REASONS, REJECT_REASONS, AlertHub, wall_ms
from marketd.gateway.mutes import MutesError, MuteStore, mutes_json
from marketd.gateway.timing import RouteTimings, histogram_family
from marketd.gateway.websocket import AlertSocket
from marketd.obs.metrics import counter, gauge

MAX_BODY: Final = 64 * 1024
"""The largest body ``PUT /api/rules`` and ``PUT /api/mutes`` take."""
RULES_ELSEWHERE: Final = (
    "the rules live with the detector role, which this process does not run: change "
    "alerts.rules in the detector's configuration, or its alerts.state_dir/rules.json "
    "(the detector re-reads that file within seconds)"
)


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
        listen: str = "",
        mutes: MuteStore | None = None,
    ) -> None:
        self.hub = hub
        self.rules = rules
        self.mutes = mutes or MuteStore()
        self.rules_elsewhere = rules_elsewhere
        self.settings = settings
        self.shutdown = shutdown
        self.ui_dir = ui_dir
        self.timings = RouteTimings()
        self.guard = Guard(settings, hub, listen=listen)
        self.fanout = Fanout(hub)
        self.socket = AlertSocket(hub, self.guard, shutdown, self.fanout)
        self._background: trio.CancelScope | None = None
        self._serving: trio.CancelScope | None = None

    def metrics(self) -> Iterable[Metric]:
        st = self.hub.statistics()
        guard = self.guard.statistics()
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
            "WebSocket clients disconnected by the gateway, by reason (slow: queue full; "
            "send_timeout: stopped reading until the connection was cut; going_away: "
            "shutdown; protocol: sent binary or oversized messages; error: handler failed).",
            ("reason",),
            with_zeros(st.dropped, DROP_REASONS),
        )
        yield counter(
            "marketd_gateway_clients_rejected_total",
            "WebSocket handshakes refused, by reason (origin: not an allowed Origin; host: "
            "not an allowed Host; shutting_down: during shutdown).",
            ("reason",),
            with_zeros(st.rejected, REJECT_REASONS),
        )
        yield counter(
            "marketd_gateway_requests_refused_total",
            "HTTP requests to the gateway's routes refused, by reason (host: not an allowed "
            "Host header, 403).",
            ("reason",),
            with_zeros(guard.refused, HTTP_REFUSED_REASONS),
        )
        yield counter(
            "marketd_gateway_token_refused_total",
            "PUT /api/rules and PUT /api/mutes refused for the bearer token, by reason "
            "(missing, wrong; throttled: 429 after repeated failures from that address).",
            ("reason",),
            with_zeros(guard.token_refused, TOKEN_REASONS),
        )
        yield counter(
            "marketd_gateway_alerts_total",
            "Alerts accepted by the gateway (duplicates by id excluded).",
            (),
            {(): st.published},
        )
        yield counter(
            "marketd_gateway_alerts_suppressed_total",
            "Alerts held back from the live push by gateway.max_alerts_per_s (still in the "
            "history and /api/alerts; clients get a summary).",
            (),
            {(): st.suppressed},
        )
        yield counter(
            "marketd_gateway_alerts_muted_total",
            "Alerts not pushed live because their symbol was muted (PUT /api/mutes; still "
            "in the history and /api/alerts, marked muted).",
            (),
            {(): st.muted},
        )
        yield histogram_family(
            "marketd_alert_push_latency_seconds",
            "Exchange event time of an alert's tick to the moment the gateway offers it to "
            "the browsers (alerts pushed live).",
            (),
            {(): st.push_latency},
        )
        yield from self.timings.metrics()

    # -- WebSocket ----------------------------------------------------------------------

    async def serve_client(self) -> Response | None:
        return await self.socket.serve()

    async def serve_background(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The hub's suppression summaries and the fan-out writer, until
        :meth:`stop_background`; and the task that ends the WebSocket connections at
        shutdown, until :meth:`stop_serving`."""
        with trio.CancelScope() as self._serving:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.socket.serve_going_away)
                with trio.CancelScope() as self._background:
                    async with trio.open_nursery() as background:
                        await background.start(self.fanout.serve)
                        await background.start(self.hub.serve_summaries)
                        task_status.started()

    async def stop_background(self) -> None:
        """Stop the writer and the summaries (the clients' own tasks send from then on)."""
        # Async: Quart runs a plain function hook in a worker thread, where cancelling a
        # trio scope is not allowed.
        if self._background is not None:
            self._background.cancel()

    async def stop_serving(self) -> None:
        """Stop every task of :meth:`serve_background` (the app has stopped serving)."""
        if self._serving is not None:
            self._serving.cancel()

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
            return json_error(400, str(exc))
        return _json({"alerts": [self.hub.alert_json(a) for a in self.hub.recent(limit)]})

    def _no_rules(self, status_elsewhere: int) -> Response:
        if self.rules_elsewhere:
            return json_error(status_elsewhere, RULES_ELSEWHERE)
        return json_error(404, "the detector is not running (alerts.enabled is false)")

    async def get_rules(self) -> Response:
        if self.rules is None:
            return self._no_rules(404)
        return _json(
            {"rules": _rules_json(self.rules.rules()), "editable": bool(self.settings.api_token)}
        )

    async def _authorized_json(self, what: str, key: str) -> dict[str, Any] | Response:
        """The JSON object ``{key: ...}`` of a PUT carrying the bearer token, or the
        refusal: 403 (no token configured), 401/429 (:meth:`Guard.check_token`), 413,
        400. ``what`` names the change in the 403's message."""
        request = quart.request
        if not self.settings.api_token:
            return json_error(
                403, f"{what} changes over HTTP are disabled (gateway.api_token is empty)"
            )
        refusal = self.guard.check_token()
        if refusal is not None:
            return refusal
        too_big = f"the body must be at most {MAX_BODY} bytes"
        if (request.content_length or 0) > MAX_BODY:
            return json_error(413, too_big)
        body = bytearray()
        async for chunk in request.body:
            body += chunk
            if len(body) > MAX_BODY:
                return json_error(413, too_big)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return json_error(400, f'the body must be JSON: {{"{key}": [...]}}')
        if not isinstance(parsed, dict) or set(parsed) != {key}:
            return json_error(400, f'the body must be a JSON object {{"{key}": [...]}}')
        return parsed

    async def put_rules(self) -> Response:
        if self.rules is None:
            return self._no_rules(409)
        parsed = await self._authorized_json("rule", "rules")
        if isinstance(parsed, Response):
            return parsed
        try:
            rules = self.rules.replace(parsed["rules"])
        except ValueError as exc:
            return json_error(400, str(exc))
        except OSError as exc:
            return json_error(500, f"the rules could not be saved: {exc.strerror or exc}")
        return _json({"rules": _rules_json(rules), "editable": True})

    async def get_mutes(self) -> Response:
        mutes = self.mutes.mutes(wall_ms())
        return _json({"mutes": mutes_json(mutes), "editable": bool(self.settings.api_token)})

    async def put_mutes(self) -> Response:
        parsed = await self._authorized_json("mute", "mutes")
        if isinstance(parsed, Response):
            return parsed
        try:
            mutes = self.mutes.replace(parsed, wall_ms())
        except MutesError as exc:
            return json_error(400, str(exc))
        except OSError as exc:
            return json_error(500, f"the mutes could not be saved: {exc.strerror or exc}")
        return _json({"mutes": mutes_json(mutes), "editable": True})

    async def after_request(self, response: Response) -> Response:
        request = quart.request
        started = getattr(quart.g, "marketd_started", None)
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else None
            elapsed = trio.current_time() - started
            self.timings.observe(rule, request.method, response.status_code, elapsed)
        headers = response.headers
        for name, value in policy.COMMON_HEADERS.items():
            headers.setdefault(name, value)
        if response.mimetype == "text/html":
            headers["Content-Security-Policy"] = policy.page_csp(request.headers.get("Host"))
        else:
            headers.setdefault("Content-Security-Policy", policy.API_CSP)
        return response


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
    listen: str = "",
    state_dir: str | None = None,
) -> Gateway:
    """Add the UI, ``/ws/alerts`` and ``/api/*`` to ``app``; return the :class:`Gateway`
    (add ``gateway.metrics`` to the daemon's metric sources).

    ``shutdown`` is the event that stops the HTTP server: WebSocket handlers watch it
    and close with 1001 themselves (Hypercorn sends no close frame on shutdown).
    ``rules_elsewhere``: the detector runs in another process (``rules`` is None), and
    ``/api/rules`` says so. ``listen``: the HTTP listen address (``http.listen``), whose
    host the Host guard allows. The gateway's settings govern ``hub``: its cap on alerts
    pushed live is set to ``settings.max_alerts_per_s``, and its mutes are the gateway's.
    ``state_dir`` (``alerts.state_dir``) keeps the mutes (``mutes.json``); None: in memory.
    """
    ui_dir = Path(settings.ui_dir) if settings.ui_dir else default_ui_dir()
    try:
        mutes = MuteStore(state_dir)
    except MutesError as exc:
        raise ConfigError([f"gateway mutes (stored): {p}" for p in exc.problems]) from exc
    hub.limit_live(settings.max_alerts_per_s)
    hub.mute_with(mutes)
    gateway = Gateway(
        hub, rules, settings, shutdown, ui_dir,
        rules_elsewhere=rules_elsewhere, listen=listen, mutes=mutes,
    )  # fmt: skip

    routes = (
        ("/", "ui_index", gateway.index, "GET"),
        ("/ui/<path:name>", "ui_asset", gateway.asset, "GET"),
        ("/api/alerts", "api_alerts", gateway.get_alerts, "GET"),
        ("/api/rules", "api_rules", gateway.get_rules, "GET"),
        ("/api/rules", "api_rules_put", gateway.put_rules, "PUT"),
        ("/api/mutes", "api_mutes", gateway.get_mutes, "GET"),
        ("/api/mutes", "api_mutes_put", gateway.put_mutes, "PUT"),
    )
    guarded = frozenset(endpoint for _, endpoint, _, _ in routes)

    async def refuse_foreign_host() -> Response | None:
        # The gateway's routes and whatever else is under /api/ (GET /api/status of
        # marketd.obs.status): the probes and /metrics answer any Host.
        request = quart.request
        if request.endpoint in guarded or request.path.startswith("/api/"):
            return gateway.guard.check_host()
        return None

    async def start_background() -> None:
        # QuartTrio's lifespan nursery: a task there lives as long as the app serves.
        await app.nursery.start(gateway.serve_background)

    app.before_serving(start_background)
    app.after_serving(gateway.stop_serving)
    app.before_request(_mark_start)
    app.before_request(refuse_foreign_host)
    app.after_request(gateway.after_request)
    for rule, endpoint, view, method in routes:
        app.add_url_rule(rule, endpoint, view, methods=[method])
    app.add_websocket("/ws/alerts", "ws_alerts", gateway.serve_client)
    return gateway
