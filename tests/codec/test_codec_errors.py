"""Bad input is counted (malformed / unknown) and skipped; nothing raises."""

from __future__ import annotations

import pytest
from binance_examples import (
    SPOT_AVG_PRICE,
    SPOT_BOOK_TICKER,
    SPOT_DEPTH_UPDATE,
    SPOT_KLINE,
    SPOT_PARTIAL_DEPTH,
    SPOT_TRADE,
    USDM_AGG_TRADE,
    USDM_DEPTH_UPDATE,
    USDM_FORCE_ORDER,
    USDM_KLINE,
    USDM_MARK_PRICE,
    USDM_MINI_TICKER,
    frame,
)

from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market
from marketd.exchanges.binance.codec import Codec
from marketd.exchanges.binance.handlers import market as market_handlers
from marketd.pipeline.codecs import Codecs

# A good frame of each market with id 12345 (USD-M has no trade stream: its aggTrade).
GOOD = {
    Market.SPOT: frame("bnbbtc@trade", SPOT_TRADE),
    Market.USDM: frame("btcusdt@aggTrade", USDM_AGG_TRADE.replace('"a":5933014', '"a":12345')),
}


def decode(market: Market, frames: list[str]) -> tuple[list[int], int, int, str]:
    """Decode ``frames`` between good trades; return the good trades' seqs and the counts."""
    good = GOOD[market]
    sandwiched = [good]
    for f in frames:
        sandwiched += [f, good]
    result = Codecs(TopicSettings()).decode_batch(
        FrameBatch(market, "c", sandwiched, list(range(len(sandwiched))))
    )
    return [r.seq for r in result.records], result.malformed, result.unknown, result.error


MALFORMED_SPOT = {
    "invalid json": '{"stream":"bnbbtc@trade","data":{"e":"trade",',
    "not json at all": "hello",
    "empty frame": "",
    "not an object": "[1,2,3]",
    "non-combined frame (raw stream payload)": SPOT_TRADE,
    "stream not a string": '{"stream":7,"data":{}}',
    "data missing": '{"stream":"bnbbtc@trade"}',
    "data not an object": frame("bnbbtc@trade", '"trade"'),
    "data null": frame("bnbbtc@trade", "null"),
    "data an array on a single stream": frame("bnbbtc@trade", "[" + SPOT_TRADE + "]"),
    "missing field": frame("bnbbtc@trade", SPOT_TRADE.replace('"t":12345,', "")),
    "price as a number": frame("bnbbtc@trade", SPOT_TRADE.replace('"p":"0.001"', '"p":0.001')),
    "id as a string": frame("bnbbtc@trade", SPOT_TRADE.replace('"t":12345', '"t":"12345"')),
    "id as a float": frame("bnbbtc@trade", SPOT_TRADE.replace('"t":12345', '"t":12345.5')),
    "maker flag as a string": frame("bnbbtc@trade", SPOT_TRADE.replace('"m":true', '"m":"true"')),
    "id beyond int64": frame(
        "bnbbtc@trade", SPOT_TRADE.replace('"t":12345', '"t":9223372036854775808')
    ),
    "event type contradicts the stream": frame(
        "bnbbtc@trade", SPOT_TRADE.replace('"e":"trade"', '"e":"aggTrade"')
    ),
    "depth level of three strings": frame(
        "bnbbtc@depth", SPOT_DEPTH_UPDATE.replace('["0.0024","10"]', '["0.0024","10","x"]')
    ),
    "depth level of numbers": frame(
        "bnbbtc@depth", SPOT_DEPTH_UPDATE.replace('["0.0024","10"]', "[0.0024,10]")
    ),
    "array stream not an array": frame("!miniTicker@arr", USDM_MINI_TICKER),
    "array stream with one bad item": frame(
        "!miniTicker@arr", "[" + USDM_MINI_TICKER + "," + USDM_MINI_TICKER[:-30] + "}]"
    ),
}


@pytest.mark.parametrize("bad", MALFORMED_SPOT.values(), ids=MALFORMED_SPOT.keys())
def test_malformed_frames_are_counted_and_skipped(bad: str) -> None:
    seqs, malformed, unknown, error = decode(Market.SPOT, [bad])
    assert seqs == [12345, 12345]
    assert (malformed, unknown) == (1, 0)
    assert error.startswith("malformed")


