"""The exchange seam: the stages name no exchange, and they follow whichever adapter they
are given (its endpoints, weights, used-weight header and book rule)."""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest
import trio

from marketd.books.service import Books
from marketd.config.settings import Settings
from marketd.data.events import DepthSnapshot
from marketd.data.records import Market
from marketd.exchanges import exchange
from marketd.exchanges.binance import vocabulary as binance_vocabulary
from marketd.exchanges.binance.adapter import BINANCE
from marketd.exchanges.binance.codec import Codec
from marketd.exchanges.seam import Endpoint, Vocabulary
from marketd.pipeline.backfill import Backfiller
from marketd.pipeline.sequence import Gap
from marketd.rest.budget import RestBudgets
from marketd.rest.client import RestResponse

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "marketd"

# Where naming an adapter is the point: the adapters themselves, the registry, the fake
# exchange (a Binance peer), and the wiring that picks the codec.
ALLOWED = ("exchanges/", "fakex/", "app.py", "demo.py", "cli.py")
# Not behind the seam yet, each with what is left (the note lists them too).
NOT_YET: dict[str, str] = {}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_stage_imports_an_exchange_adapter() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ALLOWED) or rel in NOT_YET:
            continue
        adapters = sorted(n for n in _imports(path) if n.startswith("marketd.exchanges.binance"))
        if adapters:
            offenders[rel] = adapters
    assert offenders == {}, "stages must read the exchange through marketd.exchanges.exchange()"
    for rel in NOT_YET:  # the list shrinks: an entry that is clean now must be removed
        assert any(n.startswith("marketd.exchanges.binance") for n in _imports(PACKAGE / rel)), (
            f"{rel} no longer imports an adapter: remove it from NOT_YET"
        )


def test_binance_behind_the_seam() -> None:
    assert exchange() is BINANCE
    assert exchange("binance") is BINANCE
    vocabulary: Vocabulary = BINANCE.vocabulary
    assert vocabulary is binance_vocabulary
    assert BINANCE.depth_snapshot(Market.SPOT, 5000) == Endpoint("/api/v3/depth", 250, page=5000)
    assert BINANCE.depth_snapshot(Market.USDM, 5000) == Endpoint("/fapi/v1/depth", 20, page=1000)
    assert BINANCE.trade_history(Market.USDM, "trade") == Endpoint(
        "/fapi/v1/historicalTrades", 20, page=500
    )
    assert BINANCE.trade_history(Market.SPOT, "aggTrade") == Endpoint(
        "/api/v3/aggTrades", 4, page=1000
    )
    assert BINANCE.trade_history(Market.SPOT, "depthUpdate") is None
    assert (BINANCE.chained_diffs(Market.USDM), BINANCE.chained_diffs(Market.SPOT)) == (True, False)
    assert BINANCE.used_weight_header == "x-mbx-used-weight-1m"
    snapshot = BINANCE.decode_depth_snapshot(
        b'{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"],["0.0027","1"]]}'
    )
    assert snapshot == DepthSnapshot(
        last_update_id=160, bids=[("0.0024", "10")], asks=[("0.0026", "100"), ("0.0027", "1")]
    )
    with pytest.raises(ValueError, match="lastUpdateId"):
        BINANCE.decode_depth_snapshot(b'{"bids":[],"asks":[]}')
    assert BINANCE.stream_url("wss://x:9443/", "", ()) == "wss://x:9443/stream"
    assert (
        BINANCE.stream_url("wss://f", "/public", ("a@depth", "!bookTicker"))
        == "wss://f/public/stream?streams=a@depth/!bookTicker"
    )
    assert BINANCE.ws_route(Market.SPOT, "btcusdt@depth") == ""
    assert BINANCE.ws_route(Market.USDM, "btcusdt@depth@100ms") == "/public"
    assert BINANCE.ws_route(Market.USDM, "!bookTicker") == "/public"
    assert BINANCE.ws_route(Market.USDM, "btcusdt@aggTrade") == "/market"
    assert BINANCE.ws_route(Market.USDM, "btcusdt@nonsense") == "/market"


