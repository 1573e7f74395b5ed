"""The recorder stage: frames to segments without ever blocking the pipeline, a full queue
and a failed write counted, readiness; and a real ``marketd run`` recording the fake."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from unittest.mock import ANY

import pytest
import trio
from kit.daemon import binance_config
from kit.wait import poll_until, poll_until_blocking

from marketd.config.recorder import RecorderSettings
from marketd.data.records import ControlFrame, FrameBatch, Market
from marketd.recorder import Entry, read
from marketd.recorder.format import payload_marker
from marketd.recorder.stage import Recorder, stream_of, streams_of
from marketd.rest.client import RestResponse
from marketd.testing.processes import DaemonProcess, FakeExchangeProcess, metric_value


def frame(stream: str, n: int) -> str:
    return json.dumps({"stream": stream, "data": {"e": "aggTrade", "a": n}}, separators=(",", ":"))


def batch(connection: str, stream: str, ids: range, t0: int = 1_000) -> FrameBatch:
    return FrameBatch(Market.USDM, connection, [frame(stream, n) for n in ids],
                      [t0 + n for n in ids])  # fmt: skip


def test_stream_of_reads_the_combined_stream_name_without_parsing() -> None:
    assert stream_of('{"stream":"btcusdt@aggTrade","data":{}}') == "btcusdt@aggTrade"
    assert stream_of('{"stream":"!miniTicker@arr","data":[]}') == "!miniTicker@arr"
    assert stream_of('{"data":{}}') == ""
    assert stream_of('{"stream":"unterminated') == ""


def test_streams_of_is_stream_of_of_each_frame() -> None:
    frames = [
        '{"stream":"btcusdt@aggTrade","data":{}}', '{"data":{},"stream":"x"}', "",
        '{"stream":"unterminated', '{"stream":"ü@流","data":1}', "not json", '{"stream":""}',
        '{"stream":"', '{"result":null,"id":1}',
    ]  # fmt: skip
    assert streams_of(frames) == [stream_of(f) for f in frames]
    assert streams_of(frames)[:5] == ["btcusdt@aggTrade", "", "", "", "ü@流"]


async def test_a_round_keeps_the_order_of_batches_and_control_frames(tmp_path: Path) -> None:
    """Runs of one connection's batches are written as one, control frames in their
    places, REST answers between them: read back in the order offered."""
    recorder = Recorder(RecorderSettings(directory=str(tmp_path / "rec")))
    acked = ControlFrame(0, 2_000, '{"result":null,"id":1}')
    closed = ControlFrame(2, 2_500, '{"marketd":"closed","code":1000,"reason":null,"by":"marketd"}')
    offered = [
        batch("a", "s1", range(0, 3)),
        batch("a", "s2", range(3, 5)),
        batch("b", "s1", range(5, 6)),
        FrameBatch(Market.USDM, "a", [frame("s1", 6), frame("s1", 7)], [1_006, 1_007],
                   (acked, closed)),
        Entry(3_000, "rest", "http://x", "/fapi/v1/depth?symbol=X", b"{}"),
        batch("a", "s1", range(8, 10)),
        FrameBatch(Market.USDM, "b", [], [], (ControlFrame(0, 4_000, '{"marketd":"closed"}'),)),
    ]  # fmt: skip
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.serve)
        for item in offered:
            recorder.offer(item)
        nursery.cancel_scope.cancel()
    got = [(e.connection, e.stream, e.payload) for e in read(tmp_path / "rec")]

    def ws(connection: str, stream: str, n: int) -> tuple[str, str, bytes]:
        return connection, stream, frame(stream, n).encode()

    assert got == [
        *(ws("a", "s1", n) for n in range(3)), *(ws("a", "s2", n) for n in (3, 4)),
        ws("b", "s1", 5),
        ("a", "", acked.text.encode()), ws("a", "s1", 6), ws("a", "s1", 7),
        ("a", "", closed.text.encode()),
        ("http://x", "/fapi/v1/depth?symbol=X", b"{}"),
        ws("a", "s1", 8), ws("a", "s1", 9),
        ("b", "", b'{"marketd":"closed"}'),
    ]  # fmt: skip
    assert recorder.statistics().recorded == len(got) == 14


async def test_frames_are_recorded_as_received(tmp_path: Path) -> None:
    settings = RecorderSettings(enabled=True, directory=str(tmp_path / "rec"))
    recorder = Recorder(settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.serve)
        assert recorder.ready()
        recorder.offer(batch("usdm-0", "btcusdt@aggTrade", range(0, 500)))
        recorder.offer(batch("usdm-1", "ethusdt@aggTrade", range(500, 600)))
        await poll_until(lambda: recorder.statistics().recorded >= 600, timeout=10,
                         what="600 frames recorded")  # fmt: skip
        nursery.cancel_scope.cancel()
    st = recorder.statistics()
    assert (st.recorded, st.dropped, st.failed, st.segments_finished) == (600, 0, 0, 1)
    got = list(read(tmp_path / "rec"))
    assert [(e.connection, e.stream, e.received_ns) for e in got[:2]] == [
        ("usdm-0", "btcusdt@aggTrade", 1_000), ("usdm-0", "btcusdt@aggTrade", 1_001)
    ]  # fmt: skip
    assert [json.loads(e.payload)["data"]["a"] for e in got] == list(range(600))
    assert {e.kind for e in got} == {"ws"}
    assert got[-1].payload == frame("ethusdt@aggTrade", 599).encode()


async def test_frames_queued_at_a_stop_are_written_before_the_segment_closes(
    tmp_path: Path,
) -> None:
    recorder = Recorder(RecorderSettings(directory=str(tmp_path / "rec")))
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.serve)
        for i in range(20):
            recorder.offer(batch("c", "s", range(i * 50, i * 50 + 50)))
        nursery.cancel_scope.cancel()  # at once: most batches are still queued
    assert recorder.statistics().recorded == 1000
    assert [json.loads(e.payload)["data"]["a"] for e in read(tmp_path / "rec")] == list(range(1000))


async def test_rest_answers_are_recorded_beside_the_frames(tmp_path: Path) -> None:
    recorder = Recorder(RecorderSettings(directory=str(tmp_path / "rec")))
    calls = []

    async def fake_get(
        base_url: str, path: str, params: object = None, **kw: object
    ) -> RestResponse:
        calls.append((base_url, path, params, kw))
        status = 429 if path == "/busy" else 200
        return RestResponse(status, {}, b'{"lastUpdateId":42,"bids":[],"asks":[]}')

    get = recorder.recording(fake_get)
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.serve)
        answer = await get("http://x/api", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 1000},
                           time_limit=5.0)  # fmt: skip
        assert answer.status == 200
        assert (await get("http://x/api", "/busy")).status == 429  # not data: not recorded
        recorder.offer(batch("spot-0", "btcusdt@trade", range(3)))
        await poll_until(lambda: recorder.statistics().recorded >= 4, timeout=10,
                         what="the answer and the frames")  # fmt: skip
        nursery.cancel_scope.cancel()
    assert calls[0] == ("http://x/api", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 1000},
                        {"time_limit": 5.0})  # fmt: skip
    rest, *frames = list(read(tmp_path / "rec"))
    assert (rest.kind, rest.connection, rest.stream) == (
        "rest",
        "http://x/api",
        "/api/v3/depth?symbol=BTCUSDT&limit=1000",
    )
    assert json.loads(rest.payload)["lastUpdateId"] == 42
    assert [f.kind for f in frames] == ["ws"] * 3


async def test_a_full_queue_drops_and_counts_and_never_blocks(tmp_path: Path) -> None:
    recorder = Recorder(RecorderSettings(directory=str(tmp_path / "rec"), queue_batches=2))
    # Not serving: nothing drains the queue; offering still returns at once.
    for i in range(5):
        recorder.offer(batch("c", "s", range(i * 10, i * 10 + 10)))
    st = recorder.statistics()
    assert (st.queued, st.dropped, st.recorded) == (2, 30, 0)
    metrics = {m.name: m for m in recorder.metrics()}
    samples = {s.labels["result"]: s.value for s in metrics["marketd_recorder_frames"].samples
               if s.name.endswith("_total")}  # fmt: skip
    assert samples == {"recorded": 0, "dropped": 30, "failed": 0}


async def test_a_failed_write_is_counted_and_the_next_one_recovers(tmp_path: Path) -> None:
    recorder = Recorder(RecorderSettings(directory=str(tmp_path / "rec")))
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.serve)
        writer = recorder._writer
        assert writer is not None
        real_flush = writer.flush
        failures = [OSError(28, "No space left on device")]

        def flaky_flush() -> None:
            if failures:
                raise failures.pop()
            real_flush()

        writer.flush = flaky_flush  # type: ignore[method-assign]
        recorder.offer(batch("c", "s", range(0, 10)))
        await poll_until(lambda: recorder.statistics().failed >= 10, timeout=10,
                         what="a failed write")  # fmt: skip
        assert not recorder.ready()
        recorder.offer(batch("c", "s", range(10, 15)))
        await poll_until(lambda: recorder.statistics().recorded >= 5, timeout=10,
                         what="the next write")  # fmt: skip
        assert recorder.ready()
        nursery.cancel_scope.cancel()
    st = recorder.statistics()
    assert (st.failed, st.recorded) == (10, 5)


@pytest.mark.slow
def test_marketd_run_records_every_frame_its_feeds_receive(tmp_path: Path) -> None:
    recording = tmp_path / "recording"
    with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "9", "--rate", "300") as fx:
        config = {
            "binance": binance_config(fx),
            "subscriptions": [
                {"market": "usdm", "symbols": ["BTCUSDT", "ETHUSDT"], "channels": ["aggTrade"],
                 "streams": ["!miniTicker@arr"]},
                {"market": "spot", "symbols": ["BTCUSDT"], "channels": ["trade", "depth@100ms"]},
            ],
            "recorder": {"enabled": True, "directory": str(recording)},
            "log": {"format": "json"},
        }  # fmt: skip
        with DaemonProcess(tmp_path, config) as daemon:
            daemon.wait_ready()
            _, body = daemon.ready()
            assert "recorder" in body["components"]
            poll_until_blocking(
                lambda: metric_value(daemon.metrics(), "marketd_recorder_frames_total",
                                     result="recorded") >= 300,
                timeout=30, what="300 frames recorded",
            )  # fmt: skip
            text = daemon.metrics()
            recorded = metric_value(text, "marketd_recorder_frames_total", result="recorded")
            assert metric_value(text, "marketd_recorder_frames_total", result="dropped") == 0
            assert daemon.stop() == 0
    entries = list(read(recording))
    # What was recorded while it ran, and what the drain wrote after.
    assert len(entries) >= recorded >= 300
    streams = {e.stream for e in entries}
    assert {"btcusdt@aggTrade", "ethusdt@aggTrade", "!miniTicker@arr", "btcusdt@trade"} <= streams
    # Every frame whole, as the exchange sent it: its stream inside, and per stream the
    # trade ids consecutive (nothing dropped, nothing out of order).
    ids: dict[str, list[int]] = defaultdict(list)
    last_ns: dict[str, int] = {}
    # The book's REST snapshots: the first is the one it synced from, beside the diffs it was
    # synced with; an audit or a deepening (every audit_interval_s, so only on a slow run) may
    # have recorded more of the same book.
    snapshots = [e for e in entries if e.kind == "rest"]
    assert snapshots, "no REST snapshot recorded"
    assert all(e.stream.startswith("/api/v3/depth?symbol=BTCUSDT&limit=") for e in snapshots)
    snapshot = snapshots[0]
    synced_at = json.loads(snapshot.payload)["lastUpdateId"]
    diffs = [json.loads(e.payload)["data"] for e in entries if e.stream == "btcusdt@depth@100ms"]
    # One recorded diff bridges the snapshot, as the book's sync needed: a replay can too.
    assert any(d["U"] <= synced_at + 1 <= d["u"] for d in diffs)
    # Each connection's entries run from its connected marker to its closed one (the stop:
    # marketd closed it, with 1000 and no reply awaited).
    connections = {e.connection for e in entries if e.kind == "ws"}
    assert {c.split("-")[0] for c in connections} == {"spot", "usdm"}
    for connection in connections:
        mine = [e for e in entries if e.connection == connection]
        assert payload_marker(mine[0].payload) == {"marketd": "connected", "url": ANY}
        assert payload_marker(mine[-1].payload) == {
            "marketd": "closed", "code": 1000, "reason": None, "by": "marketd"
        }  # fmt: skip
        assert all(payload_marker(e.payload) is None for e in mine[1:-1])
    for e in entries:
        if e.kind == "rest" or e.stream == "":
            continue
        body = json.loads(e.payload)
        assert body["stream"] == e.stream
        if e.stream.endswith("@aggTrade"):
            ids[e.stream].append(body["data"]["a"])
        elif e.stream.endswith("@trade"):
            ids[e.stream].append(body["data"]["t"])
        assert e.received_ns >= last_ns.get(e.connection, 0)
        last_ns[e.connection] = e.received_ns
    for stream, got in ids.items():
        assert got == list(range(got[0], got[0] + len(got))), stream