def test_usdm_depth_without_pu_is_malformed() -> None:
    spot_shaped = frame("btcusdt@depth", SPOT_DEPTH_UPDATE)
    seqs, malformed, unknown, _ = decode(Market.USDM, [spot_shaped])
    assert (len(seqs), malformed, unknown) == (2, 1, 0)


def test_spot_depth_with_pu_is_accepted() -> None:
    seqs, malformed, unknown, _ = decode(Market.SPOT, [frame("btcusdt@depth", USDM_DEPTH_UPDATE)])
    assert (seqs, malformed, unknown) == ([12345, 160, 12345], 0, 0)


# Streams the vocabulary table lacks (on that market): every row is decoded now, so these
# are made-up names, spellings of the other market, and parameters Binance does not serve.
UNKNOWN = {
    Market.SPOT: [
        frame("bnbbtc@kline_2s", SPOT_KLINE),  # not a kline interval
        frame("bnbbtc@depth15", SPOT_PARTIAL_DEPTH),  # partial depth is 5, 10 or 20 levels
        frame("bnbbtc@depth20@250ms", SPOT_PARTIAL_DEPTH),  # not a spot speed
        frame("bnbbtc@candles", SPOT_KLINE),  # made up
        frame("btcusdt@forceOrder", USDM_FORCE_ORDER),  # futures only
        frame("!forceOrder@arr", USDM_FORCE_ORDER),  # futures only
        frame("bnbbtc@depth@250ms", SPOT_DEPTH_UPDATE),  # not a spot speed
        frame("btcusdt@markPrice", USDM_MARK_PRICE),  # futures only
        frame("!ticker@arr", "[]"),  # retired on spot
        frame("!bookTicker", SPOT_BOOK_TICKER),  # futures only
        frame("@trade", SPOT_TRADE),  # no symbol
        frame("bnbbtc", SPOT_TRADE),  # no channel
        frame("", SPOT_TRADE),
        frame("bnbbtc@TRADE", SPOT_TRADE),
        frame("!serverShutdown", '{"e":"serverShutdown","E":1}'),
    ],
    Market.USDM: [
        frame("btcusdt@markPrice@3s", USDM_MARK_PRICE),
        frame("btcusdt@kline_1s", USDM_KLINE),  # a spot interval
        frame("btcusdt@avgPrice", SPOT_AVG_PRICE),  # spot only
        frame("btcusdt@ticker_1h", "{}"),  # spot only
        frame("btcusdt@depth5@1000ms", USDM_DEPTH_UPDATE),  # a spot speed
        frame("btcusdt@liquidations", USDM_FORCE_ORDER),  # made up
        frame("!forceOrder", USDM_FORCE_ORDER),  # the all-market name ends in @arr
        frame("btcusdt@trade", SPOT_TRADE),  # a spot stream; USD-M serves aggTrade
        frame("btcusdt@depth@1000ms", USDM_DEPTH_UPDATE),  # a spot speed
    ],
}


@pytest.mark.parametrize("market", [Market.SPOT, Market.USDM])
def test_unknown_streams_are_counted_and_skipped(market: Market) -> None:
    frames = UNKNOWN[market]
    seqs, malformed, unknown, error = decode(market, frames)
    assert seqs == [12345] * (len(frames) + 1)
    assert (malformed, unknown) == (0, len(frames))
    assert error.startswith("unknown stream")


def test_counts_and_last_error_over_a_mixed_batch() -> None:
    frames = [
        GOOD[Market.SPOT],
        "{",
        frame("bnbbtc@kline_2s", "{}"),
        frame("bnbbtc@kline_2s", "{}"),
        GOOD[Market.SPOT],
        frame("bnbbtc@trade", "{}"),
    ]
    result = Codecs(TopicSettings()).decode_batch(
        FrameBatch(Market.SPOT, "c", frames, [0] * len(frames))
    )
    assert len(result.records) == 2
    assert (result.malformed, result.unknown) == (2, 2)
    assert "bnbbtc@trade" in result.error
    assert "missing required field" in result.error


def test_error_text_is_bounded() -> None:
    huge = frame("x" * 10_000 + "@kline_2s", "{}")
    result = Codecs(TopicSettings()).decode_batch(FrameBatch(Market.SPOT, "c", [huge], [0]))
    assert result.unknown == 1
    assert len(result.error) < 400


def test_clean_batch_has_no_error() -> None:
    result = Codecs(TopicSettings()).decode_batch(
        FrameBatch(Market.SPOT, "c", [GOOD[Market.SPOT]], [0])
    )
    assert (result.malformed, result.unknown, result.error) == (0, 0, "")
    empty = Codecs(TopicSettings()).decode_batch(FrameBatch(Market.SPOT, "c", [], []))
    assert (empty.records, empty.malformed, empty.unknown) == ([], 0, 0)


