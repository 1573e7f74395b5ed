"""Settings of the alerter: detector rules, its input, and the browser gateway."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import attrs

from marketd.config.notify import notify_names
from marketd.config.validators import SECRET, InvalidValue, _fail, at_least, one_of, within
from marketd.data.records import Market
from marketd.exchanges import adapters

# Event kinds the detector can read a price from (the vocabulary table's price column).
PRICE_KINDS = tuple(dict.fromkeys(k for a in adapters() for k in a.vocabulary.price_fields()))
ALERT_MARKETS = tuple(m.value for m in Market)
# At most this many rules: each is a label value of marketd_alerts_detected_total.
MAX_RULES = 16
_RULE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def _rule_name(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not _RULE_NAME_RE.fullmatch(value):
        raise _fail(attribute, f"must be 1-40 of A-Z a-z 0-9 _ . -, got {value!r}")


def _kinds(_: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    shown = ", ".join(PRICE_KINDS)
    problems = [f"{k!r} carries no price the detector reads ({shown})" for k in value
                if k not in PRICE_KINDS]  # fmt: skip
    if not value:
        problems.append(f"at least one kind is needed ({shown})")
    if len(set(value)) != len(value):
        problems.append("a kind is given twice")
    if problems:
        raise InvalidValue(attribute.name, problems)


def _markets(_: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    problems = [f"{m!r} is not a market (spot, usdm)" for m in value if m not in ALERT_MARKETS]
    if not value:
        problems.append("at least one market is needed (spot, usdm)")
    if problems:
        raise InvalidValue(attribute.name, problems)


def check_rules(rules: tuple[RuleSettings, ...]) -> list[str]:
    """Problems with a rule set as a whole (each rule checks its own fields)."""
    problems = []
    if not rules:
        problems.append("at least one rule is needed")
    if len(rules) > MAX_RULES:
        problems.append(f"at most {MAX_RULES} rules, got {len(rules)}")
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            problems.append(f"rule name {rule.name!r} is given twice (names must be unique)")
        seen.add(rule.name)
    return problems


def _rules(_: Any, attribute: attrs.Attribute[Any], value: tuple[RuleSettings, ...]) -> None:
    problems = check_rules(value)
    if problems:
        raise InvalidValue(attribute.name, problems)


_GLOB_RE = re.compile(r"[A-Z0-9*?!\[\]_.-]{1,40}")


def _upper(value: Iterable[str]) -> tuple[str, ...]:
    """Globs are matched against upper-case symbols: normalise what was written."""
    return tuple(v.upper() if isinstance(v, str) else v for v in value)


def _globs(_: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    problems = [
        f"{g!r} is not a symbol glob: use 1-40 of A-Z 0-9 _ . - and the wildcards * ? [...]"
        for g in value
        if not isinstance(g, str) or not _GLOB_RE.fullmatch(g)
    ]
    if problems:
        raise InvalidValue(attribute.name, problems)


def _rule_markets(_: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    shown = ", ".join(ALERT_MARKETS)
    problems = [f"{m!r} is not a market ({shown})" for m in value if m not in ALERT_MARKETS]
    if len(set(value)) != len(value):
        problems.append("a market is given twice")
    if problems:
        raise InvalidValue(attribute.name, problems)


def _volume(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise _fail(attribute, f"must be a finite number >= 0 (quote asset units), got {value!r}")


RULE_KINDS = ("price", "volume", "liquidation", "premium", "funding")


def _min_notional(rule: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise _fail(attribute, f"must be a finite number >= 0 (quote asset units), got {value!r}")
    if getattr(rule, "kind", "") == "liquidation" and not value:
        raise _fail(attribute, "a liquidation rule needs min_notional > 0 (quote asset units)")


@attrs.frozen
class RuleSettings:
    """One detection rule of one ``kind``; after an alert the rule stays quiet
    ``cooldown_s`` for that instrument; its alerts also go to the notifiers named in
    ``notify`` (``notifications``). Kinds (:mod:`marketd.alerts.detector`):

    * ``price`` — the price moves more than ``threshold_pct`` against the oldest price in
      the last ``window_s`` seconds;
    * ``volume`` — quote volume traded in the last ``window_s`` seconds, per second, is
      more than ``multiple`` times that of the ``baseline_s`` seconds before the window
      (trades or aggTrades), and at least ``min_notional``;
    * ``liquidation`` — one side's liquidated notional in the last ``window_s`` seconds is
      more than ``min_notional`` (forceOrder, USD-M);
    * ``premium`` — the mark price is more than ``threshold_pct`` above or below the index
      price (markPriceUpdate, USD-M);
    * ``funding`` — the funding rate, in percent, is beyond ``threshold_pct`` either way
      (markPriceUpdate, USD-M).

    Filters narrow where the rule fires: ``symbols`` (globs, empty: every symbol), then
    ``exclude`` (globs), ``markets`` (empty: every market the detector watches), and
    ``min_quote_volume_24h`` (the instrument's latest 24 h quote volume from the 24 h
    tickers; unknown never passes a non-zero minimum)."""

    name: str = attrs.field(default="default", validator=_rule_name)
    window_s: float = attrs.field(default=60.0, validator=within(0, 86_400, low_open=True))
    threshold_pct: float = attrs.field(default=2.0, validator=within(0, 1000, low_open=True))
    cooldown_s: float = attrs.field(default=30.0, validator=within(0, 86_400))
    notify: tuple[str, ...] = attrs.field(default=(), validator=notify_names)
    symbols: tuple[str, ...] = attrs.field(default=(), converter=_upper, validator=_globs)
    exclude: tuple[str, ...] = attrs.field(default=(), converter=_upper, validator=_globs)
    markets: tuple[str, ...] = attrs.field(default=(), validator=_rule_markets)
    min_quote_volume_24h: float = attrs.field(default=0.0, validator=_volume)
    kind: str = attrs.field(default="price", validator=one_of(RULE_KINDS))
    multiple: float = attrs.field(default=5.0, validator=within(1, 1_000_000, low_open=True))
    baseline_s: float = attrs.field(default=1800.0, validator=within(0, 86_400, low_open=True))
    min_notional: float = attrs.field(default=0.0, validator=_min_notional)


@attrs.frozen
class AlertSettings:
    enabled: bool = True
    # Where the detector reads prices: "pipeline" (this process's own stream, the
    # default) or "kafka" (the raw topic in a consumer group: replicas share symbols by
    # partition, alerts are published exactly once with Kafka transactions).
    source: str = attrs.field(default="pipeline", validator=one_of(("pipeline", "kafka")))
    # Event kinds that feed the detector (Binance event types).
    kinds: tuple[str, ...] = attrs.field(default=("24hrMiniTicker",), validator=_kinds)
    # Markets watched.
    markets: tuple[str, ...] = attrs.field(default=("usdm",), validator=_markets)
    rules: tuple[RuleSettings, ...] = attrs.field(default=(RuleSettings(),), validator=_rules)
    # Directory for state that survives restarts (rules changed at runtime).
    state_dir: str = "var"
    # Kafka consumer group of the detector (when Kafka is configured).
    consumer_group: str = "marketd-detector"
    # Transactional id of the detector's alert producer; unique per replica. Empty:
    # "<consumer_group>.<host name>".
    transactional_id: str = ""
    # Where a new consumer group starts reading the raw topic: latest | earliest.
    start_from: str = attrs.field(default="latest", validator=one_of(("latest", "earliest")))


def _origins(_: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    """Each allowed origin is "*" or scheme://host[:port] (http or https, nothing more)."""
    from urllib.parse import urlsplit

    problems = []
    for origin in value:
        if origin == "*":
            continue
        problem = f'{origin!r} is not an origin: use http(s)://host[:port], or "*"'
        try:
            parts = urlsplit(origin)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            problems.append(problem)
            continue
        extra = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username
        if parts.scheme not in ("http", "https") or not parts.hostname or extra:
            problems.append(problem)
    if problems:
        raise InvalidValue(attribute.name, problems)


