"""A real daemon exports its spans to a real OTLP/HTTP receiver; Kafka records carry the
W3C trace context of the batch that published them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from otlp_receiver import OtlpReceiver

from marketd.testing.devkafka import ConsumedRecord


def run_demo(env: dict[str, str], duration: float = 3.0) -> subprocess.CompletedProcess[str]:
    args = ["--symbols", "2", "--duration", str(duration), "--listen", "127.0.0.1:0"]
    return subprocess.run(
        [sys.executable, "-m", "marketd", "demo", *args],
        env={**os.environ, "MARKETD_LOG__FORMAT": "json", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.slow
def test_demo_exports_feed_spans_with_parentage(otlp: OtlpReceiver) -> None:
    done = run_demo({"MARKETD_TELEMETRY__OTLP_ENDPOINT": otlp.url})
    assert done.returncode == 0, done.stderr[-3000:]
    sessions = {s.span_id: s for s in otlp.named("feed.session")}
    connections = {s.attributes["connection"] for s in sessions.values()}
    assert {"spot-0", "usdm-market-0"} <= connections, connections
    for child in ("feed.connect", "feed.subscribe"):
        spans = otlp.named(child)
        assert spans, child
        for sp in spans:
            parent = sessions[sp.parent_span_id]  # each is a child of a session span
            assert sp.trace_id == parent.trace_id
    assert {s.service for s in otlp.spans} == {"marketd"}
    assert all(s.parent_span_id == "" for s in sessions.values())  # no span around feeds
    # Batch-level spans of the other stages: one per batch / snapshot, never per message.
    normalize = otlp.named("pipeline.normalize")
    assert normalize
    assert all(int(str(sp.attributes["frames"])) >= 1 for sp in normalize)
    assert {sp.attributes["connection"] for sp in normalize} <= connections
    resyncs = otlp.named("book.resync")
    assert {sp.attributes["status"] for sp in resyncs} == {"ok"}
    assert {sp.attributes["symbol"] for sp in resyncs} == {"BTCUSDT", "ETHUSDT"}


@pytest.mark.slow
@pytest.mark.kafka
async def test_kafka_records_carry_the_trace_context_of_their_publish_span(
    otlp: OtlpReceiver,
    kafka_broker: Any,
    kafka_topic: Callable[[str], str],
    consume_kafka: Any,
    tmp_path: Path,
) -> None:
    import trio

    raw, depth = kafka_topic("raw"), kafka_topic("depth")
    env = {
        "MARKETD_TELEMETRY__OTLP_ENDPOINT": otlp.url,
        "MARKETD_KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "MARKETD_KAFKA__TOPICS__RAW": raw,
        "MARKETD_KAFKA__TOPICS__DEPTH": depth,
        "MARKETD_SPOOL__DIRECTORY": str(tmp_path / "spool"),
    }
    done = await trio.to_thread.run_sync(run_demo, env, 4.0)
    assert done.returncode == 0, done.stderr[-3000:]
    records: list[ConsumedRecord] = await consume_kafka([raw, depth])
    assert records
    publish = {(s.trace_id, s.span_id): s for s in otlp.named("kafka.publish")}
    assert publish
    carried: Counter[tuple[str, str]] = Counter()
    for record in records:
        headers = dict(record.headers)
        _, trace_id, span_id, _flags = headers["traceparent"].decode().split("-")
        carried[trace_id, span_id] += 1
    # Every record names a real publish span, which counted it among its acked records.
    for key, n in carried.items():
        assert key in publish, key
        assert publish[key].attributes["acked"] >= n
    assert sum(s.attributes["acked"] for s in publish.values()) >= len(records)
