"""Settings of the local order books (snapshot + diff sync) and their REST budget.

**Time to ready: shallow first, deeper later.** A snapshot's weight grows with its depth
(spot 5 up to 100 levels, 25 to 500, 50 to 1000, 250 to 5000; USD-M 2 up to 50, 5 to 100,
10 to 500, 20 to 1000), and a book publishes only its top ``publish_levels`` (20). So a
book (re)syncs from a *sync snapshot* of ``sync_snapshot_limit`` levels — by default the
deepest that weighs what ``publish_levels`` weighs: spot 100 (weight 5), USD-M 50
(weight 2) — and is deepened towards ``snapshot_limit`` afterwards, one weight step at a
time (spot 100 → 500 → 1000, USD-M 50 → 100 → 500 → 1000), in the background, with what
is left of the budget (see :mod:`marketd.books.service`). With the default budget (half of
6000 and 2400 a minute) 300 spot books sync on 1,500 weight (about 25 s of the pacing)
and 500 USD-M books on 1,000 (about 45 s) instead of 15,000 (5 min) and 10,000 (over
8 min) at 1000 levels.

The price: until it is deepened a book knows only the price range its sync snapshot
showed (its published top ``publish_levels`` stay exact: levels diffs add inside that
range are kept, none beyond it is ever used), so if the price moves so far that fewer
than ``publish_levels`` known levels remain on a side it resyncs (reason ``shallow``):
it is not published until a snapshot one weight step deeper than the one it had has
synced it. Liquid, fast-moving books therefore resync once or twice in their first
minutes (how often depends on how far their price moves against the depth of the
snapshot), quiet ones never. Deepening a book is one of its audits (the levels both know
are compared): it starts only while less than ``deepen_budget_fraction`` of the budget
is in use, never while a sync snapshot waits or a backfill does, and takes the book that
knows the fewest levels first. ``sync_snapshot_limit: 1000`` restores full-depth syncs
(nothing to deepen, no ``shallow`` resyncs, but a full market needs 5 to 9 minutes).

**Audit weight.** Each market audits one synced book every ``audit_interval_s`` (round
robin; see :mod:`marketd.books.audit`), so the audits' REST weight depends on the interval
and the snapshot limit's weight, not on the number of symbols. With the defaults (10 s,
``snapshot_limit`` 1000): 3600 / 10 = 360 audits an hour per market; spot weighs 50 per
snapshot (limit <= 1000) → 18,000 an hour (300 a minute on average: 5 % of Binance's
6000, 10 % of marketd's default budget of 3000); USD-M weighs 20 → 7,200 an hour (120 a
minute: 5 % of 2400, 10 % of the budget of 1200). With 100 symbols in one market each book
is audited every 100 * 10 s = 1000 s (about 17 min); 100 in each market: the same, on
both. Audits take the budget last (after the backfill, the sync snapshots and the
deepening) and skip a round when more than half of it is in use. An audit asks for
``snapshot_limit`` levels, so it also deepens a book that was still shallow.
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
    # Levels of the REST depth snapshots that deepen and audit the books (USD-M serves at
    # most 1000): how deep a book gets once it is deepened.
    snapshot_limit: int = attrs.field(default=1000, validator=within(5, 5000))
    # Levels of the snapshot a book (re)syncs from, rounded up to the deepest limit of the
    # same weight; 0: publish_levels (so spot 100: weight 5, USD-M 50: weight 2). At most
    # snapshot_limit; below it the book is deepened later.
    sync_snapshot_limit: int = attrs.field(default=0, validator=within(0, 5000))
    # Deepening starts only while less than this fraction of the weight budget is in use
    # (after sync snapshots and backfill, before audits). 0: no deepening (audits still
    # deepen, one book per audit_interval_s).
    deepen_budget_fraction: float = attrs.field(default=0.5, validator=within(0, 1))
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
