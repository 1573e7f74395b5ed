"""Trade backfill and book snapshots on one REST weight budget, against the fake exchange.

Feeds → normalizer (with the backfiller) → books, in-process, as the daemon wires them,
with one :class:`RestBudgets` for both REST users. The fake exchange's own accounting of
every REST request (time, endpoint, status, weight) is the judge: the budget is never
exceeded, every trade gap is filled in order, and a 429 to either user stops both.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping

import attrs
import pytest
import trio
from kit.daemon import binance_settings
from kit.wait import poll_until

from marketd.books.service import Books
from marketd.config.books import BookSettings
from marketd.config.settings import BackoffSettings, Settings, Subscription
from marketd.data.records import FrameBatch, Market, Record
from marketd.fakex import FakeExchange, FakeExchangeConfig, Fault, FaultKind, open_fake_exchange
from marketd.fakex.config import SPOT_LIMITS
from marketd.fakex.rest import RestReply
from marketd.feed.connection import Feed
from marketd.feed.streams import plan_connections
from marketd.pipeline.backfill import Backfiller
from marketd.pipeline.codecs import Codecs
from marketd.pipeline.normalizer import Normalizer
from marketd.pipeline.sequence import Gap
from marketd.rest.budget import BACKFILL, SNAPSHOTS, RestBudgets
from marketd.rest.client import RestResponse
from marketd.v1.market_data_pb2 import MarketEvent

TRADE_KIND = {Market.SPOT: "trade", Market.USDM: "aggTrade"}
LAST_ID_KEY = {Market.SPOT: "last_trade_id", Market.USDM: "last_agg_id"}


@attrs.frozen
class Hit:
    """One REST request as the fake exchange saw it."""

    at: float  # trio time
    market: Market
    endpoint: str  # depth, historicalTrades, aggTrades
    status: int
    weight: int  # charged by the fake (0 when banned)


def record_hits(fx: FakeExchange) -> list[Hit]:
    """Log every REST request the fake answers, with the weight its meter charged."""
    hits: list[Hit] = []
    for market, api in fx.rest.items():
        charged = [0]

        def charge(
            weight: int,
            now_s: float,
            _orig: Callable[[int, float], int] = api.meter.charge,
            _charged: list[int] = charged,
        ) -> int:
            _charged[0] = weight
            return _orig(weight, now_s)

        def handle(
            path: str,
            query: Mapping[str, str],
            now_ms: int,
            _orig: Callable[[str, Mapping[str, str], int], RestReply] = api.handle,
            _charged: list[int] = charged,
            _market: Market = market,
        ) -> RestReply:
            _charged[0] = 0
            reply = _orig(path, query, now_ms)
            endpoint = path.rsplit("/", 1)[1]
            hits.append(Hit(trio.current_time(), _market, endpoint, reply.status, _charged[0]))
            return reply

        api.meter.charge = charge  # type: ignore[method-assign]
        api.handle = handle  # type: ignore[method-assign]
    return hits


@attrs.define
class BudgetLog:
    """When marketd took in its first 418, and when its budget admitted each request."""

    first_418: list[float] = attrs.field(factory=list)
    admitted: list[tuple[float, Market]] = attrs.field(factory=list)


def watch_budget(budgets: RestBudgets) -> BudgetLog:
    seen = BudgetLog()
    observe, acquire = budgets.observe, budgets.acquire

    def observing(market: Market, response: RestResponse, *, user: str) -> float:
        if response.status == 418 and not seen.first_418:
            seen.first_418.append(trio.current_time())
        return observe(market, response, user=user)

    async def acquiring(market: Market, weight: int, *, user: str, urgent: bool = False) -> None:
        await acquire(market, weight, user=user, urgent=urgent)
        seen.admitted.append((trio.current_time(), market))

    budgets.observe = observing  # type: ignore[method-assign]
    budgets.acquire = acquiring  # type: ignore[method-assign]
    return seen


def peak_window(hits: list[Hit], market: Market, window: float = 60.0) -> int:
    """The most weight charged at ``market`` within any ``window`` seconds."""
    mine = [h for h in hits if h.market is market]
    return max(
        (sum(h.weight for h in mine if t.at - window < h.at <= t.at) for t in mine), default=0
    )


def settings_for(fx: FakeExchange, symbols: list[str], books: BookSettings) -> Settings:
    base = Settings()
    binance = binance_settings(
        fx, rest_timeout_s=5.0, reconnect=BackoffSettings(initial_s=0.05, max_s=0.2)
    )
    subs = tuple(
        Subscription(market=m, symbols=tuple(symbols), channels=(TRADE_KIND[m], "depth@100ms"))
        for m in Market
    )
    return attrs.evolve(base, binance=binance, subscriptions=subs, books=books)


@attrs.define
class Pipeline:
    budgets: RestBudgets
    backfiller: Backfiller
    normalizer: Normalizer
    books: Books
    records: list[Record] = attrs.field(factory=list)


@contextlib.asynccontextmanager
async def running_pipeline(settings: Settings) -> AsyncIterator[Pipeline]:
    """Feeds → normalizer (+ backfill) → books → a list, on one shared REST budget."""
    codec = Codecs(settings.kafka.topics)
    budgets = RestBudgets.from_settings(settings.books)
    backfiller = Backfiller(
        encoder=codec,
        rest_urls={
            Market.SPOT: settings.binance.spot_rest_url,
            Market.USDM: settings.binance.futures_rest_url,
        },
        timeout=settings.binance.rest_timeout_s,
        budgets=budgets,
    )
    p = Pipeline(
        budgets, backfiller, Normalizer(codec, backfiller), Books(settings, budgets=budgets)
    )
    frames_send, frames_recv = trio.open_memory_channel[FrameBatch](16)
    mid_send, mid_recv = trio.open_memory_channel[list[Record]](16)
    out_send, out_recv = trio.open_memory_channel[list[Record]](16)

    async def sink() -> None:
        async with out_recv:
            async for batch in out_recv:
                p.records.extend(batch)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink)
        await nursery.start(p.books.serve, mid_recv, out_send)
        await nursery.start(p.normalizer.serve, frames_recv, mid_send)
        async with frames_send:
            for plan in plan_connections(settings.subscriptions, settings.binance):
                nursery.start_soon(Feed(plan, settings.binance).serve, frames_send.clone())
        try:
            yield p
        finally:
            nursery.cancel_scope.cancel()


def trades(records: list[Record]) -> dict[tuple[Market, str], list[tuple[int, bool]]]:
    """(market, symbol) → [(trade or agg id, backfilled)] in publication order."""
    out: dict[tuple[Market, str], list[tuple[int, bool]]] = defaultdict(list)
    for r in records:
        if r.kind == TRADE_KIND[r.market]:
            ev = MarketEvent.FromString(r.value)
            msg = ev.trade if r.kind == "trade" else ev.agg_trade
            out[(r.market, r.symbol)].append((r.seq, msg.backfilled))
    return out


def last_ids(fx: FakeExchange, symbols: list[str]) -> dict[tuple[Market, str], int]:
    markets = fx.state()["markets"]
    return {(m, s): markets[m.value]["symbols"][s][LAST_ID_KEY[m]] for m in Market for s in symbols}


async def test_gaps_in_every_symbol_at_once_are_filled_in_order_within_the_budget() -> None:
    """Six symbols per market lose trades and depth diffs together, twice (a `gap` fault
    on every connection, then a drop; the second time under a 2 s spot ban). Binance's
    limits (spot 6000, USD-M 2400 a minute) and marketd's default half of them: each time
    the backfill (spot historicalTrades 25, USD-M aggTrades 20 a page) and the books'
    resyncs (depth 5) ask for more than the burst (a tenth of the budget) at once."""
    config = FakeExchangeConfig(symbols=6, seed=17, rate=1500)  # Binance's limits
    books_cfg = BookSettings(publish_interval_s=0.1, snapshot_limit=100)  # depth weight 5
    budget = {Market.SPOT: 3000, Market.USDM: 1200}  # a minute
    burst = {m: b // 10 for m, b in budget.items()}
    rate = {m: b / 60 for m, b in budget.items()}  # a second
    started = trio.current_time()
    with trio.fail_after(150):
        async with open_fake_exchange(config) as fx:
            hits = record_hits(fx)
            symbols = [m.spec.symbol for m in fx.model(Market.SPOT).symbols]
            settings = settings_for(fx, symbols, books_cfg)
            async with running_pipeline(settings) as p:
                budget_log = watch_budget(p.budgets)

                def settled() -> bool:
                    seen = trades(p.records)
                    return (
                        not p.books.statistics().not_synced
                        and len(seen) == 2 * len(symbols)
                        and p.budgets.statistics()[Market.SPOT].urgent_waiting == 0
                        and p.budgets.statistics()[Market.USDM].urgent_waiting == 0
                    )

                await poll_until(
                    settled, timeout=30, what="books synced and trades of every symbol"
                )
                for round_ in range(2):
                    gaps_before = p.normalizer.sequencer.gaps
                    for market in Market:
                        fx.inject_fault(Fault(FaultKind.GAP, market, count=600))
                    await trio.sleep(0.6)
                    if round_ == 1:
                        fx.ban(Market.SPOT, 2.0)
                        ban = (trio.current_time(), trio.current_time() + 2.0)
                    for market in Market:
                        fx.inject_fault(Fault(FaultKind.DROP, market))
                    await poll_until(
                        lambda g=gaps_before: p.normalizer.sequencer.gaps >= g + 2 * len(symbols),
                        timeout=30,
                        what="a trade gap in every symbol",
                    )
                    await trio.sleep(1.0)
                    await poll_until(settled, timeout=60, what="gaps filled and books resynced")
                    book_st = p.books.statistics()
                fx.pause()
                final = last_ids(fx, symbols)
                await poll_until(
                    lambda: all(trades(p.records)[k][-1][0] == last for k, last in final.items()),
                    timeout=30,
                    what="every trade up to the exchange's last",
                )
                budget_st = p.budgets.statistics()
                meters = {m: fx.rest[m].meter for m in Market}
    elapsed = trio.current_time() - started
    seen = trades(p.records)
    bf = p.backfiller

    # Every trade, once, in order, up to the exchange's last; every symbol had gaps filled.
    for key, rows in seen.items():
        got = [i for i, _ in rows]
        assert got == list(range(got[0], final[key] + 1)), key
        assert any(backfilled for _, backfilled in rows), f"no gap filled in {key}"
    backfilled = sum(b for rows in seen.values() for _, b in rows)
    assert bf.unfilled == 0
    assert bf.filled == backfilled > 0
    assert p.normalizer.sequencer.gaps >= 2 * 2 * len(symbols)
    # The books resynced too, and all were synced again after the last round.
    assert book_st.not_synced == []
    assert book_st.resyncs.get("gap", 0) >= 2 * len(symbols)

    # The fake's own accounting: within the budget in every wall-clock minute and every
    # sliding 60 s, never a 429; and at every time scale within the burst plus the rate
    # (give or take one request's network jitter).
    peaks = {m: peak_window(hits, m) for m in Market}
    for m in Market:
        assert meters[m].rejected == 0, m
        assert meters[m].peak <= budget[m], (m, meters[m].peak)
        assert peaks[m] <= budget[m], (m, peaks[m])
        assert not [h for h in hits if h.market is m and h.status == 429]
        mine = [h for h in hits if h.market is m]
        for i, start in enumerate(mine):
            total = 0
            for h in mine[i:]:
                total += h.weight
                assert total <= burst[m] + (h.at - start.at) * rate[m] + 25, (m, h, total)
    # The ban was met only by requests admitted before marketd read the first 418 (how
    # many were in flight by then depends on this machine's speed, not on marketd): none
    # was admitted while marketd knew of the ban; then both users waited it out.
    banned = [h for h in hits if h.status == 418]
    assert meters[Market.SPOT].banned == len(banned)
    assert banned
    assert all(ban[0] <= h.at < ban[1] for h in banned)
    [knew] = budget_log.first_418
    assert ban[0] <= knew
    during = [at for at, m in budget_log.admitted if m is Market.SPOT and knew <= at < ban[1]]
    assert during == []
    after_ban = [h for h in hits if h.market is Market.SPOT and h.at >= ban[1]]
    assert after_ban
    assert all(h.status == 200 for h in after_ban)
    # Both users spent from the one budget, more than its burst: the pacing was real.
    spent = {m: budget_st[m].weight_requested for m in Market}
    for m in Market:
        assert spent[m][BACKFILL] > 0
        assert spent[m][SNAPSHOTS] > 0
        assert spent[m][BACKFILL] + spent[m][SNAPSHOTS] > 2 * burst[m]
        # Every request went through the budget: audits and deepenings too (a slow run
        # outlasts books.audit_interval_s).
        charged_here = sum(h.weight for h in hits if h.market is m)
        assert charged_here <= sum(spent[m].values())
    assert sum(bf.budget_wait_s.values()) > 0
    print(
        f"\n{elapsed:.1f} s; gaps {p.normalizer.sequencer.gaps}, trades backfilled {backfilled}"
        f" in {bf.requests} requests {dict(bf.statuses)}; book resyncs {book_st.resyncs};"
        f" backfill waited {bf.budget_wait_s} s for the budget"
    )
    for m in Market:
        print(
            f"{m.value}: budget {budget[m]}/min; peak sliding-60 s weight {peaks[m]}, peak"
            f" wall-minute (fake meter) {meters[m].peak}; spent {spent[m]}"
        )


@pytest.mark.parametrize("first", [BACKFILL, SNAPSHOTS])
async def test_a_429_from_the_fake_stops_both_users(first: str) -> None:
    """The fake allows 30 a minute and another client of the IP has spent it; marketd
    believes in 3000. Whichever user meets the 429 first, neither sends anything more
    until its Retry-After: the backfill waits (the normalizer with it), snapshots queue."""
    limit = 30
    config = FakeExchangeConfig(
        symbols=4, seed=8, rate=800, spot=attrs.evolve(SPOT_LIMITS, rest_weight_per_minute=limit)
    )
    with trio.fail_after(30):
        async with open_fake_exchange(config) as fx:
            hits = record_hits(fx)
            symbols = [m.spec.symbol for m in fx.model(Market.SPOT).symbols]
            await trio.sleep(0.5)  # some trade history
            settings = settings_for(fx, symbols, BookSettings(snapshot_limit=100))
            budgets = RestBudgets.from_settings(settings.books)
            codec = Codecs(settings.kafka.topics)
            backfiller = Backfiller(
                encoder=codec, rest_urls={Market.SPOT: fx.spot_rest_url}, budgets=budgets
            )
            books = Books(settings, budgets=budgets)
            hist = fx.model(Market.SPOT).symbols[0].history
            gap = Gap(Market.SPOT, "trade", symbols[0], hist.next_id - 50, hist.next_id - 1)
            filled: list[Record] = []

            async def backfill() -> None:
                filled.extend(await backfiller.fill(gap))

            async with trio.open_nursery() as nursery:
                await nursery.start(books.scheduler.serve)
                meter = fx.rest[Market.SPOT].meter
                if (second := time.time() % 60) > 57:  # the fake's minute must not roll over
                    await trio.sleep(60.2 - second)
                meter.charge(limit, time.time())  # the other client of the IP
                if first == BACKFILL:
                    nursery.start_soon(backfill)
                else:
                    books.scheduler.request(Market.SPOT, symbols[1])
                await poll_until(
                    lambda: budgets.statistics()[Market.SPOT].blocked_s > 0,
                    timeout=5,
                    what="a 429 taken in",
                )
                first_429 = next(h for h in hits if h.status == 429)
                # Now the other user asks.
                if first == BACKFILL:
                    for s in symbols[1:]:
                        books.scheduler.request(Market.SPOT, s)
                else:
                    nursery.start_soon(backfill)
                blocked = budgets.statistics()[Market.SPOT].blocked_s
                assert blocked > 0
                await trio.sleep(min(3.0, blocked) - 0.2)
                st = budgets.statistics()[Market.SPOT]
                lane = books.scheduler.statistics()[Market.SPOT]
                nursery.cancel_scope.cancel()
    assert hits == [first_429]  # nothing reached the fake after the 429
    assert st.blocked_s > 0
    assert st.urgent_waiting == 1  # the backfill waits for the block to end ...
    assert lane.queued >= 1  # ... and so do the snapshots
    assert filled == []
    assert backfiller.unfilled == 0  # not given up: waiting
    if first == BACKFILL:
        assert backfiller.statuses[("spot", "429")] == 1
        assert lane.requests == {}
    else:
        assert lane.requests == {"429": 1}
        assert backfiller.requests == 0
