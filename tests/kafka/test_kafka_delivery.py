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

from marketd.config import KafkaSettings
from marketd.errors import ConfigError, RetryableError
from marketd.kafka_delivery import (
    Failure,
    KafkaDeliveryError,
    RateLimitedLog,
    classify,
    last_per_key,
    leaves,
    producer_kwargs,
)
from marketd.records import Market, Record


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


def record(key: str, topic: str = "t") -> Record:
    return Record(topic, key.encode(), b"v", (), 0, Market.SPOT, "trade", key)


def test_last_per_key_waits_for_the_last_future_of_each_key() -> None:
    loop = asyncio.new_event_loop()
    try:
        records = [record("A"), record("B"), record("A"), record("A", "u"), record("B")]
        futures = [loop.create_future() for _ in records]
        assert last_per_key(records, futures) == [futures[2], futures[4], futures[3]]
        futures[4].set_result(None)
        assert last_per_key(records, futures) == [futures[2], futures[3]]
        # Only the records already handed over have futures.
        assert last_per_key(records, futures[:2]) == [futures[0], futures[1]]
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
