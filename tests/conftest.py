"""Shared fixtures: a real Apache Kafka broker and a way to read back what reached it.

``kafka_broker`` is one broker for the whole session, started only when a test asks for
it (such tests carry ``@pytest.mark.kafka``). Do not stop it: a test that stops, kills or
restarts a broker uses ``own_kafka_broker``, a private one. Use unique topic names
(``kafka_topic``) so tests sharing the session broker never see each other's records.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest
import trio

from marketd.testing.devkafka import ConsumedRecord, KafkaBroker, read_topics, running_broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One single-node KRaft broker for the session (fetched into the cache on first use)."""
    with running_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture
def own_kafka_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A private broker, created (config written, storage formatted) but NOT started:
    call ``broker.start()`` (in a thread from trio) when the test wants it up."""
    broker = KafkaBroker.create(tmp_path / "kafka")
    try:
        yield broker
    finally:
        broker.stop()


_topic_seq = itertools.count()


@pytest.fixture
def kafka_topic() -> Callable[[str], str]:
    """``kafka_topic("raw")`` → a topic name unique to this test run."""
    run = uuid.uuid4().hex[:8]
    return lambda name="t": f"test.{name}.{run}.{next(_topic_seq)}"


class Consume(Protocol):
    def __call__(
        self,
        topics: Sequence[str],
        *,
        until: Callable[[list[ConsumedRecord]], bool] | None = None,
        decode: Callable[[bytes], object] | None = None,
        wait_s: float = 30.0,
        bootstrap: str | None = None,
    ) -> Awaitable[list[ConsumedRecord]]: ...


@pytest.fixture
def consume_kafka(request: pytest.FixtureRequest) -> Consume:
    """``await consume_kafka([topic], until=lambda rs: len(rs) >= n, decode=Trade.FromString)``

    Reads ``topics`` from the beginning with a fresh consumer (no group) in a worker thread,
    until ``until(records)`` holds or, without ``until``, up to the end offsets at the
    start; returns what it has after ``wait_s`` either way, so the test asserts on content.
    ``record.decoded`` is ``decode(record.value)``; ``committed``: read_committed.
    ``bootstrap`` reads another broker
    (the session broker is only started when no ``bootstrap`` is given).
    """

    async def consume(
        topics: Sequence[str],
        *,
        until: Callable[[list[ConsumedRecord]], bool] | None = None,
        decode: Callable[[bytes], object] | None = None,
        wait_s: float = 30.0,
        bootstrap: str | None = None,
        committed: bool = False,
    ) -> list[ConsumedRecord]:
        if bootstrap is None:
            bootstrap = request.getfixturevalue("kafka_broker").bootstrap
        read = functools.partial(
            read_topics,
            bootstrap,
            list(topics),
            until=until,
            decode=decode,
            timeout=wait_s,
            committed=committed,
        )
        return await trio.to_thread.run_sync(read)

    return consume
