"""Settings of the local order books (snapshot + diff sync) and their REST budget."""

from __future__ import annotations

import attrs

from marketd.config.validators import at_least, greater_than, within


@attrs.frozen
class BookSettings:
    # Keep books for the symbols with a depth subscription.
    enabled: bool = True
    # Levels kept per side; deeper levels are pruned.
    depth: int = attrs.field(default=1000, validator=within(1, 5000))
    # Levels requested in REST depth snapshots (USD-M serves at most 1000).
    snapshot_limit: int = attrs.field(default=1000, validator=within(5, 5000))
    # Seconds between top-N snapshots published to the orderbook topic (synced books only).
    publish_interval_s: float = attrs.field(default=1.0, validator=greater_than(0))
    # Levels per side in published snapshots.
    publish_levels: int = attrs.field(default=20, validator=at_least(1))
    # Snapshot requests in flight at once, per market.
    max_concurrent_snapshots: int = attrs.field(default=2, validator=at_least(1))
    # Fraction of Binance's per-minute REST weight budget marketd may use.
    weight_budget_fraction: float = attrs.field(default=0.5, validator=within(0, 1, low_open=True))
    # Binance's spot REST request-weight limit per minute and IP.
    spot_weight_limit: int = attrs.field(default=6000, validator=at_least(1))
    # Binance's USD-M futures REST request-weight limit per minute and IP.
    futures_weight_limit: int = attrs.field(default=2400, validator=at_least(1))
    # Diffs buffered per symbol while it waits for a snapshot; the oldest are dropped beyond.
    max_buffered_diffs: int = attrs.field(default=10_000, validator=at_least(1))
