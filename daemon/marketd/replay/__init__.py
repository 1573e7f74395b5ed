"""Replay: a recording (:mod:`marketd.recorder`) served as a Binance-compatible exchange.

``marketd replay DIR`` serves the frames of a recording over WebSocket at the speed asked
for, on the fake exchange's URL layout (``/spot``, ``/usdm/public``, ``/usdm/market``;
combined streams, ``/ws`` raw streams, ``SUBSCRIBE``), and answers the REST market-data
endpoints from what the recording holds at the replay's clock. Pure parts: :mod:`.timeline`
(entries, times, speeds), :mod:`.book` (the replayed order book), :mod:`.trades` (trades
held for ``aggTrades`` / ``historicalTrades`` / klines / tickers), :mod:`.state` (one
market's replayed state) and :mod:`.rest` (the REST answers); :mod:`.server` runs it (trio)
and :mod:`.cli` is the command.
"""
