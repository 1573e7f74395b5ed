"""The books against the fake exchange: true to the exchange through gaps and disconnects,
per-symbol resyncs, and the REST weight budget (as the fake itself counts it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import trio
from harness import book_settings, decode, running_books

from marketd.books.service import KIND, Books
from marketd.fakex import FakeExchangeConfig, Fault, FaultKind, MarketLimits, open_fake_exchange
from marketd.records import Market, Record
from marketd.settings_books import BookSettings

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]


class Checker:
    """Compares every published snapshot with the fake's true book at its update id."""

    def __init__(self, fx: object) -> None:
        self.fx = fx
        self.diffs = 0
        self.compared: Counter[tuple[Market, str]] = Counter()
        self.levels = 0
        self.mismatches: list[str] = []

    def __call__(self, batch: list[Record]) -> None:
        for r in batch:
            if r.kind == "depthUpdate":
                self.diffs += 1
            elif r.kind == KIND:
                ev = decode(r)
                snap = ev.book_snapshot
                assert ev.symbol == r.symbol == r.key.decode()
                last, bids, asks = self.fx.true_book(  # type: ignore[attr-defined]
                    r.market, r.symbol, snap.last_update_id
                )
                got_bids = [(lv.price, lv.quantity) for lv in snap.bids]
                got_asks = [(lv.price, lv.quantity) for lv in snap.asks]
                if got_bids != bids[: snap.depth] or got_asks != asks[: snap.depth]:
                    self.mismatches.append(f"{r.market.value}:{r.symbol}@{last}")
                self.compared[(r.market, r.symbol)] += 1
                self.levels += len(got_bids) + len(got_asks)


async def wait_for(predicate: Callable[[], bool], limit_s: float = 20.0) -> None:
    with trio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110 - polls state other tasks change
            await trio.sleep(0.02)


def states(books: Books) -> dict[str, str]:
    return books.statistics().symbols


async def test_published_snapshots_equal_the_true_book_through_gaps_and_disconnects() -> None:
    config = FakeExchangeConfig(symbols=len(SYMBOLS), seed=11, rate=3000, book_journal=400_000)
    books_cfg = BookSettings(publish_interval_s=0.02, publish_levels=1000)
    with trio.fail_after(90):
        async with open_fake_exchange(config) as fx:
            settings = book_settings(fx, {Market.SPOT: SYMBOLS, Market.USDM: SYMBOLS}, books_cfg)
            check = Checker(fx)
            async with running_books(settings, check) as books:
                await wait_for(lambda: not books.statistics().not_synced)
                faults = [
                    Fault(FaultKind.GAP, Market.SPOT, count=3, symbol="ETHUSDT"),
                    Fault(FaultKind.DROP, Market.USDM),
                    Fault(FaultKind.GAP, Market.USDM, count=1, symbol="BTCUSDT"),
                    Fault(FaultKind.GAP, Market.SPOT, count=2),  # every symbol of a connection
                    Fault(FaultKind.DROP, Market.SPOT),
                    Fault(FaultKind.GAP, Market.USDM, count=5, symbol="BNBUSDT"),
                ]
                for round_ in range(3):
                    for fault in faults:
                        fx.inject_fault(fault)
                        await trio.sleep(0.4)
                    del round_
                await wait_for(lambda: check.diffs >= 30_000, limit_s=40)
                await wait_for(lambda: not books.statistics().not_synced)
                # Let every book publish again after its last resync.
                before = dict(check.compared)
                await wait_for(lambda: all(check.compared[k] > before[k] for k in before))
                st = books.statistics()
    assert check.mismatches == []
    assert set(check.compared) == {(m, s) for m in Market for s in SYMBOLS}
    assert sum(check.compared.values()) > 500
    assert check.levels > 50_000
    assert st.resyncs.get("gap", 0) >= 9  # every injected gap was noticed
    assert st.diffs_applied > 20_000
    assert st.snapshot_requests.get("ok", 0) >= 6 + 9


