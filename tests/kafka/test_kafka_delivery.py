"""The publisher's pure parts: error classes, what to wait for, rate-limited logging."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    TopicAuthorizationFailedError,
)

from marketd.config.settings import KafkaSettings
from marketd.data.records import Market, Record
from marketd.errors import ConfigError, RetryableError, leaves
from marketd.kafka.delivery import (
    Chunk,
    Failure,
    KafkaDeliveryError,
    classify,
    producer_kwargs,
    sort_out,
)
from marketd.obs.logs import RateLimitedLog


@pytest.mark.parametrize(
    ("exc", "at_send", "expected"),
    [
        (KafkaConnectionError(), False, Failure.RETRY),
        (KafkaTimeoutError(), True, Failure.RETRY),
        (NotLeaderForPartitionError(), False, Failure.RETRY),
        (OutOfOrderSequenceNumber(), False, Failure.RETRY),
        (ConnectionResetError(), False, Failure.RETRY),
        (MessageSizeTooLargeError(), True, Failure.REJECT),  # one record, client-side
        (MessageSizeTooLargeError(), False, Failure.FATAL),  # a whole batch, broker limit
        (TopicAuthorizationFailedError(), False, Failure.FATAL),
        (TypeError("bad headers"), True, Failure.FATAL),
    ],
)
def test_classify(exc: BaseException, at_send: bool, expected: Failure) -> None:
    assert classify(exc, at_send=at_send) is expected


def test_delivery_error_is_restarted_by_the_supervisor() -> None:
    assert issubclass(KafkaDeliveryError, RetryableError)


def record(key: str, n: int, topic: str = "t") -> Record:
    return Record(topic, key.encode(), b"v", (), 1000 + n, Market.SPOT, "trade", key, n)


def test_sort_out_keeps_the_original_order_of_what_was_not_acked() -> None:
    loop = asyncio.new_event_loop()
    try:
        records = [record("AB"[i % 2], i, "tu"[i % 3 == 0]) for i in range(10)]
        acked, failed, pending = (loop.create_future() for _ in range(3))
        acked.set_result(None)
        failed.set_exception(KafkaConnectionError())
        chunk = Chunk(records, 0.0)
        chunk.batches = [(acked, "t", [1, 5]), (failed, "u", [0, 3]), (pending, "t", [2, 7])]
        chunk.handed = 6
        chunk.error = KafkaTimeoutError()  # a send failed: charged to the first unsent (4)
        received, rest = sort_out(chunk)
        assert received == {"t": [1001, 1005]}
        assert [(r.seq, type(e).__name__, at_send) for r, e, at_send in rest] == [
            (0, "KafkaConnectionError", False),
            (2, "NoneType", False),
            (3, "KafkaConnectionError", False),
            (4, "KafkaTimeoutError", True),
            (6, "NoneType", False),
            (7, "NoneType", False),
            (8, "NoneType", False),
            (9, "NoneType", False),
        ]
        chunk.error, chunk.error_at = MessageSizeTooLargeError(), 8  # a record too large
        assert [r.seq for r, e, _ in sort_out(chunk)[1] if e is not None] == [0, 3, 8]
        chunk.error, chunk.error_at = None, None  # cancelled mid-way: resent, no failure
        assert [r.seq for r, e, _ in sort_out(chunk)[1] if e is not None] == [0, 3]
        pending.cancel()
    finally:
        loop.close()


def test_leaves_flattens_nested_groups() -> None:
    boom = ValueError("x")
    group = BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [boom])])
    assert leaves(group) == [boom]


def test_rate_limited_log_counts_what_it_holds_back() -> None:
    limiter = RateLimitedLog(interval=3600)
    assert limiter.ready() == 0
    assert limiter.ready() is None
    assert limiter.ready() is None
    limiter._last -= 3600
    assert limiter.ready() == 2


def test_producer_kwargs() -> None:
    s = KafkaSettings(
        bootstrap_servers="k:9092",
        compression="gzip",
        sasl_mechanism="PLAIN",
        security_protocol="SASL_PLAINTEXT",
        sasl_username="u",
        sasl_password="p",
    )
    kw = producer_kwargs(s)
    assert kw["acks"] == "all"
    assert kw["enable_idempotence"] is True
    assert kw["compression_type"] == "gzip"
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == (
        "PLAIN",
        "u",
        "p",
    )
    assert producer_kwargs(KafkaSettings(bootstrap_servers="k:9092"))["compression_type"] is None


def test_missing_codec_library_is_a_config_error() -> None:
    from aiokafka import codec

    if codec.has_lz4():
        pytest.skip("lz4 is installed here")
    with pytest.raises(ConfigError, match=r"kafka\.compression"):
        producer_kwargs(KafkaSettings(bootstrap_servers="k:9092", compression="lz4"))
