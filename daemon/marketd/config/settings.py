"""Configuration: frozen attrs classes, loaded from YAML and overlaid by environment.

Environment variables are named ``MARKETD_<SECTION>__<KEY>`` (nested deeper with more
``__``), e.g. ``MARKETD_KAFKA__BOOTSTRAP_SERVERS``. See ``conf/marketd.yaml`` for every key
and :mod:`marketd.config.load` for loading.

Every field carries its range check as an attrs validator, so an out-of-range value cannot
be constructed. A validator raises :class:`InvalidValue`, which holds the problems without
the dotted key; the loader runs all validators itself to report every problem at once.
Fields marked ``metadata={"secret": True}`` are masked when the configuration is shown.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from marketd.config.alerts import AlertSettings, GatewaySettings
from marketd.config.books import BookSettings
from marketd.config.collector import CollectorSettings
from marketd.config.notify import NotifierSettings, check_notifiers, notify_problems
from marketd.config.recorder import RecorderSettings
from marketd.config.shards import empty_shards
from marketd.config.telemetry import ReadinessSettings, TelemetrySettings
from marketd.config.validators import (
    SECRET,
    InvalidValue,
    _fail,
    _fail_relational,
    at_least,
    greater_than,
    one_of,
    url,
    within,
)
from marketd.data.records import Market
from marketd.exchanges import adapter
from marketd.roles import COLLECTOR, DEFAULT_ROLES, role_problems
from marketd.spool.settings import SpoolSettings

LIVE_SPOT_WS_URL = "wss://stream.binance.com:9443"
LIVE_SPOT_REST_URL = "https://api.binance.com"
LIVE_FUTURES_WS_URL = "wss://fstream.binance.com"
LIVE_FUTURES_REST_URL = "https://fapi.binance.com"

COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("console", "json")
DELIVERY_MODES = ("at_least_once", "exactly_once")

# --- The stream vocabulary: the exchange adapter's table (marketd.exchanges) -----------

CHANNELS: dict[Market, frozenset[str]] = {m: adapter(m).vocabulary.channels() for m in Market}
"""Per-symbol stream suffixes (``<symbol>@<channel>``) each market serves."""

ALL_MARKET_STREAMS: dict[Market, frozenset[str]] = {
    m: adapter(m).vocabulary.all_market_streams() for m in Market
}
"""All-market streams (``!...``) known per market."""

RETIRED_STREAMS: dict[Market, Mapping[str, str]] = {
    m: adapter(m).vocabulary.retired_streams for m in Market
}

_SYMBOL_RE = {
    Market.SPOT: re.compile(r"[A-Z0-9]+"),
    # USD-M delivery contracts carry their expiry: BTCUSDT_260626.
    Market.USDM: re.compile(r"[A-Z0-9]+(?:_[0-9]{6})?"),
}
_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")


def parse_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); ValueError when malformed."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"must be host:port, got {text!r}")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError(f"must be host:port ([v6-address]:port for IPv6), got {text!r}")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"must be host:port (write IPv6 as [address]:port), got {text!r}")
    else:
        try:
            host.encode("idna")  # what binding does first: ``a..b`` fails there, not here
        except UnicodeError:
            raise ValueError(f"{host!r} is not a valid host name, got {text!r}") from None
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    return host, port


def _listen_address(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        parse_host_port(value)
    except ValueError as exc:
        raise _fail(attribute, str(exc)) from None


def _bootstrap_servers(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        return  # no Kafka: the embedded bus
    problems = []
    for server in value.split(","):
        try:
            _, port = parse_host_port(server)
        except ValueError as exc:
            problems.append(f"{server.strip()!r}: {exc} (comma-separated host:port list)")
            continue
        if port == 0:
            problems.append(f"{server.strip()!r}: port must be in 1..65535")
    if problems:
        raise InvalidValue(attribute.name, problems)


def _non_empty(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise _fail(attribute, "must not be empty")


def _topic(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _TOPIC_RE.fullmatch(value) or value in (".", ".."):
        raise _fail(
            attribute, f"must be a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -), got {value!r}"
        )


def _max_s(inst: BackoffSettings, attribute: attrs.Attribute[Any], value: float) -> None:
    at_least(0)(inst, attribute, value)
    if value < inst.initial_s:
        raise _fail_relational(
            attribute, f"must be >= initial_s ({inst.initial_s:g}), got {value!r}"
        )


def _sasl_mechanism(inst: KafkaSettings, attribute: attrs.Attribute[Any], value: str) -> None:
    one_of(SASL_MECHANISMS)(inst, attribute, value)
    sasl = inst.security_protocol.startswith("SASL_")
    if sasl and not value:
        raise _fail_relational(
            attribute, f"must be set when security_protocol is {inst.security_protocol}"
        )
    if value and not sasl:
        raise _fail_relational(attribute, "needs security_protocol SASL_PLAINTEXT or SASL_SSL")


def _sasl_credential(inst: KafkaSettings, attribute: attrs.Attribute[Any], value: str) -> None:
    sasl = inst.security_protocol.startswith("SASL_")
    if sasl and inst.sasl_mechanism in SASL_MECHANISMS[1:] and not value:
        raise _fail_relational(attribute, f"must be set for sasl_mechanism {inst.sasl_mechanism}")


def _lower(value: str) -> str:
    return value.strip().lower() if isinstance(value, str) else value


def _upper(value: str) -> str:
    return value.strip().upper() if isinstance(value, str) else value


# --- settings ------------------------------------------------------------------------


@attrs.frozen
class BackoffSettings:
    initial_s: float = attrs.field(default=0.5, validator=greater_than(0))
    max_s: float = attrs.field(default=30.0, validator=_max_s)
    multiplier: float = attrs.field(default=2.0, validator=at_least(1))
    jitter: float = attrs.field(default=0.5, validator=within(0, 1))
    reset_after_s: float = attrs.field(default=60.0, validator=greater_than(0))


@attrs.frozen
class ExchangeSettings:
    """How to reach the exchange and keep its connections healthy (the ``binance:`` section:
    its WebSocket and REST base URLs per market, message-rate limits, timeouts)."""

    spot_ws_url: str = attrs.field(default=LIVE_SPOT_WS_URL, validator=url("ws", "wss"))
    spot_rest_url: str = attrs.field(default=LIVE_SPOT_REST_URL, validator=url("http", "https"))
    futures_ws_url: str = attrs.field(default=LIVE_FUTURES_WS_URL, validator=url("ws", "wss"))
    futures_rest_url: str = attrs.field(
        default=LIVE_FUTURES_REST_URL, validator=url("http", "https")
    )
    # Per-connection limits (Binance: 1024 streams; messages per second: the adapter's).
    max_streams_per_connection: int = attrs.field(default=1024, validator=within(1, 1024))
    spot_messages_per_second: float = attrs.field(
        default=4.0,
        validator=within(0, adapter(Market.SPOT).max_messages_per_second, low_open=True),
    )
    futures_messages_per_second: float = attrs.field(
        default=8.0,
        validator=within(0, adapter(Market.USDM).max_messages_per_second, low_open=True),
    )
    # No frame for this long → the connection is stale and is replaced.
    stale_after_s: float = attrs.field(default=30.0, validator=greater_than(0))
    # Rotate before Binance cuts the connection at 24 h.
    rotate_after_s: float = attrs.field(
        default=23.5 * 3600, validator=within(0, 86_400, low_open=True)
    )
    connect_timeout_s: float = attrs.field(default=10.0, validator=greater_than(0))
    rest_timeout_s: float = attrs.field(default=10.0, validator=greater_than(0))
    # Frames read from one connection are handed on in batches of at most this many.
    max_frames_per_batch: int = attrs.field(default=500, validator=at_least(1))
    reconnect: BackoffSettings = attrs.field(factory=BackoffSettings)

    # The keys above name the market (the file's format predates the adapters); the
    # stages ask per market (per adapter) here.

    def ws_url(self, market: Market) -> str:
        return self.futures_ws_url if market is Market.USDM else self.spot_ws_url

    def rest_url(self, market: Market) -> str:
        return self.futures_rest_url if market is Market.USDM else self.spot_rest_url

    def rest_urls(self) -> dict[Market, str]:
        return {m: self.rest_url(m) for m in Market}

    def messages_per_second(self, market: Market) -> float:
        if market is Market.USDM:
            return self.futures_messages_per_second
        return self.spot_messages_per_second


def _symbols(values: Iterable[str]) -> tuple[str, ...]:
    """Symbols are stored upper-case, whatever case they were written in."""
    return tuple(v.strip().upper() if isinstance(v, str) else v for v in values)


def _strip_all(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(v.strip() if isinstance(v, str) else v for v in values)


def _streams(values: Iterable[str]) -> tuple[str, ...]:
    """Per-symbol stream names get a lower-case symbol, as Binance wants."""
    out = []
    for v in values:
        if isinstance(v, str) and not v.strip().startswith("!") and "@" in v:
            symbol, _, channel = v.strip().partition("@")
            v = f"{symbol.lower()}@{channel}"
        out.append(v.strip() if isinstance(v, str) else v)
    return tuple(out)


def _duplicates(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for v in values:
        if v in seen and v not in repeated:
            repeated.append(v)
        seen.add(v)
    return repeated


def _check_symbols(
    inst: Subscription, attribute: attrs.Attribute[Any], value: tuple[str, ...]
) -> None:
    pattern = _SYMBOL_RE[inst.market]
    shown = "upper-case letters and digits"
    if inst.market is Market.USDM:
        shown += ", delivery contracts as SYMBOL_YYMMDD"
    problems = [f"{s!r} is not a symbol ({shown})" for s in value if not pattern.fullmatch(s)]
    problems += [f"{s} is given twice" for s in _duplicates(value)]
    relational = ["symbols are given but no channels"] if value and not inst.channels else []
    if problems or relational:
        raise InvalidValue(attribute.name, problems, relational=relational)


def _unknown_channel(channel: str, market: Market) -> str:
    close = difflib.get_close_matches(channel, sorted(CHANNELS[market]), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    known = adapter(market).vocabulary.channel_help()
    return f"unknown channel {channel!r} on {market.value} ({hint}known: {known})"


def _check_channels(
    inst: Subscription, attribute: attrs.Attribute[Any], value: tuple[str, ...]
) -> None:
    known = CHANNELS[inst.market]
    problems = [_unknown_channel(c, inst.market) for c in value if c not in known]
    problems += [f"{c} is given twice" for c in _duplicates(value)]
    relational = ["channels are given but no symbols"] if value and not inst.symbols else []
    if problems or relational:
        raise InvalidValue(attribute.name, problems, relational=relational)


def _check_streams(
    inst: Subscription, attribute: attrs.Attribute[Any], value: tuple[str, ...]
) -> None:
    market = inst.market
    problems = []
    for stream in value:
        if stream.startswith("!"):
            if stream in RETIRED_STREAMS.get(market, {}):
                reason = RETIRED_STREAMS[market][stream]
                problems.append(f"{stream} is not available on {market.value}: {reason}")
            elif stream not in ALL_MARKET_STREAMS[market]:
                known = ", ".join(sorted(ALL_MARKET_STREAMS[market]))
                problems.append(
                    f"unknown all-market stream {stream!r} on {market.value} (known: {known})"
                )
            continue
        symbol, at, channel = stream.partition("@")
        if not at or not _SYMBOL_RE[market].fullmatch(symbol.upper()):
            problems.append(f"{stream!r} is not a stream name (<symbol>@<channel> or !<name>)")
        elif channel not in CHANNELS[market]:
            problems.append(f"{stream!r}: {_unknown_channel(channel, market)}")
    problems += [f"{s} is given twice" for s in _duplicates(value)]
    if problems:
        raise InvalidValue(attribute.name, problems)
    if not value and not inst.symbols and not inst.channels:
        nothing = "subscribes to nothing: give symbols and channels, or streams"
        raise InvalidValue(attribute.name, [], relational=[nothing], whole=True)


@attrs.frozen
class Subscription:
    """Streams on one market: every symbol with every channel, plus raw ``streams``.

    ``channels`` are stream suffixes (``trade``, ``aggTrade``, ``depth@100ms``,
    ``bookTicker``, ``miniTicker``, ``ticker``, ``markPrice@1s``); ``streams`` are
    full names, typically all-market streams such as ``!miniTicker@arr``.
    Symbols are stored upper-case; see :data:`CHANNELS` and :data:`ALL_MARKET_STREAMS`
    for what each market serves.
    """

    market: Market
    symbols: tuple[str, ...] = attrs.field(default=(), converter=_symbols, validator=_check_symbols)
    channels: tuple[str, ...] = attrs.field(
        default=(), converter=_strip_all, validator=_check_channels
    )
    streams: tuple[str, ...] = attrs.field(default=(), converter=_streams, validator=_check_streams)


def default_subscriptions() -> tuple[Subscription, ...]:
    return (
        Subscription(
            market=Market.SPOT,
            symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"),
            channels=("trade", "depth@100ms"),
        ),
        Subscription(market=Market.USDM, streams=("!miniTicker@arr",)),
    )


@attrs.frozen
class TopicSettings:
    raw: str = attrs.field(default="marketdata.raw", validator=_topic)
    depth: str = attrs.field(default="marketdata.depth", validator=_topic)
    orderbook: str = attrs.field(default="marketdata.orderbook", validator=_topic)
    alerts: str = attrs.field(default="alerts", validator=_topic)
    # What happened after each alert (marketd.v1.AlertOutcome): +1/+5/+15 min prices.
    outcomes: str = attrs.field(default="alerts.outcomes", validator=_topic)
    # What the collector could not see (marketd.v1.StatusEvent, status.proto): streams up
    # and down, depth gaps, unfilled trades, book resyncs, intake stopped.
    status: str = attrs.field(default="marketd.status", validator=_topic)


@attrs.frozen
class KafkaSettings:
    # Empty: no Kafka, the pipeline runs on the embedded in-process bus.
    bootstrap_servers: str = attrs.field(default="", validator=_bootstrap_servers)
    client_id: str = attrs.field(default="marketd", validator=_non_empty)
    compression: str = attrs.field(  # none | gzip | snappy | lz4 | zstd
        default="none", converter=_lower, validator=one_of(COMPRESSIONS)
    )
    # The producer's own linger (aiokafka): ms a batch handed to it waits before it is sent.
    linger_ms: int = attrs.field(default=5, validator=at_least(0))
    # Adaptive linger (at_least_once; exactly_once gathers by transaction_interval_ms):
    # the publisher gathers its input into chunks of at least this many records (at most
    # max_records_per_send) before handing one to the producer; a smaller chunk waits for
    # more, up to linger_max_ms. Every hand-over costs a produce cycle (a request and its
    # partition batches through aiokafka and trio-asyncio: ~1-3 ms of CPU measured on 2
    # vCPUs, however few records it carries), so this keeps
    # the cycles per second in proportion to the records rather than to time: at low
    # rates - and for each of N shards, at 1/N of the rate - a chunk waits longer instead
    # of paying a cycle for a handful of records. At high rates a chunk fills at once and
    # nothing waits; a chunk holding an alert (topics.alerts) never waits. 0: hand over
    # whatever is there (the linger is linger_ms alone).
    linger_records: int = attrs.field(default=250, validator=at_least(0))
    # Longest a chunk waits for linger_records (ms): the latency the adaptive linger adds
    # at most (at rates below linger_records / linger_max_ms per process).
    linger_max_ms: int = attrs.field(default=50, validator=within(0, 60_000))
    max_batch_bytes: int = attrs.field(default=1_048_576, validator=at_least(1))
    request_timeout_ms: int = attrs.field(default=10_000, validator=at_least(1))
    # Records handed to aiokafka per trio→asyncio crossing (at most: what is queued).
    # Large when behind: aiokafka keeps one batch per partition in flight, so the
    # per-partition batch size is what carries a backlog away.
    max_records_per_send: int = attrs.field(default=5000, validator=at_least(1))
    # Batches handed to aiokafka but not yet acknowledged (the in-flight window).
    max_inflight_batches: int = attrs.field(default=4, validator=at_least(1))
    security_protocol: str = attrs.field(  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
        default="PLAINTEXT", converter=_upper, validator=one_of(SECURITY_PROTOCOLS)
    )
    sasl_mechanism: str = attrs.field(  # "" | PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
        default="", converter=_upper, validator=_sasl_mechanism
    )
    sasl_username: str = attrs.field(default="", validator=_sasl_credential)
    sasl_password: str = attrs.field(  # secret: masked
        default="", repr=False, validator=_sasl_credential, metadata=SECRET
    )
    retry: BackoffSettings = attrs.field(factory=lambda: BackoffSettings(initial_s=0.2, max_s=10.0))
    topics: TopicSettings = attrs.field(factory=TopicSettings)
    # at_least_once | exactly_once (needs the spool): see docs/DELIVERY.md.
    delivery: str = attrs.field(
        default="at_least_once", converter=_lower, validator=one_of(DELIVERY_MODES)
    )
    # exactly_once: the producer's transactional id, stable per collector (a restart with
    # the same id fences its previous incarnation). Empty: "<client_id>.<spool id>", the
    # spool id being made once and kept in the spool directory (file producer.id).
    transactional_id: str = ""
    # exactly_once: how long a transaction gathers records before it commits (ms).
    transaction_interval_ms: int = attrs.field(default=100, validator=within(1, 60_000))
    # exactly_once: the compacted topic holding each collector's last committed spool
    # position (created with cleanup.policy=compact if missing).
    progress_topic: str = attrs.field(default="marketd.progress", validator=_topic)

    @property
    def enabled(self) -> bool:
        return bool(self.bootstrap_servers.strip())

    @property
    def exactly_once(self) -> bool:
        return self.delivery == "exactly_once"


@attrs.frozen
class PipelineSettings:
    # Capacity, in batches, of each bounded channel between stages: the backpressure.
    channel_capacity: int = attrs.field(default=16, validator=at_least(1))
    # Under load, the normalizer hands on at most one record batch per this interval, made
    # of every frame batch that came in meanwhile (up to ``binance.max_frames_per_batch``
    # frames): fewer, larger batches through the books, spool and sink (each costs per
    # batch). Only batches that come faster than this wait, at most this long. 0: no wait
    # (batches already queued still go on together).
    batch_interval_ms: float = attrs.field(default=10.0, validator=within(0, 1000))
    # Backfill missed trades from REST after a reconnect (trade ids stay consecutive).
    backfill_trades: bool = True
    backfill_max_trades: int = attrs.field(default=10_000, validator=at_least(1))


@attrs.frozen
class HttpSettings:
    # host:port; port 0 picks a free port (tests).
    listen: str = attrs.field(default="127.0.0.1:8080", validator=_listen_address)


@attrs.frozen
class LogSettings:
    level: str = attrs.field(  # debug | info | warning | error
        default="info", converter=_lower, validator=one_of(LOG_LEVELS)
    )
    format: str = attrs.field(  # console | json
        default="console", converter=_lower, validator=one_of(LOG_FORMATS)
    )
    # Counters are summarised in one log line this often (no per-message logs).
    stats_interval_s: float = attrs.field(default=10.0, validator=greater_than(0))


@attrs.frozen
class ShutdownSettings:
    # 0 → cancel at once, no draining.
    grace_s: float = attrs.field(default=10.0, validator=at_least(0))


@attrs.frozen
class SupervisorSettings:
    restart: BackoffSettings = attrs.field(factory=BackoffSettings)


def _some_subscription(_: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    if not value:
        raise _fail(attribute, "at least one subscription is needed")


def _lower_all(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(_lower(v) for v in values)


def _check_roles(inst: Settings, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    problems, relational = role_problems(
        value,
        alerts_enabled=inst.alerts.enabled,
        alerts_source=inst.alerts.source,
        kafka_enabled=inst.kafka.enabled,
        recorder_enabled=inst.recorder.enabled,
    )
    if problems or relational:
        raise InvalidValue(attribute.name, problems, relational=relational)


def _check_notifications(
    _: Any, attribute: attrs.Attribute[Any], value: tuple[NotifierSettings, ...]
) -> None:
    problems = check_notifiers(value)
    if problems:
        raise InvalidValue(attribute.name, problems)


def _check_notify(inst: Settings, attribute: attrs.Attribute[Any], value: AlertSettings) -> None:
    """Every notifier a rule names is in ``notifications``."""
    named = [(f"rules[{i}].notify", rule.notify) for i, rule in enumerate(value.rules)]
    relational = notify_problems(named, {n.name for n in inst.notifications})
    if relational:
        raise InvalidValue(attribute.name, [], relational=relational)


def _check_delivery(inst: Settings, attribute: attrs.Attribute[Any], value: KafkaSettings) -> None:
    """Exactly once resumes from the spool's positions: it needs the spool."""
    if value.exactly_once and value.enabled and not inst.spool.enabled:
        raise _fail_relational(
            attribute,
            "delivery: exactly_once needs the spool (spool.enabled: true): the "
            "committed spool position is what a restart resumes from; enable the spool "
            "or use at_least_once",
        )


