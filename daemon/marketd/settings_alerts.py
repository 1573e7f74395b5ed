"""Settings of the alerter: detector rules, its input, and the browser gateway."""

from __future__ import annotations

import attrs

from marketd.validators import SECRET, at_least, greater_than


@attrs.frozen
class RuleSettings:
    """One detection rule: alert when the price moves more than ``threshold_pct`` against
    the oldest price in the last ``window_s`` seconds, then stay quiet ``cooldown_s``."""

    name: str = "default"
    window_s: float = attrs.field(default=60.0, validator=greater_than(0))
    threshold_pct: float = attrs.field(default=2.0, validator=greater_than(0))
    cooldown_s: float = attrs.field(default=30.0, validator=at_least(0))


@attrs.frozen
class AlertSettings:
    enabled: bool = True
    # Event kinds that feed the detector (Binance event types).
    kinds: tuple[str, ...] = ("24hrMiniTicker",)
    # Markets watched.
    markets: tuple[str, ...] = ("usdm",)
    rules: tuple[RuleSettings, ...] = (RuleSettings(),)
    # Directory for state that survives restarts (rules changed at runtime).
    state_dir: str = "var"
    # Kafka consumer group of the detector (when Kafka is configured).
    consumer_group: str = "marketd-detector"


@attrs.frozen
class GatewaySettings:
    # Alerts a new client receives first, and the default of GET /api/alerts.
    replay: int = attrs.field(default=50, validator=at_least(0))
    # Alerts kept in memory for replay and the API.
    history: int = attrs.field(default=1000, validator=at_least(1))
    # Messages queued per WebSocket client before it is dropped as too slow.
    client_queue: int = attrs.field(default=256, validator=at_least(1))
    # Origins allowed to open /ws/alerts besides the page's own ("*" allows any).
    allowed_origins: tuple[str, ...] = ()
    # Bearer token required by PUT /api/rules; empty disables rule changes over HTTP.
    api_token: str = attrs.field(default="", repr=False, metadata=SECRET)
    # Directory of the browser UI; empty: the ui/ directory shipped with marketd.
    ui_dir: str = ""
