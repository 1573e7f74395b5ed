"""Configuration: frozen attrs classes, loaded from YAML and overlaid by environment.

Environment variables are named ``MARKETD_<SECTION>__<KEY>`` (nested deeper with more
``__``), e.g. ``MARKETD_KAFKA__BOOTSTRAP_SERVERS``. See ``conf/marketd.yaml`` for every key.
"""

from __future__ import annotations

import attrs

from marketd.records import Market

LIVE_SPOT_WS_URL = "wss://stream.binance.com:9443"
LIVE_SPOT_REST_URL = "https://api.binance.com"
LIVE_FUTURES_WS_URL = "wss://fstream.binance.com"
LIVE_FUTURES_REST_URL = "https://fapi.binance.com"


@attrs.frozen
class BackoffSettings:
    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    reset_after_s: float = 60.0


@attrs.frozen
class BinanceSettings:
    spot_ws_url: str = LIVE_SPOT_WS_URL
    spot_rest_url: str = LIVE_SPOT_REST_URL
    futures_ws_url: str = LIVE_FUTURES_WS_URL
    futures_rest_url: str = LIVE_FUTURES_REST_URL
    # Per-connection limits (Binance: 1024 streams; 5 msg/s spot, 10 msg/s futures).
    max_streams_per_connection: int = 1024
    spot_messages_per_second: float = 4.0
    futures_messages_per_second: float = 8.0
    # No frame for this long → the connection is stale and is replaced.
    stale_after_s: float = 30.0
    # Rotate before Binance cuts the connection at 24 h.
    rotate_after_s: float = 23.5 * 3600
    connect_timeout_s: float = 10.0
    rest_timeout_s: float = 10.0
    # Frames read from one connection are handed on in batches of at most this many.
    max_frames_per_batch: int = 500
    reconnect: BackoffSettings = attrs.field(factory=BackoffSettings)


@attrs.frozen
class Subscription:
    """Streams on one market: ``symbols`` × ``channels`` plus raw ``streams``.

    ``channels`` are stream suffixes (``trade``, ``aggTrade``, ``depth@100ms``,
    ``bookTicker``, ``miniTicker``, ``ticker``, ``markPrice@1s``); ``streams`` are
    full names, typically all-market streams such as ``!miniTicker@arr``.
    """

    market: Market
    symbols: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()


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
    raw: str = "marketdata.raw"
    depth: str = "marketdata.depth"
    orderbook: str = "marketdata.orderbook"
    alerts: str = "alerts"


@attrs.frozen
class KafkaSettings:
    # Empty: no Kafka, the pipeline runs on the embedded in-process bus.
    bootstrap_servers: str = ""
    client_id: str = "marketd"
    compression: str = "none"  # none | gzip | snappy | lz4 | zstd
    linger_ms: int = 5
    max_batch_bytes: int = 1_048_576
    request_timeout_ms: int = 10_000
    # Records handed to aiokafka per trio→asyncio crossing.
    max_records_per_send: int = 1000
    # Batches handed to aiokafka but not yet acknowledged (the in-flight window).
    max_inflight_batches: int = 8
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = ""  # "" | PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: str = attrs.field(default="", repr=False)  # secret: masked
    retry: BackoffSettings = attrs.field(factory=lambda: BackoffSettings(initial_s=0.2, max_s=10.0))
    topics: TopicSettings = attrs.field(factory=TopicSettings)

    @property
    def enabled(self) -> bool:
        return bool(self.bootstrap_servers.strip())


@attrs.frozen
class PipelineSettings:
    # Capacity, in batches, of each bounded channel between stages: the backpressure.
    channel_capacity: int = 16
    # Backfill missed trades from REST after a reconnect (trade ids stay consecutive).
    backfill_trades: bool = True
    backfill_max_trades: int = 10_000


@attrs.frozen
class HttpSettings:
    listen: str = "127.0.0.1:8080"


@attrs.frozen
class LogSettings:
    level: str = "info"  # debug | info | warning | error
    format: str = "console"  # console | json
    # Counters are summarised in one log line this often (no per-message logs).
    stats_interval_s: float = 10.0


@attrs.frozen
class ShutdownSettings:
    grace_s: float = 10.0


@attrs.frozen
class SupervisorSettings:
    restart: BackoffSettings = attrs.field(factory=BackoffSettings)


@attrs.frozen
class Settings:
    binance: BinanceSettings = attrs.field(factory=BinanceSettings)
    subscriptions: tuple[Subscription, ...] = attrs.field(factory=default_subscriptions)
    kafka: KafkaSettings = attrs.field(factory=KafkaSettings)
    pipeline: PipelineSettings = attrs.field(factory=PipelineSettings)
    http: HttpSettings = attrs.field(factory=HttpSettings)
    log: LogSettings = attrs.field(factory=LogSettings)
    shutdown: ShutdownSettings = attrs.field(factory=ShutdownSettings)
    supervisor: SupervisorSettings = attrs.field(factory=SupervisorSettings)