def test_stream_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(market_handlers, "MAX_CACHED_STREAMS", 8)
    codec = Codec(Market.SPOT, TopicSettings())
    frames = [frame(f"sym{i}@kline_2s", "{}") for i in range(50)] + [GOOD[Market.SPOT]]
    result = codec.decode_batch(FrameBatch(Market.SPOT, "c", frames, [0] * len(frames)))
    assert (len(result.records), result.unknown) == (1, 50)
    # Reach into the cache only to prove the bound; behaviour is covered above.
    assert len(codec._handlers.handlers) <= 8


def test_unknown_event_type_on_a_known_stream_is_unknown_not_malformed() -> None:
    # Binance adding an event type to a stream is news, not damage: counted apart.
    frames = [
        frame("bnbbtc@trade", '{"e":"tradeV2","E":1,"s":"BNBBTC"}'),
        frame("bnbbtc@depth", '{"e":"depthSnapshot","E":1}'),
    ]
    seqs, malformed, unknown, error = decode(Market.SPOT, frames)
    assert seqs == [12345, 12345, 12345]
    assert (malformed, unknown) == (0, 2)
    assert error == "unknown event 'depthSnapshot' on 'bnbbtc@depth'"


def test_an_array_item_of_an_unknown_event_type_is_unknown_another_known_one_malformed() -> None:
    # The same rule per item of an array stream: a new event type is news; a known type
    # that does not belong there (a mark price among mini tickers) is damage.
    mini = USDM_MINI_TICKER
    frames = [
        frame("!miniTicker@arr", f'[{mini},{{"e":"24hrMiniTickerV2","E":1,"s":"X"}}]'),
        frame("!miniTicker@arr", f"[{mini},{USDM_MARK_PRICE}]"),
        frame("!markPrice@arr", f'[{USDM_MARK_PRICE},{{"s":"X"}}]'),  # an item without e
    ]
    seqs, malformed, unknown, error = decode(Market.USDM, frames)
    assert len(seqs) == 4  # the good trades only: a bad item drops its whole frame
    assert (malformed, unknown) == (2, 1)
    assert error.startswith("malformed '!markPrice@arr' payload: ")
    _, _, unknown_only, error = decode(Market.USDM, frames[:1])
    assert (unknown_only, error) == (1, "unknown event '24hrMiniTickerV2' on '!miniTicker@arr'")


def test_known_or_missing_event_type_that_fails_to_decode_is_malformed() -> None:
    frames = [
        frame("bnbbtc@trade", '{"e":"trade","E":1}'),  # known e, fields missing
        frame("bnbusdt@bookTicker", '{"u":1,"s":"BNBUSDT"}'),  # no e at all (spot)
    ]
    seqs, malformed, unknown, error = decode(Market.SPOT, frames)
    assert (seqs, malformed, unknown) == ([12345] * 3, 2, 0)
    assert error.startswith("malformed 'bnbusdt@bookTicker' payload: ")


def test_error_texts_quote_a_bounded_part_of_the_frame() -> None:
    def last_error(frames: list[str]) -> str:
        batch = FrameBatch(Market.SPOT, "c", frames, [0] * len(frames))
        return Codecs(TopicSettings()).decode_batch(batch).error

    bad_json = "{" + "x" * 200
    error = last_error([bad_json])
    assert error.startswith("malformed frame: ")
    assert error.endswith(f": {bad_json[:100]!r}")
    stream = "s" * 150 + "@kline_2s"
    assert last_error([frame(stream, "{}")]) == f"unknown stream {stream[:100]!r}"
    stream = "s" * 150 + "@trade"
    error = last_error([frame(stream, "{}")])
    assert error.startswith(f"malformed {stream[:100]!r} payload: ")
    assert "missing required field" in error
    event = "z" * 80
    error = last_error([frame(stream, f'{{"e":"{event}"}}')])
    assert error == f"unknown event {event[:60]!r} on {stream[:100]!r}"


def test_a_batch_with_fewer_times_than_frames_is_refused() -> None:
    # A programming error upstream: never decode frames against the wrong receive times.
    batch = FrameBatch(Market.SPOT, "c", [GOOD[Market.SPOT]] * 2, [0])
    with pytest.raises(ValueError, match="zip"):
        Codecs(TopicSettings()).decode_batch(batch)
