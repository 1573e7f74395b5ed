"""The status stream's pure parts and its stage: records as status.proto documents them,
depth chains (spot and USD-M rules), missing id ranges, and the stage that merges the
reports into the data without ever blocking a reporter."""

from __future__ import annotations

import pytest
import trio

from marketd.data.records import Market, Record
from marketd.pipeline.sequence import DepthChains, missing_ranges
from marketd.status import StatusStream, symbol_of_stream
from marketd.status import stream as status_stream
from marketd.v1 import status_pb2
from marketd.v1.market_data_pb2 import MARKET_UNSPECIFIED, MARKET_USDM


def decoded(record: Record) -> status_pb2.StatusEvent:
    return status_pb2.StatusEvent.FromString(record.value)


def test_a_report_is_a_status_event_keyed_by_symbol_with_its_headers() -> None:
    stream = StatusStream("marketd.status", "collector-1")
    stream.depth_gap(Market.USDM, "BTCUSDT", 100, 105)
    stream.intake_stopped("spool_full", 42)
    started, gap, stopped = stream._take()
    event = decoded(gap)
    assert (gap.topic, gap.key, gap.kind, gap.symbol) == (
        "marketd.status",
        b"BTCUSDT",
        "depthGap",
        "BTCUSDT",
    )
    assert dict(gap.headers) == {"type": b"depthGap", "market": b"usdm"}
    assert (event.market, event.symbol, event.collector) == (MARKET_USDM, "BTCUSDT", "collector-1")
    assert event.WhichOneof("event") == "depth_gap"
    assert (event.depth_gap.last_update_id, event.depth_gap.first_missing_below) == (100, 105)
    assert abs(event.time_ms * 1_000_000 - gap.received_ns) < 1_000_000
    # A collector event: no symbol, no market (neither in the value nor the headers).
    assert dict(stopped.headers) == {"type": b"intakeStopped"}
    assert stopped.key == b""
    assert decoded(stopped).market == MARKET_UNSPECIFIED
    assert decoded(stopped).intake_stopped.pending_records == 42
    assert decoded(started).WhichOneof("event") == "collector_started"


def test_symbols_of_streams() -> None:
    assert symbol_of_stream("btcusdt@depth@100ms") == "BTCUSDT"
    assert symbol_of_stream("1000pepeusdt@aggTrade") == "1000PEPEUSDT"
    assert symbol_of_stream("!miniTicker@arr") == ""


def test_spot_depth_chain_names_the_missing_update_ids() -> None:
    chains = DepthChains()
    spot = Market.SPOT
    assert chains.check(spot, "A", 1, 10, None) is None  # the first diff seen
    assert chains.check(spot, "A", 11, 15, None) is None  # U = last + 1
    assert chains.check(spot, "A", 12, 20, None) is None  # an overlap (after a reconnect)
    assert chains.check(spot, "A", 31, 40, None) == (20, 31)  # 21..30 never arrived
    assert chains.check(spot, "B", 100, 110, None) is None  # per symbol
    assert chains.check(spot, "A", 41, 41, None) is None


def test_usdm_depth_chain_follows_pu() -> None:
    chains = DepthChains()
    usdm = Market.USDM
    assert chains.check(usdm, "A", 1, 10, 0) is None
    assert chains.check(usdm, "A", 14, 20, 10) is None  # pu = last u: ids need not be dense
    assert chains.check(usdm, "A", 30, 40, 25) == (20, 26)  # the diffs up to u=25 are missing
    assert chains.check(usdm, "A", 35, 50, 33) is None  # pu below the last u: an overlap
    assert chains.check(Market.SPOT, "A", 1, 5, None) is None  # the other market's own chain


def test_missing_ranges() -> None:
    assert missing_ranges(10, 20, []) == [(10, 20)]
    assert missing_ranges(10, 20, list(range(10, 21))) == []
    assert missing_ranges(10, 20, [10, 11, 15, 20]) == [(12, 14), (16, 19)]
    assert missing_ranges(10, 20, [12]) == [(10, 11), (13, 20)]


def batch_of(n: int) -> list[Record]:
    return [Record("t", b"K", str(i).encode(), (), i, Market.SPOT, "trade", "K", i)
            for i in range(n)]  # fmt: skip


async def test_the_stage_forwards_data_and_hands_reports_on_when_quiet() -> None:
    stream = StatusStream("s", "c")
    send_in, receive_in = trio.open_memory_channel[list[Record]](4)
    send_out, receive_out = trio.open_memory_channel[list[Record]](4)
    data = batch_of(3)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(stream.serve, receive_in, send_out)
            assert [r.kind for r in await receive_out.receive()] == ["collectorStarted"]
            await send_in.send(data)
            assert await receive_out.receive() == data  # forwarded as it is
            stream.stream_down(Market.SPOT, "btcusdt@trade", "spot-0", "closed", 0)
            (down,) = await receive_out.receive()  # no data needed to carry it
            assert decoded(down).stream_down.reason == "closed"
            # At the end of the input, what is queued goes out before the output closes.
            stream.stream_up(Market.SPOT, "btcusdt@trade", "spot-0")
            await send_in.aclose()
            rest = [r async for batch in receive_out for r in batch]
            assert [r.kind for r in rest] == ["streamUp"]


def test_a_full_queue_drops_the_oldest_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_stream, "MAX_QUEUED", 3)
    stream = StatusStream("s", "c")  # collectorStarted is the first
    for i in range(4):
        stream.depth_gap(Market.SPOT, f"S{i}", 1, 3)
    assert stream.dropped == 2
    assert [r.symbol for r in stream._take()] == ["S1", "S2", "S3"]
    assert stream.emitted["depthGap"] == 4
