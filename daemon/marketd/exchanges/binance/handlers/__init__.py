"""Per-market stream handlers: one Binance payload (raw JSON) → ``MarketEvent`` records.

Used by :class:`marketd.exchanges.binance.codec.Codec`; pure and synchronous. Each kind's
handler decodes ``data`` with its typed msgspec decoder and fills a ``MarketEvent`` that it
keeps and reuses: every field the handler owns is assigned on every call (repeated fields
are cleared first), so the serialized bytes are exactly those of a freshly built message,
at a third less cost.
A handler is therefore not re-entrant; a codec serves one thread (the trio thread).

:class:`MarketHandlers` (:mod:`.market`) builds one market's handlers from the vocabulary
table and caches the handler of each stream name; the handlers live in a module per group
of kinds (:mod:`.trades`, :mod:`.depth`, :mod:`.tickers`, :mod:`.futures`, :mod:`.klines`).
"""

from marketd.exchanges.binance.handlers.common import HEADERS, PB_MARKET, Handler
from marketd.exchanges.binance.handlers.market import MAX_CACHED_STREAMS, MarketHandlers

__all__ = ["HEADERS", "MAX_CACHED_STREAMS", "PB_MARKET", "Handler", "MarketHandlers"]