def _check_collector(
    inst: Settings, attribute: attrs.Attribute[Any], value: CollectorSettings
) -> None:
    """Shards share nothing but Kafka; every shard must collect something."""
    if value.shards <= 1:
        return
    problems = []
    if COLLECTOR not in inst.roles:
        problems.append("shards split the collector: roles must include collector")
    if value.parent and not inst.kafka.enabled:
        problems.append("shards > 1 needs kafka.bootstrap_servers: Kafka is all the shards share")
    # The parent checks every shard; a worker (whose subscriptions may already be its own
    # part alone) only itself.
    empty = empty_shards(inst.subscriptions, value.shards)
    if value.worker:
        empty = [i for i in empty if i == value.shard]
    if empty:
        problems.append(
            f"shards {empty} of {value.shards} would collect nothing (fewer symbols than "
            "shards): lower shards"
        )
    if problems:
        raise InvalidValue(attribute.name, [], relational=problems)


def subscribed_kinds(subscriptions: Iterable[Subscription]) -> set[tuple[Market, str]]:
    """(market, kind) of every stream kind the subscriptions carry, as the adapters' tables
    name them."""
    carried: set[tuple[Market, str]] = set()
    for sub in subscriptions:
        vocabulary = adapter(sub.market).vocabulary
        for name in [f"x@{c}" for c in sub.channels] + list(sub.streams):
            if (kind := vocabulary.kind_of(name)) is not None:
                carried.add((sub.market, kind))
    return carried