async def test_a_gap_in_one_symbol_resyncs_no_other() -> None:
    config = FakeExchangeConfig(symbols=len(SYMBOLS), seed=3, rate=1000)
    books_cfg = BookSettings(publish_interval_s=0.05)
    seen_unsynced: Counter[str] = Counter()
    books_ref: list[Books] = []

    def watch(batch: list[Record]) -> None:
        if books_ref:
            for name, state in states(books_ref[0]).items():
                if state != "synced":
                    seen_unsynced[name] += 1

    with trio.fail_after(40):
        async with open_fake_exchange(config) as fx:
            settings = book_settings(fx, {Market.SPOT: SYMBOLS, Market.USDM: SYMBOLS}, books_cfg)
            async with running_books(settings, watch) as books:
                await wait_for(lambda: not books.statistics().not_synced)
                books_ref.append(books)
                fx.inject_fault(Fault(FaultKind.GAP, Market.SPOT, count=1, symbol="ETHUSDT"))
                eth = books.syncs[(Market.SPOT, "ETHUSDT")]
                await wait_for(lambda: eth.resyncs["gap"] == 1)
                await wait_for(lambda: eth.synced)
                await trio.sleep(0.5)
                others = {k: dict(s.resyncs) for k, s in books.syncs.items() if s is not eth}
    assert set(seen_unsynced) == {"spot:ETHUSDT"}
    assert others == {k: {} for k in others}


async def test_the_rest_weight_budget_is_never_exceeded() -> None:
    """Twelve symbols, a small weight limit, a resync demand far above the budget."""
    limits = MarketLimits(5, rest_weight_per_minute=400)
    config = FakeExchangeConfig(symbols=12, seed=2, rate=2000, spot=limits)
    books_cfg = BookSettings(
        publish_interval_s=0.1,
        snapshot_limit=100,  # weight 5
        spot_weight_limit=400,
        weight_budget_fraction=0.5,  # 200 per minute: 40 snapshots
    )
    with trio.fail_after(40):
        async with open_fake_exchange(config) as fx:
            names = [m.spec.symbol for m in fx.model(Market.SPOT).symbols]
            settings = book_settings(fx, {Market.SPOT: names}, books_cfg)
            async with running_books(settings, lambda b: None) as books:
                for i in range(60):
                    fx.inject_fault(Fault(FaultKind.GAP, Market.SPOT, symbol=names[i % 12]))
                    await trio.sleep(0.1)
                lane = books.scheduler.statistics()[Market.SPOT]
                meter = fx.rest[Market.SPOT].meter
                st = books.statistics()
    assert meter.peak <= 200
    assert meter.rejected == 0
    assert lane.requests.get("429", 0) == 0
    assert lane.weight_used <= 200
    # The budget, not the demand, set the pace: a burst of a tenth of the budget (4), then
    # budget/60 per second (one every 1.5 s): never every symbol at once.
    assert 6 <= lane.requests["ok"] <= 10
    assert lane.queued > 0
    assert st.snapshots_applied == lane.requests["ok"]


async def test_a_ban_pauses_the_whole_market_then_books_sync() -> None:
    config = FakeExchangeConfig(symbols=6, seed=4, rate=500)
    books_cfg = BookSettings(publish_interval_s=0.1, max_concurrent_snapshots=2)
    with trio.fail_after(30):
        async with open_fake_exchange(config) as fx:
            names = [m.spec.symbol for m in fx.model(Market.SPOT).symbols]
            fx.ban(Market.SPOT, 1.5)
            settings = book_settings(fx, {Market.SPOT: names}, books_cfg)
            async with running_books(settings, lambda b: None) as books:
                await wait_for(lambda: not books.statistics().not_synced)
                lane = books.scheduler.statistics()[Market.SPOT]
                banned = fx.rest[Market.SPOT].meter.banned
    # Only the requests already in flight met the ban; then the market waited it out.
    assert 1 <= lane.requests["418"] == banned <= 2
    assert lane.requests["ok"] == 6


async def test_429_blocks_the_market_instead_of_hammering() -> None:
    """The books believe the limit is 6000; the exchange says 60. After the first 429 the
    whole market waits for Retry-After (and the used-weight header)."""
    limits = MarketLimits(5, rest_weight_per_minute=60)
    config = FakeExchangeConfig(symbols=16, seed=9, rate=500, spot=limits)
    books_cfg = BookSettings(publish_interval_s=0.1, snapshot_limit=100, max_concurrent_snapshots=2)
    with trio.fail_after(30):
        async with open_fake_exchange(config) as fx:
            names = [m.spec.symbol for m in fx.model(Market.SPOT).symbols]
            settings = book_settings(fx, {Market.SPOT: names}, books_cfg)
            async with running_books(settings, lambda b: None) as books:
                await wait_for(lambda: fx.rest[Market.SPOT].meter.rejected > 0)
                await trio.sleep(2.0)
                lane = books.scheduler.statistics()[Market.SPOT]
                rejected = fx.rest[Market.SPOT].meter.rejected
    assert 1 <= rejected <= 2
    assert lane.requests["429"] == rejected
    assert lane.blocked_s > 0 or lane.requests["ok"] >= 12
