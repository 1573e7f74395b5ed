"""Fill trade-id gaps from Binance's REST trade history, in order.

After a reconnect, trades that happened while disconnected are fetched with ``fromId``
(``historicalTrades`` for ``trade``, ``aggTrades`` for ``aggTrade``) and published before
the live trade that revealed the gap, so each symbol's ids stay consecutive in Kafka.
"""

from __future__ import annotations

import time
from typing import Protocol

import attrs
import structlog
import trio

from marketd.backoff import Backoff, BackoffPolicy
from marketd.errors import RestError
from marketd.records import Market, Record
from marketd.rest import http_get
from marketd.sequence import Gap

log = structlog.get_logger(__name__)

PAGE_LIMIT = 1000
_PATHS: dict[tuple[Market, str], str] = {
    (Market.SPOT, "trade"): "/api/v3/historicalTrades",
    (Market.SPOT, "aggTrade"): "/api/v3/aggTrades",
    (Market.USDM, "trade"): "/fapi/v1/historicalTrades",
    (Market.USDM, "aggTrade"): "/fapi/v1/aggTrades",
}


class RestTradeEncoder(Protocol):
    def encode_rest_trades(
        self, market: Market, symbol: str, kind: str, body: bytes, received_ns: int
    ) -> list[Record]: ...


@attrs.define
class Backfiller:
    encoder: RestTradeEncoder
    rest_urls: dict[Market, str]
    max_trades: int = 10_000
    timeout: float = 10.0
    attempts: int = 3
    retry: BackoffPolicy = attrs.field(factory=lambda: BackoffPolicy(initial=0.2, cap=2.0))
    filled: int = 0
    unfilled: int = 0
    requests: int = 0
    last_error: str = ""

    async def fill(self, gap: Gap) -> list[Record]:
        """Return the records with ids ``gap.first..gap.last`` that REST still has, in order.

        Gives up after ``attempts`` failed requests or beyond ``max_trades`` (counted in
        ``unfilled``): a gap that cannot be filled is reported, never hidden.
        """
        path = _PATHS.get((gap.market, gap.kind))
        if path is None:
            self.unfilled += gap.size
            return []
        wanted_last = min(gap.last, gap.first + self.max_trades - 1)
        out: list[Record] = []
        next_id = gap.first
        while next_id <= wanted_last:
            page = await self._page(gap, path, next_id)
            fresh = [r for r in page if next_id <= r.seq <= wanted_last]
            if not fresh:
                break
            fresh.sort(key=lambda r: r.seq)
            out.extend(fresh)
            next_id = fresh[-1].seq + 1
            if len(page) < PAGE_LIMIT:
                break
        self.filled += len(out)
        self.unfilled += gap.size - len(out)
        return out

    async def _page(self, gap: Gap, path: str, from_id: int) -> list[Record]:
        backoff = Backoff(self.retry)
        params: dict[str, str | int] = {
            "symbol": gap.symbol,
            "fromId": from_id,
            "limit": PAGE_LIMIT,
        }
        for attempt in range(self.attempts):
            self.requests += 1
            try:
                resp = await http_get(
                    self.rest_urls[gap.market], path, params, time_limit=self.timeout
                )
                if resp.status == 200:
                    return self.encoder.encode_rest_trades(
                        gap.market, gap.symbol, gap.kind, resp.body, time.time_ns()
                    )
            except RestError as exc:
                self.last_error = str(exc)
            else:
                self.last_error = f"HTTP {resp.status}: {resp.body[:200]!r}"
                if resp.status in (418, 429):
                    # Banned or over the weight budget: do not hammer; give up this gap.
                    break
            log.warning(
                "backfill request failed",
                symbol=gap.symbol,
                kind=gap.kind,
                attempt=attempt + 1,
                error=self.last_error,
            )
            await trio.sleep(backoff.next_delay())
        return []
