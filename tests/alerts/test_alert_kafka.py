"""With Kafka, each alert lands on the alerts topic exactly once across a detector crash.

A detector process consumes a raw topic (3 partitions) in small polls, one transaction per
poll (alerts + offsets); it is SIGKILLed while it works through the input and started
again. Reading ``alerts`` with ``isolation_level=read_committed`` then gives exactly the
alerts an uninterrupted detector raises over the same ticks (computed with the pure
detector), each id once.
"""

from __future__ import annotations

import asyncio
import functools
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import trio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kit.wait import poll_until_blocking

from marketd.alerts.detector import Detector
from marketd.alerts.encoding import decode_alert, decode_outcome
from marketd.alerts.model import Outcome
from marketd.testing.devkafka import KafkaBroker, create_topics
from marketd.v1.market_data_pb2 import MARKET_USDM, MarketEvent

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PROC = Path(__file__).with_name("detector_proc.py")
T = TypeVar("T")
SYMBOLS = [f"SYM{i}USDT" for i in range(6)]
SECONDS = 400


def price_paths(seed: int) -> dict[str, list[tuple[int, str]]]:
    """1 tick/s random walks with a jump now and then (both ways), exact 4-decimal prices."""
    rng = random.Random(seed)
    start_ms = (time.time_ns() // 1_000_000) - 3_600_000
    paths = {}
    for symbol in SYMBOLS:
        ticks = 10_000 * rng.randint(10, 100)  # price * 10**4
        path = []
        for s in range(SECONDS):
            ticks += round(ticks * rng.gauss(0, 0.001))
            if rng.random() < 0.02:
                ticks += round(ticks * rng.choice([-1, 1]) * rng.uniform(0.02, 0.05))
            path.append((start_ms + s * 1000, f"{ticks / 10_000:.4f}"))
        paths[symbol] = path
    return paths


def uninterrupted(paths: dict[str, list[tuple[int, str]]]) -> tuple[list[str], list[Outcome]]:
    """The alert ids and outcomes an uninterrupted detector finds over ``paths``."""
    sys.path.insert(0, str(PROC.parent))
    from detector_proc import RULES

    det = Detector(RULES)
    ids = []
    for symbol, path in paths.items():
        for t, p in path:
            ids.extend(a.id for a in det.observe("usdm", symbol, t, p))
    return ids, det.take_outcomes()


def produce(bootstrap: str, topic: str, records: list[tuple[str, int, str]]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            event = MarketEvent(market=MARKET_USDM)
            futures = []
            for symbol, t, p in records:
                event.symbol, event.event_time_ms = symbol, t
                event.mini_ticker.close_price = p
                futures.append(
                    await producer.send(
                        topic,
                        event.SerializeToString(),
                        key=symbol.encode(),
                        timestamp_ms=t,
                        headers=[("type", b"24hrMiniTicker")],
                    )
                )
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def read_alert_ids(bootstrap: str, topic: str, isolation: str, wait_s: float) -> list[str]:
    """Every alert id on ``topic`` now (up to the end offsets), in partition order."""
    return [a.id for a in read_values(bootstrap, topic, isolation, wait_s, decode_alert)]


def read_values(
    bootstrap: str, topic: str, isolation: str, wait_s: float, decode: Callable[[bytes], T]
) -> list[T]:
    """Every value on ``topic`` now (up to the end offsets), decoded, in partition order."""

    async def run() -> list[T]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            isolation_level=isolation,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        out: list[T] = []
        try:
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=300)
                if not batch and consumer.assignment():
                    ends = await consumer.end_offsets(list(consumer.assignment()))
                    positions = [await consumer.position(tp) for tp in ends]
                    if all(p >= e for p, e in zip(positions, ends.values(), strict=True)):
                        break
                for messages in batch.values():
                    out.extend(decode(m.value) for m in messages)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def start_detector(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(PROC), *args],
            stdout=subprocess.PIPE,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
    stdout = proc.stdout
    assert stdout is not None
    line = stdout.readline()
    assert line.strip() == b"ready", log.read_text()

    def copy() -> None:  # keep the pipe drained and the log readable
        with stdout, log.open("ab") as out:
            for text in stdout:
                out.write(text)
                out.flush()

    threading.Thread(target=copy, daemon=True).start()
    return proc


async def test_each_alert_exactly_once_across_a_detector_kill(
    kafka_broker: KafkaBroker, kafka_topic, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    raw, alerts = kafka_topic("raw"), kafka_topic("alerts")
    # The outcomes topic too: auto-created on the first transaction, a fresh topic's
    # partitions can have no leader yet (NotLeaderForPartition) and fail that transaction.
    await trio.to_thread.run_sync(create_topics, bootstrap, [raw, alerts, f"{alerts}.outcomes"], 3)
    paths = price_paths(seed=11)
    everything = uninterrupted(paths)
    expected = set(everything[0])
    assert len(expected) >= 20
    records = [(s, t, p) for i in range(SECONDS) for s in SYMBOLS for (t, p) in [paths[s][i]]]
    await trio.to_thread.run_sync(produce, bootstrap, raw, records)

    args = [bootstrap, raw, alerts, f"g-{raw}", f"tx-{raw}", str(tmp_path), "8"]

    def committed() -> list[str]:  # blocking: polled in a worker thread
        return read_alert_ids(bootstrap, alerts, "read_committed", 5.0)

    log = tmp_path / "detector.log"
    with trio.fail_after(150):
        proc = await trio.to_thread.run_sync(start_detector, args, log)
        try:
            # Kill it while it works: some alerts committed, not all.
            await trio.to_thread.run_sync(
                functools.partial(
                    poll_until_blocking,
                    lambda: len(set(committed())) >= len(expected) // 3,
                    timeout=60,
                    what="a third of the alerts committed",
                    interval=0.2,
                )
            )
            proc.send_signal(signal.SIGKILL)
            await trio.to_thread.run_sync(proc.wait)
            at_kill = await trio.to_thread.run_sync(
                read_alert_ids, bootstrap, alerts, "read_committed", 5.0
            )
            assert len(set(at_kill)) < len(expected), "killed too late to test anything"

            proc = await trio.to_thread.run_sync(start_detector, args, log)
            await trio.to_thread.run_sync(
                functools.partial(
                    poll_until_blocking,
                    lambda: len(committed()) >= len(expected),
                    timeout=60,
                    what="every alert committed after the restart",
                    interval=0.5,
                )
            )
            await trio.sleep(2)  # anything more that would come (a duplicate) comes now
        finally:
            proc.kill()
            await trio.to_thread.run_sync(proc.wait)
    final = await trio.to_thread.run_sync(read_alert_ids, bootstrap, alerts, "read_committed", 10.0)
    counts = Counter(final)
    assert [i for i, n in counts.items() if n > 1] == []
    assert (len(expected - set(final)), len(set(final) - expected)) == (0, 0)
    assert 0 < len(set(at_kill)) < len(expected)
    # Outcomes (+1/+5 min of the 400 s) of the alerts raised live, each once and exact; the
    # pending outcomes of the killed run are lost (a restart forgets them).
    outcomes = await trio.to_thread.run_sync(
        read_values, bootstrap, f"{alerts}.outcomes", "read_committed", 10.0, decode_outcome
    )
    keys = Counter((o.alert_id, o.after_s) for o in outcomes)
    assert [k for k, n in keys.items() if n > 1] == []
    right = {(o.alert_id, o.after_s): o for o in everything[1]}
    assert len(outcomes) >= len(expected) // 3
    assert [o for o in outcomes if right.get((o.alert_id, o.after_s)) != o] == []
