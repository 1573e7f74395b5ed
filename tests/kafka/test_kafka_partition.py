"""Partition choice (as Kafka's default partitioner) and the latency histogram in bulk.

On a real broker: ``test_kafka_sink.test_same_key_same_partition_and_order_across_chunks``."""

from __future__ import annotations

import itertools
import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import Histogram

from marketd.kafka.delivery import PUBLISH_LATENCY, observe_latencies
from marketd.kafka.partition import partition_for

# murmur2 of the Java client (org.apache.kafka.common.utils.UtilsTest#testMurmur2), as
# signed 32-bit ints: the default partitioner uses (murmur2(key) & 0x7fffffff) % n.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "java_hash"), JAVA_MURMUR2.items())
@pytest.mark.parametrize("partitions", [1, 3, 7, 12, 100])
def test_partition_matches_the_java_default_partitioner(
    key: bytes, java_hash: int, partitions: int
) -> None:
    assert partition_for(key, partitions) == (java_hash & 0x7FFFFFFF) % partitions


def test_partition_matches_aiokafkas_default_partitioner() -> None:
    rng = random.Random(7)
    keys = [b"", b"BTCUSDT", b"ETHUSDT", "ÄÖ€".encode()]
    keys += [rng.randbytes(rng.randrange(1, 40)) for _ in range(500)]
    for key, n in itertools.product(keys, (1, 2, 3, 6, 10, 64)):
        partitions = list(range(n))
        assert partition_for(key, n) == DefaultPartitioner()(key, partitions, partitions)


def _buckets(hist: Histogram, topic: str | None = None) -> tuple[list[float], float]:
    samples = {
        (s.name, s.labels.get("le")): s.value
        for metric in hist.collect()
        for s in metric.samples
        if s.name.endswith(("_bucket", "_sum")) and s.labels.get("topic") == topic
    }
    buckets = [v for (name, _), v in samples.items() if name.endswith("_bucket")]
    return buckets, next(v for (name, _), v in samples.items() if name.endswith("_sum"))


def test_observe_latencies_equals_one_observe_per_record() -> None:
    histogram = PUBLISH_LATENCY.labels(topic="t.latency")
    bounds = histogram._upper_bounds[:-1]
    reference = Histogram("reference_seconds", "same buckets", buckets=bounds, registry=None)
    now = 1_700_000_000_000_000_000
    lat_ns = [0, 1, 999_999, 1_000_000, 1_000_001, 2_500_000, 59_999_999_999, 60_000_000_000]
    lat_ns += [60_000_000_001, 120_000_000_000, -5_000, -1]  # received "after" now: 0
    lat_ns += random.Random(1).choices(range(0, 3_000_000_000), k=2000)
    received = [now - lat for lat in lat_ns]
    for r in received:
        reference.observe(max(0, now - r) / 1e9)
    buckets0, sum0 = _buckets(PUBLISH_LATENCY, "t.latency")
    observe_latencies(now, received, "t.latency")
    observe_latencies(now, [], "t.latency")
    observe_latencies(now, received[:5], "t.other")  # another topic's series
    buckets1, sum1 = _buckets(PUBLISH_LATENCY, "t.latency")
    expected_buckets, expected_sum = _buckets(reference)
    assert [b - a for a, b in zip(buckets0, buckets1, strict=True)] == expected_buckets
    assert sum1 - sum0 == pytest.approx(expected_sum, rel=1e-9)
