"""A trade gap older than the exchange's history, against the fake exchange.

The fake keeps a bounded history and refuses a ``fromId`` older than it (400, -1128), as
Binance never starts a page later than asked. marketd's backfill takes the refusal as
final: one request, no retries, the range counted unfilled and logged once, and no trade
published that REST did not give.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import attrs
import pytest
import structlog
import trio
from kit.daemon import binance_settings
from kit.wait import poll_until

from marketd.config.settings import Settings, Subscription, TopicSettings
from marketd.data.records import FrameBatch, Market, Record
from marketd.fakex import FakeExchange, FakeExchangeConfig, Fault, FaultKind, open_fake_exchange
from marketd.feed.connection import Feed
from marketd.feed.streams import plan_connections
from marketd.pipeline.backfill import Backfiller
from marketd.pipeline.codecs import Codecs
from marketd.pipeline.normalizer import Normalizer
from marketd.pipeline.sequence import Gap
from marketd.rest.client import RestResponse, http_get
from marketd.status import StatusStream
from marketd.v1.market_data_pb2 import MarketEvent
from marketd.v1.status_pb2 import StatusEvent

HISTORY = 300  # trades held per symbol (trimmed to this once twice as many are held)
REFUSED = "backfill refused by the exchange: the rest of the gap is unfilled"


@attrs.define
class RecordingGet:
    """marketd's real HTTP GET, noting every request it sends and the status it got."""

    sent: list[tuple[str, int, int]] = attrs.field(factory=list)  # (endpoint, fromId, status)

    async def __call__(
        self,
        base_url: str,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        time_limit: float = 10.0,
    ) -> RestResponse:
        resp = await http_get(base_url, path, params, time_limit=time_limit)
        assert params is not None
        self.sent.append((path.rsplit("/", 1)[1], int(params["fromId"]), resp.status))
        return resp


def backfiller(fx: FakeExchange, get: RecordingGet) -> Backfiller:
    return Backfiller(
        encoder=Codecs(TopicSettings()),
        rest_urls={Market.SPOT: fx.spot_rest_url, Market.USDM: fx.futures_rest_url},
        get=get,
    )


def held(fx: FakeExchange, market: Market, kind: str) -> tuple[int, int]:
    """The oldest and the next trade (``trade``) or aggregate (``aggTrade``) id held."""
    hist = fx.model(market).by_name["BTCUSDT"].history
    if kind == "aggTrade":
        return hist.agg_base_id, hist.next_agg_id
    return hist.base_id, hist.next_id


def decoded(records: list[Record]) -> list[tuple[int, str, str, int, bool]]:
    """(id, price, quantity, time, backfilled) of trade or aggTrade records."""
    out = []
    for r in records:
        ev = MarketEvent.FromString(r.value)
        if r.kind == "trade":
            t = ev.trade
            out.append((t.trade_id, t.price, t.quantity, t.trade_time_ms, t.backfilled))
        else:
            a = ev.agg_trade
            out.append((a.agg_trade_id, a.price, a.quantity, a.trade_time_ms, a.backfilled))
    return out


def truth(fx: FakeExchange, market: Market, kind: str, first: int, last: int) -> list[Any]:
    """What the fake holds for ids ``first..last``, as the exchange prints it."""
    hub = fx.hubs[market]
    fr = hub.frames[hub.symbol_index["btcusdt"]]
    hist = hub.model.symbols[hub.symbol_index["btcusdt"]].history
    n = last - first + 1
    if kind == "aggTrade":
        rows = [(a.id, a.price, a.qty, a.time) for a in hist.aggs(first, n)]
    else:
        rows = [(t.id, t.price, t.qty, t.time) for t in hist.trades(first, n)]
    assert [row[0] for row in rows] == list(range(first, last + 1))
    return [(i, fr.fmt_p(p), fr.fmt_q(q), time, True) for i, p, q, time in rows]


@pytest.mark.parametrize(
    ("market", "kind", "endpoint"),
    [
        (Market.SPOT, "trade", "historicalTrades"),
        (Market.SPOT, "aggTrade", "aggTrades"),
        (Market.USDM, "aggTrade", "aggTrades"),
        (Market.USDM, "trade", "historicalTrades"),
    ],
)
async def test_a_gap_older_than_the_history_is_one_request_and_unfilled(
    market: Market, kind: str, endpoint: str
) -> None:
    config = FakeExchangeConfig(symbols=1, seed=3, rate=3_000, history=HISTORY)
    get = RecordingGet()
    with structlog.testing.capture_logs() as logs, trio.fail_after(20):
        async with open_fake_exchange(config) as fx:
            first_ever = held(fx, market, kind)[0]
            await poll_until(
                lambda: held(fx, market, kind)[0] > first_ever + 100,
                timeout=15,
                what="the history trimmed past its first trades",
            )
            fx.pause()  # what is held stays put from here
            oldest, next_id = held(fx, market, kind)
            bf = backfiller(fx, get)

            # All of it older than the history: refused, not retried.
            old = Gap(market, kind, "BTCUSDT", oldest - 60, oldest - 1)
            assert await bf.fill(old) == []
            assert get.sent == [(endpoint, oldest - 60, 400)]
            assert (bf.requests, bf.filled, bf.unfilled) == (1, 0, 60)
            assert bf.statuses == {(market.value, "http_error"): 1}
            assert "-1128" in bf.last_error
            assert f"fromId {oldest - 60} is older than the oldest trade" in bf.last_error

            # Its newer part is held, but REST does not serve a page from its first id:
            # the whole gap is unfilled (a page starting later would leave a hole).
            straddling = Gap(market, kind, "BTCUSDT", oldest - 5, oldest + 20)
            assert await bf.fill(straddling) == []
            assert get.sent[1:] == [(endpoint, oldest - 5, 400)]
            assert (bf.requests, bf.filled, bf.unfilled) == (2, 0, 60 + 26)

            # Within the history: filled from exactly its first id, as the fake holds it.
            recent = Gap(market, kind, "BTCUSDT", oldest + 10, next_id - 1)
            filled = await bf.fill(recent)
            assert decoded(filled) == truth(fx, market, kind, oldest + 10, next_id - 1)
            assert get.sent[2:] == [(endpoint, oldest + 10, 200)]
            assert (bf.filled, bf.unfilled) == (recent.size, 60 + 26)
    refused = [e for e in logs if e["event"] == REFUSED]
    assert [(e["first"], e["last"], e["symbol"], e["kind"]) for e in refused] == [
        (oldest - 60, oldest - 1, "BTCUSDT", kind),
        (oldest - 5, oldest + 20, "BTCUSDT", kind),
    ]
    assert all("-1128" in e["error"] for e in refused)
    assert not [e for e in logs if e["event"] == "backfill request failed"]  # no retries


