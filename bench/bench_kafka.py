"""Benchmark: the Kafka publisher alone, flat out, into a real broker.

Publishes N ~150-byte records (keyed by ~20 symbols, over 2 topics of 3 partitions) in
batches of 500 through :class:`marketd.kafka.sink.KafkaPublisher` and reports, per run,
the rate of records acknowledged by Kafka (acks=all, idempotent), the CPU time this
process spent per record (``time.process_time()``, producer connected to all acked), and
the publish latency (received_ns → ack, p50/p99 from the publisher's own histogram) — as a
table and one JSON line per run. Figures only: nothing here asserts on timings.

    python bench/bench_kafka.py [--records 300000] [--batch 500] [--runs 3]
    python bench/bench_kafka.py --bootstrap 127.0.0.1:9092   # an already running broker
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

import trio
from prometheus_client import REGISTRY, generate_latest

from marketd.config.settings import KafkaSettings
from marketd.data.records import Market, Record
from marketd.kafka.sink import KafkaPublisher
from marketd.testing.devkafka import create_topics, running_broker
from marketd.testing.processes import histogram_quantile

LATENCY = "marketd_publish_latency_seconds"


def make_batches(
    topics: list[str], n: int, batch: int, keys: int, value_bytes: int
) -> list[list[Record]]:
    symbols = [f"SYM{i:02d}USDT" for i in range(keys)]
    seqs = [0] * (len(topics) * keys)
    out: list[list[Record]] = []
    for start in range(0, n, batch):
        chunk = []
        for i in range(start, min(n, start + batch)):
            t, k = i % len(topics), (i // len(topics)) % keys
            seq = seqs[t * keys + k]
            seqs[t * keys + k] = seq + 1
            head = f"{symbols[k]}:{seq}:".encode()
            chunk.append(
                Record(
                    topic=topics[t],
                    key=symbols[k].encode(),
                    value=head + b"x" * max(0, value_bytes - len(head)),
                    headers=(("type", b"trade"),),
                    received_ns=0,  # set when the batch is offered
                    market=Market.SPOT,
                    kind="trade",
                    symbol=symbols[k],
                    seq=seq,
                )
            )
        out.append(chunk)
    return out


def stamp(batch: list[Record]) -> list[Record]:
    """The batch as just received (received_ns = now): the latency is the publisher's."""
    now = time.time_ns()
    return [
        Record(r.topic, r.key, r.value, r.headers, now, r.market, r.kind, r.symbol, r.seq)
        for r in batch
    ]


async def publish(bootstrap: str, batches: list[list[Record]], capacity: int) -> dict[str, Any]:
    publisher = KafkaPublisher(KafkaSettings(bootstrap_servers=bootstrap))
    send, recv = trio.open_memory_channel[list[Record]](capacity)
    before = generate_latest(REGISTRY).decode()
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.serve, recv)
        cpu0, t0 = time.process_time(), time.perf_counter()
        stamping = 0.0
        async with send:
            for batch in batches:
                s0 = time.process_time()
                stamped = stamp(batch)
                stamping += time.process_time() - s0
                await send.send(stamped)
    # serve() returned: input ended and every record is acknowledged.
    cpu1, t1 = time.process_time(), time.perf_counter()
    after = generate_latest(REGISTRY).decode()
    st = publisher.statistics()
    n = sum(map(len, batches))
    assert st.acknowledged == n, st
    wall = t1 - t0
    return {
        "records": n,
        "wall_s": round(wall, 3),
        "acked_per_s": round(n / wall),
        # The process's CPU time minus the feeder's stamp() (reported on its own).
        "cpu_us_per_record": round((cpu1 - cpu0 - stamping) / n * 1e6, 2),
        "stamp_us_per_record": round(stamping / n * 1e6, 2),
        "cpu_cores": round((cpu1 - cpu0) / wall, 2),
        "latency_p50_ms": round(histogram_quantile(after, LATENCY, 0.5, before) * 1e3, 2),
        "latency_p99_ms": round(histogram_quantile(after, LATENCY, 0.99, before) * 1e3, 2),
        "failed_attempts": st.failed_attempts,
    }


def run(bootstrap: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    topics = [f"bench.{name}.{uuid.uuid4().hex[:8]}" for name in ("raw", "depth")]
    create_topics(bootstrap, topics, partitions=args.partitions)
    batches = make_batches(topics, args.records, args.batch, args.keys, args.value_bytes)
    warmup = make_batches(topics, min(args.records, 20_000), args.batch, args.keys, 150)
    trio.run(publish, bootstrap, warmup, args.capacity)
    results = []
    for i in range(args.runs):
        result = trio.run(publish, bootstrap, batches, args.capacity)
        results.append({"run": i + 1, **result})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=500, help="records per input batch")
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--value-bytes", type=int, default=150)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--capacity", type=int, default=16, help="input channel, batches")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--label", default="", help="a name for this build in the output")
    parser.add_argument("--bootstrap", default="", help="use this broker instead of a new one")
    args = parser.parse_args(argv)
    if args.bootstrap:
        results = run(args.bootstrap, args)
    else:
        with running_broker() as broker:
            results = run(broker.bootstrap, args)
    cols = [
        ("run", "run"),
        ("records", "records"),
        ("acked_per_s", "acked rec/s"),
        ("cpu_us_per_record", "CPU µs/rec"),
        ("cpu_cores", "CPU cores"),
        ("latency_p50_ms", "p50 ms"),
        ("latency_p99_ms", "p99 ms"),
    ]
    print("| " + " | ".join(title for _, title in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(str(r[key]) for key, _ in cols) + " |")
    for r in results:
        print(json.dumps({"bench": "kafka", "label": args.label, **r}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
