"""Settings of the fake exchange (frozen values; defaults are Binance's published limits)."""

from __future__ import annotations

import enum

import attrs

from marketd.data.records import Market


@attrs.frozen
class MarketLimits:
    """Per-connection limits and keepalive of one market's WebSocket server."""

    max_messages_per_second: int
    max_streams: int = 1024
    ping_interval: float = 20.0
    pong_timeout: float = 60.0
    rest_weight_per_minute: int = 6000
    # After this many 429 replies within one minute the IP is banned (418); 0: never.
    ban_after_rejections: int = 0
    # Seconds a 418 ban lasts (Binance: 2 minutes to 3 days).
    ban_seconds: float = 120.0


SPOT_LIMITS = MarketLimits(5, ping_interval=20.0, pong_timeout=60.0, rest_weight_per_minute=6000)
USDM_LIMITS = MarketLimits(10, ping_interval=180.0, pong_timeout=600.0, rest_weight_per_minute=2400)


class FaultKind(enum.Enum):
    DROP = "drop"  # TCP reset, no WebSocket close handshake
    SERVER_SHUTDOWN = (
        "server_shutdown"  # the serverShutdown event (then a 1001 close after `seconds`)
    )
    MALFORMED = "malformed"  # `count` broken frames
    UNKNOWN_EVENT = "unknown_event"  # `count` frames with an unknown event type
    STALL = "stall"  # nothing at all (no data, no pings, no pongs) for `seconds`
    GAP = "gap"  # skip the next `count` sequenced frames (trade / aggTrade / depth);
    # with `symbol`: the next `count` depth diffs of that symbol, on every connection
    FUZZ = "fuzz"  # `count` mutated frames per connection, none usable (see fakex.fuzz);
    # deterministic from `seed`
    CORRUPT_LEVEL = "corrupt_level"  # the next `count` depth diffs sent (of `symbol`, else
    # of every symbol) each carry one extra level with a wrong quantity: ids intact, the
    # true book unchanged (see MarketHub.corrupt)


@attrs.frozen
class Fault:
    """One fault to inject into the open WebSocket connections of ``market`` (None: both)."""

    kind: FaultKind
    market: Market | None = None
    count: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    seconds: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    symbol: str | None = None  # `gap`, `corrupt_level`: one symbol's diffs (upper case)
    seed: int | None = None  # `fuzz` only; None: derived from the exchange's seed


@attrs.frozen
class PeriodicFault:
    """Inject ``fault`` every ``every`` seconds."""

    fault: Fault
    every: float = attrs.field(validator=attrs.validators.gt(0.0))


@attrs.frozen
class FakeExchangeConfig:
    """Everything the fake exchange needs; ``rate`` 0 means as fast as the clients read."""

    host: str = "127.0.0.1"
    ws_port: int = 0
    rest_port: int = 0
    symbols: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    seed: int = 1
    rate: float = attrs.field(default=100.0, validator=attrs.validators.ge(0.0))
    book_levels: int = attrs.field(default=100, validator=attrs.validators.ge(10))
    history: int = attrs.field(default=100_000, validator=attrs.validators.ge(1))
    # Depth diffs remembered per symbol so tests can read the true book at an update id
    # (``FakeExchange.true_book``); 0: off.
    book_journal: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    # Tests: every kline interval lasts this many ms, so candles close (``x: true``) without
    # waiting real minutes; the payloads still name Binance's intervals. 0: their real lengths.
    kline_ms: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    spot: MarketLimits = SPOT_LIMITS
    usdm: MarketLimits = USDM_LIMITS
    max_queue: int = 200_000  # frames queued for one connection before it is cut as too slow
    periodic_faults: tuple[PeriodicFault, ...] = ()
    paused: bool = False

    def limits(self, market: Market) -> MarketLimits:
        return self.spot if market is Market.SPOT else self.usdm