async def test_the_normalizer_publishes_no_trade_rest_refused() -> None:
    """Feed → normalizer (+ backfill) on the fake. The feed loses far more trades than the
    fake holds (a ``gap`` fault): the backfill asks once, is refused, and the symbol flows
    on with the hole reported, every published trade one the stream delivered."""
    config = FakeExchangeConfig(symbols=1, seed=9, rate=2_000, history=HISTORY)
    subs = (Subscription(market=Market.SPOT, symbols=("BTCUSDT",), channels=("trade",)),)
    get = RecordingGet()
    published: list[Record] = []
    with trio.fail_after(30):
        async with open_fake_exchange(config) as fx:
            settings = attrs.evolve(Settings(), binance=binance_settings(fx), subscriptions=subs)
            bf = backfiller(fx, get)
            normalizer = Normalizer(Codecs(settings.kafka.topics), bf)
            normalizer.status = status = StatusStream("marketd.status", "test")
            frames_send, frames_recv = trio.open_memory_channel[FrameBatch](16)
            out_send, out_recv = trio.open_memory_channel[list[Record]](16)

            async def sink() -> None:
                async with out_recv:
                    async for batch in out_recv:
                        published.extend(batch)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sink)
                await nursery.start(normalizer.serve, frames_recv, out_send)
                async with frames_send:
                    for plan in plan_connections(settings.subscriptions, settings.binance):
                        nursery.start_soon(Feed(plan, settings.binance).serve, frames_send.clone())
                await poll_until(lambda: len(published) >= 50, timeout=10, what="live trades")
                # Many more trades than the history holds go missing on the connection.
                assert fx.inject_fault(Fault(FaultKind.GAP, Market.SPOT, count=5 * HISTORY)) == 1
                await poll_until(
                    lambda: bf.requests == 1 and normalizer.statistics().backfills_running == 0,
                    timeout=15,
                    what="the gap detected and its backfill given up",
                )
                mark = len(published)
                await poll_until(
                    lambda: len(published) >= mark + 50, timeout=10, what="trades after the gap"
                )
                fx.pause()
                nursery.cancel_scope.cancel()
    rows = decoded(published)
    ids = [i for i, *_ in rows]
    assert not [row for row in rows if row[-1]]  # nothing marked backfilled
    [hole] = [(a, b) for a, b in itertools.pairwise(ids) if b != a + 1]
    assert ids == [*range(ids[0], hole[0] + 1), *range(hole[1], ids[-1] + 1)]
    missing = hole[1] - hole[0] - 1
    assert missing == 5 * HISTORY  # the frames skipped: more than the fake still holds
    assert [(endpoint, status) for endpoint, _, status in get.sent] == [("historicalTrades", 400)]
    assert get.sent[0][1] == hole[0] + 1  # asked once, from the first missing id
    assert (bf.requests, bf.filled, bf.unfilled) == (1, 0, missing)
    st = normalizer.statistics()
    assert (st.gaps, st.gaps_closed, st.backfilled, st.unfilled) == (1, 0, 0, missing)
    # Said out loud on the status stream: the very ids, and why.
    reported = [StatusEvent.FromString(r.value) for r in status._take()]
    unfilled = [e for e in reported if e.WhichOneof("event") == "trades_unfilled"]
    assert [(e.symbol, e.trades_unfilled.kind, e.trades_unfilled.first_id,
             e.trades_unfilled.last_id, e.trades_unfilled.reason) for e in unfilled] == [
        ("BTCUSDT", "trade", hole[0] + 1, hole[1] - 1, "refused")
    ]  # fmt: skip
    # The trades published after the hole are the fake's own (those it still holds).
    hist = fx.model(Market.SPOT).by_name["BTCUSDT"].history
    after = [row for row in rows if row[0] >= max(hole[1], hist.base_id)]
    assert after
    live = truth(fx, Market.SPOT, "trade", after[0][0], after[-1][0])
    assert after == [(*row[:-1], False) for row in live]