@attrs.frozen
class Settings:
    # What this process runs: collector, detector, gateway, recorder (see marketd.roles).
    roles: tuple[str, ...] = attrs.field(
        default=DEFAULT_ROLES, converter=_lower_all, validator=_check_roles
    )
    binance: ExchangeSettings = attrs.field(factory=ExchangeSettings)
    subscriptions: tuple[Subscription, ...] = attrs.field(
        factory=default_subscriptions, validator=_some_subscription
    )
    kafka: KafkaSettings = attrs.field(factory=KafkaSettings, validator=_check_delivery)
    pipeline: PipelineSettings = attrs.field(factory=PipelineSettings)
    http: HttpSettings = attrs.field(factory=HttpSettings)
    log: LogSettings = attrs.field(factory=LogSettings)
    shutdown: ShutdownSettings = attrs.field(factory=ShutdownSettings)
    supervisor: SupervisorSettings = attrs.field(factory=SupervisorSettings)
    alerts: AlertSettings = attrs.field(factory=AlertSettings, validator=_check_notify)
    gateway: GatewaySettings = attrs.field(factory=GatewaySettings)
    # Where alerts go besides browsers (see marketd.config.notify); rules choose by name.
    notifications: tuple[NotifierSettings, ...] = attrs.field(
        default=(), validator=_check_notifications
    )
    books: BookSettings = attrs.field(factory=BookSettings)
    telemetry: TelemetrySettings = attrs.field(factory=TelemetrySettings)
    readiness: ReadinessSettings = attrs.field(factory=ReadinessSettings)
    spool: SpoolSettings = attrs.field(factory=SpoolSettings)
    recorder: RecorderSettings = attrs.field(factory=RecorderSettings)
    # The collector's split into shards (marketd.config.shards, marketd.shards).
    collector: CollectorSettings = attrs.field(
        factory=CollectorSettings, validator=_check_collector
    )
