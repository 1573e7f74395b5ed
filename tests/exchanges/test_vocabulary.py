"""The Binance vocabulary table and its readers.

Every reader (configuration, handlers, sequencer, books, alerts, routing) derives its facts
from the table; these tests fail by name if one of them grows a local copy that disagrees,
and check that the rows themselves are consistent.
"""

from __future__ import annotations

import pytest

from marketd.alerts.encoding import PRICE_FIELDS
from marketd.config import alerts as settings_alerts
from marketd.config import settings as config
from marketd.data.records import Market
from marketd.exchanges.binance import vocabulary as vocab
from marketd.exchanges.binance.handlers import HEADERS, MarketHandlers
from marketd.exchanges.binance.vocabulary import Route
from marketd.exchanges.seam import Depth, Sequencing
from marketd.feed.streams import route_for
from marketd.pipeline import sequence


@pytest.mark.parametrize("market", list(Market))
def test_the_configuration_accepts_exactly_the_table(market: Market) -> None:
    assert config.CHANNELS[market] == vocab.channels(market)
    assert config.ALL_MARKET_STREAMS[market] == vocab.all_market_streams(market)
    assert config.RETIRED_STREAMS.get(market, {}) == vocab.RETIRED_STREAMS.get(market, {})


@pytest.mark.parametrize("market", list(Market))
def test_the_handlers_decode_exactly_the_decoded_rows(market: Market) -> None:
    handlers = MarketHandlers(market, config.TopicSettings())
    decoded = {c for c, row in vocab.BY_CHANNEL[market].items() if row.decoded}
    assert set(handlers.channels) == decoded
    decoded_all = {s for s, row in vocab.BY_ALL_MARKET[market].items() if row.decoded}
    assert set(handlers.all_market) == decoded_all
    assert set(HEADERS[market]) == {row.kind for row in vocab.ROWS if row.decoded}


def test_the_sequencer_books_and_alerts_read_the_same_kinds() -> None:
    assert vocab.kinds(Sequencing.CONSECUTIVE) == sequence.SEQUENCED_KINDS
    assert vocab.kinds(Sequencing.INCREASING) == sequence.DEDUPLICATED_KINDS
    assert vocab.price_fields() == PRICE_FIELDS
    assert set(settings_alerts.PRICE_KINDS) == set(PRICE_FIELDS)


@pytest.mark.parametrize("market", list(Market))
def test_every_stream_has_the_route_the_feed_uses(market: Market) -> None:
    streams = [f"btcusdt@{c}" for c in vocab.channels(market)]
    streams += sorted(vocab.all_market_streams(market))
    assert streams
    for stream in streams:
        assert vocab.route(market, stream) == route_for(market, stream), stream
    assert vocab.route(market, "btcusdt@nonsense") is None


def test_usdm_routes_depth_and_book_tickers_to_public_the_rest_to_market() -> None:
    public = ["btcusdt@depth", "btcusdt@depth20@100ms", "btcusdt@bookTicker", "!bookTicker"]
    market = ["btcusdt@aggTrade", "btcusdt@kline_1m", "!miniTicker@arr", "!forceOrder@arr"]
    assert {vocab.route(Market.USDM, s) for s in public} == {Route.PUBLIC}
    assert {vocab.route(Market.USDM, s) for s in market} == {Route.MARKET}
    assert {vocab.route(Market.SPOT, s) for s in ("btcusdt@depth", "btcusdt@trade")} == {Route.NONE}


def test_rows_are_consistent() -> None:
    for row in vocab.ROWS:
        assert row.channels or row.all_market, row.kind
        # A decoded row says where it lands; an undecoded one promises nothing.
        assert (row.message is None) == (row.topic is None), row.kind
        if row.message is None:
            assert (row.sequencing, row.price_field) == (Sequencing.NONE, None), row.kind
        assert row.depth is not Depth.DIFF or row.topic == "depth", row.kind
        assert row.route in (Route.PUBLIC, Route.MARKET), row.kind
    # A spelling belongs to one row only.
    for market in Market:
        spelled = [c for row in vocab.ROWS for c in row.channels.get(market, ())]
        assert len(spelled) == len(set(spelled))
        spelled = [s for row in vocab.ROWS for s in row.all_market.get(market, ())]
        assert len(spelled) == len(set(spelled))
    assert len(vocab.BY_KIND) == len(vocab.ROWS)


@pytest.mark.parametrize("market", list(Market))
def test_the_channel_help_is_rendered_from_the_table_and_names_every_channel(
    market: Market,
) -> None:
    text = vocab.channel_help(market)
    assert vocab.expand_help(text) == vocab.channels(market)
    assert len(text) < 300  # one line in an error message


def test_the_channel_help_of_each_market() -> None:
    assert vocab.channel_help(Market.USDM) == (
        "aggTrade, depth[@100ms|@250ms|@500ms], depth<5|10|20>[@100ms|@250ms|@500ms], "
        "bookTicker, miniTicker, ticker, markPrice[@1s], "
        "kline_<1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M>, forceOrder"
    )
    assert vocab.expand_help("a<1|2>[@x|@y], b, c<@p|@q>") == {
        "a1", "a2", "a1@x", "a2@x", "a1@y", "a2@y", "b", "c@p", "c@q"
    }  # fmt: skip