@attrs.frozen
class GatewaySettings:
    # Alerts a new client receives first, and the default of GET /api/alerts.
    replay: int = attrs.field(default=50, validator=at_least(0))
    # Alerts kept in memory for replay and the API.
    history: int = attrs.field(default=1000, validator=at_least(1))
    # Messages queued per WebSocket client before it is dropped as too slow.
    client_queue: int = attrs.field(default=256, validator=at_least(1))
    # Origins allowed to open /ws/alerts besides the page's own ("*" allows any).
    allowed_origins: tuple[str, ...] = attrs.field(default=(), validator=_origins)
    # Host headers the UI, /ws/alerts and /api/* answer besides localhost, 127.0.0.1,
    # [::1] and the listen address ("name" on any port, "name:port" on that one; "*"
    # allows any): the guard against DNS rebinding. /healthz, /readyz, /metrics: any Host.
    allowed_hosts: tuple[str, ...] = attrs.field(default=())
    # Alerts pushed live to browsers per second at most (0: no cap); the excess is
    # counted, summarised to the clients, and kept in the history and /api/alerts.
    max_alerts_per_s: int = attrs.field(default=20, validator=at_least(0))
    # Bearer token required by PUT /api/rules; empty disables rule changes over HTTP.
    api_token: str = attrs.field(default="", repr=False, metadata=SECRET)
    # Directory of the browser UI; empty: the ui/ directory shipped with marketd.
    ui_dir: str = ""

    @allowed_hosts.validator
    def _hosts(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        """Each allowed host is "*" or [name|IPv4|[IPv6]][:port]."""
        from urllib.parse import urlsplit

        problems = []
        for host in value:
            if host == "*":
                continue
            problem = (
                f'{host!r} is not a host: use name[:port], address[:port], [ipv6][:port], or "*"'
            )
            if not re.fullmatch(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?", host):
                problems.append(problem)
                continue
            try:
                urlsplit("//" + host).port  # noqa: B018  (raises ValueError on a bad port)
            except ValueError:
                problems.append(problem)
        if problems:
            raise InvalidValue(attribute.name, problems)
