"""How the exactly-once publisher sorts what the spool hands on, without a broker: what
Kafka committed is settled unsent, re-delivered copies wait for the commit, and a
committed position the spool does not recognise skips nothing."""

from __future__ import annotations

import time

import pytest
import structlog

from marketd.config.settings import KafkaSettings
from marketd.data.records import Market, Record
from marketd.kafka.delivery import KafkaDeliveryError
from marketd.kafka.exactly_once import ExactlyOncePublisher, Progress, fingerprint
from marketd.spool.stage import SpooledRecords


def record(n: int) -> Record:
    return Record(
        topic="t",
        key=b"BTCUSDT",
        value=f"v{n}".encode(),
        headers=(),
        received_ns=time.time_ns(),
        market=Market.SPOT,
        kind="trade",
        symbol="BTCUSDT",
        seq=n,
    )


class FakeSpool:
    """The spool stage's side of the publisher: records by seq, an ack cursor."""

    def __init__(self, records: dict[int, Record], acked: int = 0) -> None:
        self.with_seqs = False
        self.records, self.acked = records, acked
        self.settled: list[Record] = []

    def identity(self) -> str:
        return "0123456789abcdef"

    def acked_seq(self) -> int:
        return self.acked

    def record_at(self, seq: int) -> Record | None:
        return self.records.get(seq)

    def on_settled(self, records: list[Record]) -> None:
        self.settled.extend(records)


def batch(spool: FakeSpool, seqs: list[int]) -> SpooledRecords:
    return SpooledRecords([spool.records[s] for s in seqs], seqs)


def publisher(spool: FakeSpool, progress: Progress | None) -> ExactlyOncePublisher:
    pub = ExactlyOncePublisher(
        KafkaSettings(bootstrap_servers="127.0.0.1:9", delivery="exactly_once"), spool
    )
    pub._progress = progress  # as a resync read it
    return pub


def test_the_stage_is_asked_for_seqs() -> None:
    spool = FakeSpool({})
    publisher(spool, None)
    assert spool.with_seqs


def test_committed_records_are_settled_not_sent() -> None:
    spool = FakeSpool({n: record(n) for n in range(1, 11)})
    pub = publisher(spool, Progress(6, fingerprint(spool.records[6])))
    pub._take(batch(spool, [1, 2, 3, 4]))
    pub._take(batch(spool, [5, 6, 7, 8, 9, 10]))
    assert spool.settled == [spool.records[n] for n in range(1, 7)]
    assert [s for s, _ in pub._pending] == [7, 8, 9, 10]
    assert pub._skipped == 6


def test_a_position_the_spool_does_not_hold_skips_nothing() -> None:
    spool = FakeSpool({n: record(n) for n in range(1, 6)})
    # Committed by another spool (or before this one lost its tail): seq 9 is unknown here.
    pub = publisher(spool, Progress(9, "00000000.1"))
    with structlog.testing.capture_logs() as logs:
        pub._take(batch(spool, [1, 2, 3, 4, 5]))
    assert spool.settled == []
    assert [s for s, _ in pub._pending] == [1, 2, 3, 4, 5]
    assert any("does not match the spool" in entry["event"] for entry in logs)
    # A different record at the committed seq: the same.
    spool = FakeSpool({n: record(n) for n in range(1, 6)})
    pub = publisher(spool, Progress(3, fingerprint(record(3))))  # another receipt time
    pub._take(batch(spool, [1, 2, 3, 4, 5]))
    assert spool.settled == []
    assert len(pub._pending) == 5


def test_a_position_below_the_spool_ack_needs_no_check() -> None:
    spool = FakeSpool({n: record(n) for n in range(4, 8)}, acked=5)
    pub = publisher(spool, Progress(5, "gone from the spool"))
    pub._take(batch(spool, [6, 7]))
    assert spool.settled == []
    assert [s for s, _ in pub._pending] == [6, 7]
    assert pub._skip_upto == 5


def test_copies_handed_on_again_are_settled_once_committed() -> None:
    spool = FakeSpool({n: record(n) for n in range(1, 8)})
    pub = publisher(spool, None)
    pub._take(batch(spool, [1, 2, 3, 4]))
    # The spool stage restarted: it hands on 3 and 4 again (new objects), then 5..7.
    copies = {n: record(n) for n in (3, 4)}
    pub._take(SpooledRecords([copies[3], copies[4]], [3, 4]))
    pub._take(batch(spool, [5, 6, 7]))
    assert [s for s, _ in pub._pending] == [1, 2, 3, 4, 5, 6, 7]  # each once
    assert spool.settled == []
    pub._settle_upto(4)  # a transaction up to seq 4 committed
    assert spool.settled == [*(spool.records[n] for n in range(1, 5)), copies[3], copies[4]]
    assert [s for s, _ in pub._pending] == [5, 6, 7]


def test_input_without_seqs_is_refused() -> None:
    pub = publisher(FakeSpool({}), None)
    with pytest.raises(KafkaDeliveryError, match="spool"):
        pub._take([record(1)])
