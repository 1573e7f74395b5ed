"""Payloads as Binance documents them (spot and USD-M futures), written out as literals."""

from __future__ import annotations

import json

SPOT_TRADE = (
    '{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100",'
    '"T":1672515782136,"m":true,"M":true}'
)
SPOT_AGG_TRADE = (
    '{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100",'
    '"f":100,"l":105,"T":1672515782136,"m":true,"M":true}'
)
SPOT_DEPTH_UPDATE = (
    '{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,'
    '"b":[["0.0024","10"]],"a":[["0.0026","100"]]}'
)
SPOT_BOOK_TICKER = (
    '{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000",'
    '"a":"25.36520000","A":"40.66000000"}'
)
SPOT_MINI_TICKER = (
    '{"e":"24hrMiniTicker","E":1672515782136,"s":"BNBBTC","c":"0.0025","o":"0.0010",'
    '"h":"0.0025","l":"0.0010","v":"10000","q":"18"}'
)
SPOT_TICKER = (
    '{"e":"24hrTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00",'
    '"w":"0.0018","x":"0.0009","c":"0.0025","Q":"10","b":"0.0024","B":"10","a":"0.0026",'
    '"A":"100","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18","O":0,'
    '"C":1675216573749,"F":0,"L":18150,"n":18151}'
)

USDM_AGG_TRADE = (
    '{"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100",'
    '"nq":"100","f":100,"l":105,"T":123456785,"m":true}'
)
USDM_MARK_PRICE = (
    '{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000",'
    '"i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}'
)
USDM_DEPTH_UPDATE = (
    '{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":157,"u":160,"pu":149,'
    '"b":[["0.0024","10"]],"a":[["0.0026","100"]]}'
)
USDM_BOOK_TICKER = (
    '{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT",'
    '"b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}'
)
USDM_MINI_TICKER = (
    '{"e":"24hrMiniTicker","E":123456789,"s":"BTCUSDT","c":"0.0025","o":"0.0010",'
    '"h":"0.0025","l":"0.0010","v":"10000","q":"18"}'
)
USDM_TICKER = (
    '{"e":"24hrTicker","E":123456789,"s":"BTCUSDT","p":"0.0015","P":"250.00","w":"0.0018",'
    '"c":"0.0025","Q":"10","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18",'
    '"O":0,"C":86400000,"F":0,"L":18150,"n":18151}'
)

# The kinds decoded since the vocabulary table was completed (Binance's documented examples).
SPOT_KLINE = (
    '{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,'
    '"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025",'
    '"l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500",'
    '"B":"123456"}}'
)
USDM_KLINE = (
    '{"e":"kline","E":1638747660000,"s":"BTCUSDT","k":{"t":1638747660000,"T":1638747719999,'
    '"s":"BTCUSDT","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025",'
    '"l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500",'
    '"B":"123456"}}'
)
SPOT_AVG_PRICE = (
    '{"e":"avgPrice","E":1693907033000,"s":"BTCUSDT","i":"5m","w":"25776.86000000",'
    '"T":1693907032213}'
)
SPOT_1H_TICKER = (
    '{"e":"1hTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","o":"0.0010",'
    '"h":"0.0025","l":"0.0010","c":"0.0025","w":"0.0018","v":"10000","q":"18","O":0,'
    '"C":1675216573749,"F":0,"L":18150,"n":18151}'
)
SPOT_4H_TICKER = SPOT_1H_TICKER.replace('"1hTicker"', '"4hTicker"')
SPOT_1D_TICKER = SPOT_1H_TICKER.replace('"1hTicker"', '"1dTicker"')
USDM_FORCE_ORDER = (
    '{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",'
    '"q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014",'
    '"T":1568014460893}}'
)
SPOT_PARTIAL_DEPTH = '{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}'
USDM_PARTIAL_DEPTH = (
    '{"e":"depthUpdate","E":1571889248277,"T":1571889248276,"s":"BTCUSDT","U":390497796,'
    '"u":390497878,"pu":390497794,"b":[["7403.89","0.002"],["7403.90","3.906"]],'
    '"a":[["7405.96","3.340"],["7406.63","4.525"]]}'
)

# REST: GET /api/v3/historicalTrades and GET /api/v3/aggTrades (one documented row each,
# plus a second row), GET /fapi/v1/aggTrades (adds nq, no M).
REST_HISTORICAL_TRADES = (
    b'[{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012",'
    b'"time":1499865549590,"isBuyerMaker":true,"isBestMatch":true},'
    b'{"id":28458,"price":"4.00000200","qty":"1.50000000","quoteQty":"6.000003",'
    b'"time":1499865549591,"isBuyerMaker":false,"isBestMatch":true}]'
)
REST_AGG_TRADES = (
    b'[{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,'
    b'"T":1498793709153,"m":true,"M":true},'
    b'{"a":26130,"p":"0.01633103","q":"0.10000000","f":27782,"l":27784,'
    b'"T":1498793709154,"m":false,"M":true}]'
)
USDM_REST_AGG_TRADES = (
    b'[{"a":26129,"p":"0.01633102","q":"4.70443515","nq":"4.70000000","f":27781,"l":27781,'
    b'"T":1498793709153,"m":true}]'
)


def frame(stream: str, data: str) -> str:
    """A combined-stream frame around ``data`` (JSON text), as Binance sends it."""
    return f'{{"stream":{json.dumps(stream)},"data":{data}}}'
