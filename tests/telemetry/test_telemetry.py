"""Traces: spans exported over real OTLP/HTTP to a receiver in the test, decoded and checked."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import trio
from kit.daemon import binance_settings
from opentelemetry import trace
from otlp_receiver import OtlpReceiver

from marketd.config.settings import Subscription
from marketd.config.telemetry import TelemetrySettings
from marketd.data.records import FrameBatch, Market
from marketd.fakex import FakeExchangeConfig, open_fake_exchange
from marketd.feed import Feed, plan_connections
from marketd.obs.telemetry import (
    Tracing,
    configure_tracing,
    end_span,
    kafka_headers,
    span,
    span_context_from_headers,
    start_span,
    tracing_enabled,
)


@pytest.fixture
def tracing_off() -> Iterator[None]:
    """Whatever a test configured, tracing is off again after it."""
    yield
    configure_tracing(TelemetrySettings()).shutdown()


def turn_on(url: str, **overrides: object) -> Tracing:
    return configure_tracing(TelemetrySettings(otlp_endpoint=url, **overrides))  # type: ignore[arg-type]


@pytest.mark.usefixtures("tracing_off")
def test_off_by_default_costs_nothing() -> None:
    handle = configure_tracing(TelemetrySettings())
    assert not handle.enabled
    assert not tracing_enabled()
    first, second = span("a", x=1), span("b")
    assert first is second  # one shared no-op
    with first as sp:
        assert sp is trace.INVALID_SPAN
        assert kafka_headers() == ()
    detached = start_span("kafka.publish", records=3)
    assert detached is trace.INVALID_SPAN
    end_span(detached, "ignored")
    assert handle.shutdown(0.1)
    # Cheap: well under a microsecond per use when off. Measured in this thread's CPU
    # time, not wall-clock time: on a loaded machine the thread may wait for a core for
    # milliseconds in the middle of the loop, which says nothing about the cost.
    started = time.thread_time()
    for _ in range(10_000):
        with span("batch", records=10):
            pass
    assert (time.thread_time() - started) / 10_000 < 5e-6


@pytest.mark.usefixtures("tracing_off")
def test_spans_nest_and_carry_attributes_errors_and_headers(otlp: OtlpReceiver) -> None:
    handle = turn_on(otlp.url, service_name="marketd-test")
    with span("outer", connection="spot-0") as outer:
        headers = kafka_headers()
        with pytest.raises(ValueError, match="boom"), span("inner", records=7):
            raise ValueError("boom")
        detached = start_span("kafka.publish", records=2)
        publish_headers = kafka_headers(detached)
        end_span(detached, "KafkaConnectionError()", acked=0, failed=2)
    assert handle.shutdown(5.0)
    assert not tracing_enabled()

    (o,) = otlp.named("outer")
    (i,) = otlp.named("inner")
    (p,) = otlp.named("kafka.publish")
    assert o.parent_span_id == ""
    assert i.parent_span_id == o.span_id
    assert p.parent_span_id == o.span_id
    assert {o.trace_id, i.trace_id, p.trace_id} == {o.trace_id}
    assert o.attributes == {"connection": "spot-0"}
    assert i.attributes["records"] == 7
    assert i.status_code == 2  # error, with the exception recorded
    assert p.attributes["failed"] == 2
    assert p.status_code == 2
    assert o.service == "marketd-test"
    # W3C trace context: what a consumer extracts is the span that carried the records.
    ((key, value),) = headers
    version, trace_id, span_id, flags = value.decode().split("-")
    assert (key, version, trace_id, span_id) == ("traceparent", "00", o.trace_id, o.span_id)
    assert int(flags, 16) & 1  # sampled
    ctx = span_context_from_headers((("type", b"trade"), *publish_headers))
    assert ctx is not None
    assert (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")) == (p.trace_id, p.span_id)
    assert ctx.is_remote
    assert outer.get_span_context().span_id == int(o.span_id, 16)
    assert span_context_from_headers((("type", b"trade"),)) is None


@pytest.mark.usefixtures("tracing_off")
def test_sampling_ratio_zero_exports_no_trace(otlp: OtlpReceiver) -> None:
    handle = turn_on(otlp.url, sampling_ratio=0.0)
    with span("outer"), span("inner") as sp:
        assert not sp.is_recording()
        # Propagated as not sampled, so consumers (ParentBased) do not sample it either.
        ((_, value),) = kafka_headers()
        assert not int(value.decode().rsplit("-", 1)[1], 16) & 1
    assert handle.shutdown(5.0)
    assert otlp.spans == []


@pytest.mark.usefixtures("tracing_off")
def test_shutdown_flush_is_bounded_when_the_collector_does_not_answer() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        # The export would hang for its 5 s timeout; the shutdown gives up after its own
        # 0.5 s. The bound between the two leaves a loaded machine seconds of slack.
        handle = turn_on(f"http://127.0.0.1:{port}/v1/traces", export_timeout_s=5.0)
        with span("pending"):
            pass
        started = time.monotonic()
        assert handle.shutdown(0.5) is False
        assert time.monotonic() - started < 3.0
    assert handle.worker is not None
    handle.worker.join(15)  # the abandoned export gives up on its own request timeout
    assert not handle.worker.is_alive()


@pytest.mark.usefixtures("tracing_off")
async def test_feed_session_connect_and_subscribe_spans(otlp: OtlpReceiver) -> None:
    """A real feed against the in-process fake exchange, subscribing by SUBSCRIBE messages."""
    handle = turn_on(otlp.url)
    try:
        with trio.fail_after(20):
            async with open_fake_exchange(FakeExchangeConfig(symbols=2, seed=3, rate=50)) as fx:
                settings = binance_settings(fx)
                names = [m.spec.symbol for m in fx.model(Market.SPOT).symbols]
                subs = (Subscription(Market.SPOT, symbols=tuple(names), channels=("trade",)),)
                (plan,) = plan_connections(subs, settings, max_url_length=10)
                assert not plan.subscribe_in_url
                send, receive = trio.open_memory_channel[FrameBatch](16)
                async with receive, trio.open_nursery() as nursery:
                    await nursery.start(Feed(plan, settings).serve, send)
                    await receive.receive()
                    nursery.cancel_scope.cancel()
    finally:
        assert await trio.to_thread.run_sync(handle.shutdown, 5.0)

    (session,) = otlp.named("feed.session")
    (connect,) = otlp.named("feed.connect")
    (subscribe,) = otlp.named("feed.subscribe")
    assert session.parent_span_id == ""
    assert connect.parent_span_id == session.span_id
    assert subscribe.parent_span_id == session.span_id
    assert {connect.trace_id, subscribe.trace_id} == {session.trace_id}
    assert session.attributes["connection"] == "spot-0"
    assert session.attributes["market"] == "spot"
    assert session.attributes["marketd.cancelled"] is True  # stopped, not failed
    assert session.status_code != 2
    assert subscribe.attributes["messages"] >= 1
    assert subscribe.attributes["streams"] == len(plan.streams)
    assert session.start_ns <= connect.start_ns <= connect.end_ns <= subscribe.start_ns
    assert subscribe.end_ns <= session.end_ns