def test_an_unknown_exchange_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^unknown exchange 'kraken': .* for 'binance'$"):
        exchange("kraken")


@attrs.frozen
class Other:
    """A second exchange, as the stages see it: other paths, weights, header and book rule."""

    name: str = "other"
    used_weight_header: str = "x-used"
    vocabulary: Vocabulary = binance_vocabulary

    def depth_snapshot(self, market: Market, limit: int) -> Endpoint:
        return Endpoint(f"/v9/{market.value}/book", 3, page=min(limit, 50))

    def trade_history(self, market: Market, kind: str) -> Endpoint | None:
        return Endpoint("/v9/trades", 2, page=2) if kind == "trade" else None

    def ws_route(self, market: Market, stream: str) -> str:
        return ""

    def decode_depth_snapshot(self, body: bytes) -> DepthSnapshot:
        raise ValueError("not used here")

    def stream_url(self, base_url: str, route: str, streams: Sequence[str]) -> str:
        return f"{base_url}/v9/ws"

    def chained_diffs(self, market: Market) -> bool:
        return market is Market.SPOT


def test_the_books_follow_the_adapter_they_are_given() -> None:
    books = Books(Settings(), adapter=Other())
    lanes = books.scheduler.lanes
    assert (lanes[Market.SPOT].path, lanes[Market.SPOT].weight, lanes[Market.SPOT].limit) == (
        "/v9/spot/book",
        3,
        50,
    )
    assert lanes[Market.USDM].path == "/v9/usdm/book"
    assert books._add((Market.SPOT, "BTCUSDT")).chained is True
    assert books._add((Market.USDM, "BTCUSDT")).chained is False
    assert Books(Settings())._add((Market.USDM, "BTCUSDT")).chained is True  # Binance's rule


async def test_the_backfiller_pages_the_adapters_history_within_its_budget() -> None:
    asked: list[tuple[str, str, dict[str, str | int]]] = []

    async def get(base: str, path: str, params: dict[str, str | int], **_: object) -> RestResponse:
        asked.append((base, path, dict(params)))
        first = int(params["fromId"])
        rows = [
            {"id": i, "price": f"{i}.5", "qty": "1", "quoteQty": "1", "time": 1_000 + i,
             "isBuyerMaker": True, "isBestMatch": True}
            for i in range(first, first + int(params["limit"]))
        ]  # fmt: skip
        return RestResponse(200, {"x-used": "7"}, json.dumps(rows).encode())

    budgets = RestBudgets({Market.SPOT: 100, Market.USDM: 100}, used_weight_header="x-used")
    filler = Backfiller(
        Codec(Settings().kafka.topics),
        {Market.SPOT: "http://spot.test", Market.USDM: "http://usdm.test"},
        budgets=budgets,
        get=get,
        adapter=Other(),
    )
    with trio.fail_after(10):
        filled = await filler.fill(Gap(Market.SPOT, "trade", "BTCUSDT", 5, 8))
        nothing = await filler.fill(Gap(Market.SPOT, "aggTrade", "BTCUSDT", 5, 8))
    assert [(r.seq, r.kind, r.symbol) for r in filled] == [
        (i, "trade", "BTCUSDT") for i in (5, 6, 7, 8)
    ]
    assert nothing == []
    assert asked == [
        ("http://spot.test", "/v9/trades", {"symbol": "BTCUSDT", "fromId": 5, "limit": 2}),
        ("http://spot.test", "/v9/trades", {"symbol": "BTCUSDT", "fromId": 7, "limit": 2}),
    ]
    spot = budgets.budget(Market.SPOT)
    assert spot.server_used == 7  # read from the adapter's header
    assert spot.used(trio.current_time(), budgets.wall()) >= 4  # two pages of weight 2
    assert (filler.filled, filler.unfilled) == (4, 4)
