"""Book audits against the fake exchange: a ``corrupt_level`` fault (one wrong level, the
sequence intact) is caught by the audit, the book resyncs and is true again."""

from __future__ import annotations

import orjson
import pytest
import trio
from harness import book_settings, running_books
from kit.wait import poll_until

from marketd.books.audit import MISMATCH, OK, AuditResult, LevelDiff
from marketd.config.books import BookSettings
from marketd.data.records import Market
from marketd.fakex import FakeExchangeConfig, Fault, FaultKind, open_fake_exchange
from marketd.rest.budget import AUDIT
from marketd.rest.client import http_get
from marketd.status import StatusStream
from marketd.v1.status_pb2 import StatusEvent

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
LIMIT = 100  # snapshot levels: weight 5 (spot) / 5 (USD-M); the fake's books hold ~100


@pytest.mark.parametrize("market", list(Market))
async def test_the_audit_catches_a_corrupted_level_and_the_book_is_true_again(
    market: Market,
) -> None:
    config = FakeExchangeConfig(symbols=len(SYMBOLS), seed=31, rate=200)
    books_cfg = BookSettings(publish_interval_s=0.1, snapshot_limit=LIMIT, audit_interval_s=0.2)
    results: list[AuditResult] = []
    status = StatusStream("marketd.status", "test")
    with trio.fail_after(60):
        async with open_fake_exchange(config) as fx:
            settings = book_settings(fx, {market: SYMBOLS}, books_cfg)
            async with running_books(settings, lambda batch: None, status) as books:
                books.on_audit = results.append
                btc = books.syncs[(market, "BTCUSDT")]

                def audited(result: str) -> list[AuditResult]:
                    return [r for r in results if r.symbol == "BTCUSDT" and r.result == result]

                # Audits of true books say ok.
                await poll_until(
                    lambda: audited(OK), timeout=30, what="an ok audit of BTCUSDT", interval=0.02
                )
                assert audited(MISMATCH) == []
                fx.inject_fault(Fault(FaultKind.CORRUPT_LEVEL, market, symbol="BTCUSDT"))
                hub = fx.hubs[market]
                await poll_until(lambda: hub.corrupted, timeout=10, what="a corrupted diff")
                [bad] = hub.corrupted
                await poll_until(
                    lambda: audited(MISMATCH),
                    timeout=30,
                    what="the audit's mismatch",
                    interval=0.02,
                )
                [found] = audited(MISMATCH)
                await poll_until(
                    lambda: btc.synced and btc.resyncs["audit"] == 1,
                    timeout=30,
                    what="BTCUSDT resynced after the audit",
                    interval=0.02,
                )
                # The book is true again: hold the exchange still, let the book catch up,
                # and compare it with the true book the control API serves.
                fx.pause()
                true_last = fx.model(market).by_name["BTCUSDT"].book.last_update_id
                await poll_until(
                    lambda: btc.last_update_id == true_last,
                    timeout=30,
                    what="BTCUSDT at the exchange's last update",
                    interval=0.02,
                )
                assert btc.synced
                url = fx.spot_rest_url if market is Market.SPOT else fx.futures_rest_url
                reply = await http_get(
                    url.rsplit("/", 1)[0],
                    "/_fake/book",
                    {"market": market.value, "symbol": "BTCUSDT"},
                )
                true = orjson.loads(reply.body)
                bids, asks = btc.book.top(LIMIT)
                st = books.statistics()
                metrics = {
                    (s.name, tuple(s.labels.values())): s.value
                    for m in books.metrics()
                    for s in m.samples
                }
                audit_weight = books.scheduler.budgets.requested(market, AUDIT)
                meter = fx.rest[market].meter
    # The audit found the corrupted level: where, what the book had, what the exchange has.
    assert found.market is market
    assert found.update_id >= bad.update_id
    assert found.differing == 1
    assert found.differences == (LevelDiff(bad.side, bad.price, bad.sent_qty, bad.true_qty),)
    assert found.levels_compared >= 2 * 20
    # Counted, and the book resynced for it (once).
    assert st.audits[(market.value, MISMATCH)] == 1
    assert st.audits[(market.value, OK)] >= 1
    assert metrics[("marketd_book_audits_total", (market.value, MISMATCH))] == 1
    assert metrics[("marketd_book_resyncs_total", ("audit",))] == 1
    assert st.resyncs.get("audit") == 1
    # Said on the status stream, in order: synced, the mismatch with the very level, the
    # resync it caused, synced again.
    reported = [StatusEvent.FromString(r.value) for r in status._take()]
    btc_events = [e for e in reported if e.symbol == "BTCUSDT"]
    kinds = [e.WhichOneof("event") for e in btc_events]
    at = kinds.index("book_mismatch")
    assert kinds[0] == "book_synced"
    assert kinds[at : at + 3] == ["book_mismatch", "book_resync", "book_synced"]
    mismatch, resync = btc_events[at].book_mismatch, btc_events[at + 1].book_resync
    assert mismatch.update_id == found.update_id
    assert [(d.side, d.price, d.ours, d.theirs) for d in mismatch.differences] == [
        (bad.side, bad.price, bad.sent_qty, bad.true_qty)
    ]
    assert resync.reason == "audit"
    assert resync.last_update_id >= found.update_id
    # True again, within the kept depth (the snapshot limit): a prefix of the true book.
    assert true["lastUpdateId"] == btc.last_update_id
    assert len(bids) >= 20
    assert len(asks) >= 20
    assert [list(b) for b in bids] == true["bids"][: len(bids)]
    assert [list(a) for a in asks] == true["asks"][: len(asks)]
    # The audits' weight was charged to the budget, and the exchange never refused it.
    # (5 a snapshot; an audit skipped before its request was sent cost nothing)
    assert audit_weight >= 5 * (st.audits[(market.value, OK)] + 1)
    assert st.audit_weight[market.value] == audit_weight
    assert meter.rejected == 0
