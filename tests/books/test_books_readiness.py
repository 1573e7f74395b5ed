"""Books and ``/readyz`` with ``readiness.require_books_synced``: every book must be synced,
except one that was synced and is resyncing for less than ``books_resync_grace_s`` (a
gap, a shallow book the price moved past) — a brief resync does not take the process out
of rotation; a book never synced, or resyncing for longer, does. No network: snapshots are
handed in as the scheduler would."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import prometheus_client

from marketd.app import Daemon
from marketd.books.service import Books
from marketd.books.sync import Reason
from marketd.config.settings import ExchangeSettings, HttpSettings, Settings
from marketd.config.telemetry import ReadinessSettings
from marketd.data.events import DepthDiff, DepthSnapshot
from marketd.data.records import Market

SNAPSHOT = DepthSnapshot(last_update_id=100, bids=[("100.00", "1.0")], asks=[("100.50", "1.5")])
SPOT = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]  # the default subscription
NOWHERE = ExchangeSettings(  # nothing connects in these tests
    spot_ws_url="ws://127.0.0.1:9/spot",
    spot_rest_url="http://127.0.0.1:9/spot",
    futures_ws_url="ws://127.0.0.1:9/usdm",
    futures_rest_url="http://127.0.0.1:9/usdm",
)


def sync(books: Books, symbol: str) -> None:
    state = books.syncs[(Market.SPOT, symbol)]
    state.on_diff(DepthDiff(101, 101, None, [], []))
    books._deliver(Market.SPOT, symbol, SNAPSHOT)
    assert state.synced


def test_a_book_never_synced_is_never_excused() -> None:
    books = Books(Settings())
    for symbol in SPOT[1:]:
        sync(books, symbol)
    ready, detail = books.readiness(grace_s=30.0)
    assert not ready
    assert detail == {"books_not_synced": ["spot:BTCUSDT"], "books_resyncing_in_grace": []}


def test_a_resync_is_excused_for_the_grace_period_only() -> None:
    books = Books(Settings())
    for symbol in SPOT:
        sync(books, symbol)
    assert books.readiness(grace_s=30.0) == (
        True,
        {"books_not_synced": [], "books_resyncing_in_grace": []},
    )
    eth = books.syncs[(Market.SPOT, "ETHUSDT")]
    assert eth.discard(Reason.GAP)
    lost = eth.lost_at
    assert lost > 0
    within = books.readiness(grace_s=30.0, now=lost + 29.9)
    assert within == (
        True,
        {"books_not_synced": ["spot:ETHUSDT"], "books_resyncing_in_grace": ["spot:ETHUSDT"]},
    )
    past = books.readiness(grace_s=30.0, now=lost + 30.0)
    assert past == (False, {"books_not_synced": ["spot:ETHUSDT"], "books_resyncing_in_grace": []})
    assert books.readiness(grace_s=0.0, now=lost)[0] is False  # 0: none is excused
    # Synced again: ready, and a later loss starts a grace period of its own.
    sync(books, "ETHUSDT")
    assert books.readiness(grace_s=30.0, now=lost + 60.0)[0] is True


@contextlib.contextmanager
def built(readiness: ReadinessSettings) -> Iterator[Daemon]:
    settings = Settings(
        binance=NOWHERE, readiness=readiness, http=HttpSettings(listen="127.0.0.1:0")
    )
    daemon = Daemon(settings, registry=prometheus_client.CollectorRegistry())
    try:
        yield daemon
    finally:
        daemon.close()


def test_readyz_names_the_books_and_excuses_a_brief_resync() -> None:
    with built(ReadinessSettings(require_books_synced=True, books_resync_grace_s=30.0)) as d:
        assert d.books is not None
        for symbol in SPOT:
            sync(d.books, symbol)
        assert d.books.syncs[(Market.SPOT, "SOLUSDT")].discard(Reason.GAP)
        ready, detail = d.health.readiness()
        assert "books" in detail["components"]
        assert "books" not in detail["not_ready"]  # resyncing within the grace
        assert detail["books_resyncing_in_grace"] == ["spot:SOLUSDT"]
        assert not ready  # the feeds and the sink are not up: nothing runs here
    with built(ReadinessSettings(require_books_synced=True, books_resync_grace_s=0.0)) as d:
        assert d.books is not None
        for symbol in SPOT:
            sync(d.books, symbol)
        assert d.books.syncs[(Market.SPOT, "SOLUSDT")].discard(Reason.GAP)
        _, detail = d.health.readiness()
        assert "books" in detail["not_ready"]
        assert detail["books_not_synced"] == ["spot:SOLUSDT"]
