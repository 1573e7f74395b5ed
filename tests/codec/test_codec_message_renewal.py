"""The codec's reused Protobuf messages are renewed now and then: with upb, whatever is set
on a message stays in its arena until the message is freed, so a message reused for ever
grows the process without bound (found by bench_memory: ~0.5 MiB/s on a full market)."""

from __future__ import annotations

import json

from marketd.alerts.encoding import RENEW_PARSES, TickReader
from marketd.config.settings import TopicSettings
from marketd.data.records import FrameBatch, Market
from marketd.exchanges.binance.codec import RENEW_MESSAGES_FRAMES, Codec
from marketd.v1.market_data_pb2 import MarketEvent


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def depth_frame(u: int) -> str:
    levels = [[f"{27000 + j}.{u % 97:02d}000000", f"{j + 1}.50000000"] for j in range(20)]
    data = {"e": "depthUpdate", "E": 1_700_000_000_000 + u, "s": "BTCUSDT", "U": u, "u": u,
            "b": levels, "a": levels}  # fmt: skip
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": data})


def test_decoding_many_book_frames_keeps_memory_bounded_and_output_exact() -> None:
    codec = Codec(Market.SPOT, TopicSettings())
    frames = [depth_frame(u) for u in range(1, 257)]
    batch = FrameBatch(Market.SPOT, "t", frames, [7] * len(frames))
    codec.decode_batch(batch)  # warm caches
    first = codec._handlers.kinds["depthUpdate"].event
    before = rss_mib()
    for _ in range(100):  # 25,600 frames of 40 levels: ~70 MiB if the message were kept
        result = codec.decode_batch(batch)
    grown = rss_mib() - before
    assert codec._handlers.kinds["depthUpdate"].event is not first
    assert grown < 25, f"RSS grew {grown:.1f} MiB over 25,600 decoded book frames"
    # What is encoded is the frame, not a leftover of an earlier message.
    last = MarketEvent.FromString(result.records[-1].value)
    assert last.depth_diff.final_update_id == 256
    assert [(lv.price, lv.quantity) for lv in last.depth_diff.bids][:2] == [
        ("27000.62000000", "1.50000000"), ("27001.62000000", "2.50000000")]  # fmt: skip
    assert len(last.depth_diff.asks) == 20
    # The newest event time survives a renewal.
    assert codec.newest_event_times()["depthUpdate"] == 1_700_000_000_256


def test_renewal_happens_every_so_many_frames_and_keeps_the_event_time() -> None:
    codec = Codec(Market.SPOT, TopicSettings())
    handler = codec._handlers.kinds["depthUpdate"]
    frames = [depth_frame(u) for u in range(1, RENEW_MESSAGES_FRAMES)]
    codec.decode_batch(FrameBatch(Market.SPOT, "t", frames, [7] * len(frames)))
    kept = handler.event
    codec.decode_batch(FrameBatch(Market.SPOT, "t", [depth_frame(5000)], [7]))
    assert handler.event is not kept  # the 1024th frame went into a fresh message
    renewed = handler.event
    codec.decode_batch(FrameBatch(Market.SPOT, "t", [depth_frame(5001)], [7]))
    assert handler.event is renewed
    # Renewed between frames, the message keeps only the newest event time.
    codec._handlers.renew_messages()
    assert handler.event is not renewed
    assert not handler.event.HasField("depth_diff")
    assert codec.newest_event_times()["depthUpdate"] == 1_700_000_005_001


def test_the_tick_reader_renews_its_message_and_reads_every_value() -> None:
    reader = TickReader(["trade"], ["spot"])
    event = MarketEvent(market=1, symbol="BTCUSDT", event_time_ms=5)
    values = []
    for i in range(RENEW_PARSES + 3):
        event.trade.price = f"{100 + i}.5"
        event.trade.quantity = "2"
        values.append(event.SerializeToString())
    first = reader._event
    ticks = [reader.tick(v) for v in values]
    assert reader._event is not first
    assert [t.price for t in ticks if t is not None] == [f"{100 + i}.5" for i in range(len(values))]
