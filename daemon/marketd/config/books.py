"""Settings of the local order books (snapshot + diff sync) and their REST budget.

**Audit weight.** Each market audits one synced book every ``audit_interval_s`` (round
robin; see :mod:`marketd.books.audit`), so the audits' REST weight depends on the interval
and the snapshot limit's weight, not on the number of symbols. With the defaults (10 s,
``snapshot_limit`` 1000): 3600 / 10 = 360 audits an hour per market; spot weighs 50 per
snapshot (limit <= 1000) → 18,000 an hour (300 a minute on average: 5 % of Binance's
6000, 10 % of marketd's default budget of 3000); USD-M weighs 20 → 7,200 an hour (120 a
minute: 5 % of 2400, 10 % of the budget of 1200). With 100 symbols in one market each book
is audited every 100 * 10 s = 1000 s (about 17 min); 100 in each market: the same, on
both. Audits take the budget last (after the backfill and the sync snapshots) and skip a
round when more than half of it is in use.
"""

from __future__ import annotations

import attrs

from marketd.config.validators import at_least, greater_than, within


@attrs.frozen
class BookSettings:
    # Keep books for the symbols with a depth subscription.
    enabled: bool = True
    # Levels kept per side (at most snapshot_limit); deeper levels are pruned.
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
    # Seconds between book audits, per market: one synced book (round robin) is compared
    # with a fresh REST snapshot, at low priority within the weight budget. 0: no audits.
    audit_interval_s: float = attrs.field(default=10.0, validator=at_least(0))
