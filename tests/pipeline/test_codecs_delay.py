"""The sampled exchange-event → receipt delay: one sample per kind with a new event per
batch, none per frame, every series present from the start."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market
from marketd.pipeline.codecs import Codecs


def agg_trade(symbol: str, trade_id: int, event_ms: int) -> str:
    data = {"e": "aggTrade", "E": event_ms, "s": symbol, "a": trade_id, "p": "1.5", "q": "2",
            "f": trade_id, "l": trade_id, "T": event_ms - 1, "m": True}  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data})


def series(market: str, kind: str) -> tuple[float, float]:
    """(count, sum) of the delay histogram for (market, kind)."""
    labels = {"market": market, "kind": kind}
    count = REGISTRY.get_sample_value("marketd_event_receive_delay_seconds_count", labels)
    total = REGISTRY.get_sample_value("marketd_event_receive_delay_seconds_sum", labels)
    assert count is not None, "the series exists before any sample"
    assert total is not None
    return count, total


def test_one_sample_per_kind_per_batch_from_its_newest_event() -> None:
    codecs = Codecs(TopicSettings())
    count0, sum0 = series("usdm", "aggTrade")
    spot_before = series("spot", "aggTrade")  # every served kind's series, already there
    base_ms = 1_800_000_000_000
    frames = [agg_trade("BTCUSDT", i, base_ms + i * 10) for i in range(1, 6)]  # newest: +50
    received = [(base_ms + 200) * 1_000_000] * 5  # the batch was read 150 ms after it
    codecs.decode_batch(FrameBatch(Market.USDM, "c", frames, received))
    count1, sum1 = series("usdm", "aggTrade")
    assert count1 - count0 == 1
    assert abs((sum1 - sum0) - 0.150) < 1e-6
    # A batch with no new event of the kind adds no sample; a later one adds its own.
    codecs.decode_batch(FrameBatch(Market.USDM, "c", [frames[-1]], [received[0]]))
    assert series("usdm", "aggTrade")[0] == count1
    late = agg_trade("ETHUSDT", 9, base_ms + 1_000)
    codecs.decode_batch(FrameBatch(Market.USDM, "c", [late], [(base_ms + 3_500) * 1_000_000]))
    count2, sum2 = series("usdm", "aggTrade")
    assert (count2 - count1, round(sum2 - sum1, 6)) == (1, 2.5)
    assert series("spot", "aggTrade") == spot_before  # the other market's are untouched
