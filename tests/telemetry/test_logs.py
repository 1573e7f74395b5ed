"""Logs: trace ids on lines logged inside a span; repeated warnings and errors limited."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import structlog
from otlp_receiver import OtlpReceiver

from marketd.obs.logs import LimitRepeats, add_trace_context

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    import structlog
    from marketd.obs.logs import configure_logging
    from marketd.config.telemetry import TelemetrySettings
    from marketd.obs.telemetry import span, tracing

    configure_logging("info", "json")
    log = structlog.get_logger("marketd.test")
    log.info("outside")
    with tracing(TelemetrySettings(otlp_endpoint=sys.argv[1])):
        with span("feed.session") as sp:
            ctx = sp.get_span_context()
            print(format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), flush=True)
            log.info("inside")
            logging.getLogger("aiokafka").warning("library line inside")
    for i in range(20):
        log.error("kafka delivery failed", attempt=i)
        logging.getLogger("aiokafka").warning("Unable to connect to %s", "node-1")
    log.info("info is never limited")
    log.info("info is never limited")
    logging.getLogger("aiokafka.cluster").error(
        "Topic %s not found in cluster metadata", "marketdata.raw"
    )
    logging.getLogger("aiokafka.cluster").error("Topic %s is not authorized for this client", "x")
    """
)


def test_json_lines_carry_trace_and_span_ids_and_repeats_are_limited(
    otlp: OtlpReceiver,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, otlp.url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    trace_id, span_id = done.stdout.split()
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    by_event = {}
    for line in lines:
        by_event.setdefault(line["event"], []).append(line)
    (outside,) = by_event["outside"]
    assert "trace_id" not in outside
    assert "span_id" not in outside
    (inside,) = by_event["inside"]
    assert (inside["trace_id"], inside["span_id"]) == (trace_id, span_id)
    (library,) = by_event["library line inside"]
    assert (library["trace_id"], library["span_id"]) == (trace_id, span_id)
    # 20 identical errors (and library warnings): the first 5 of the window get through.
    assert [e["attempt"] for e in by_event["kafka delivery failed"]] == [0, 1, 2, 3, 4]
    assert len(by_event["Unable to connect to node-1"]) == 5
    assert len(by_event["info is never limited"]) == 2
    # aiokafka's "not found" before a topic's auto-creation is a warning saying so; its
    # other topic errors stay errors.
    (missing,) = [e for e in lines if "marketdata.raw" in e["event"]]
    assert missing["level"] == "warning"
    assert missing["event"].startswith("Topic marketdata.raw not in the cluster metadata yet")
    (denied,) = by_event["Topic x is not authorized for this client"]
    assert denied["level"] == "error"
    (session,) = otlp.named("feed.session")
    assert (session.trace_id, session.span_id) == (trace_id, span_id)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(limiter: LimitRepeats, level: str, event: str, logger: str = "marketd.x") -> dict | None:
    try:
        return dict(limiter(None, level, {"event": event, "level": level, "logger": logger}))
    except structlog.DropEvent:
        return None


def test_limit_repeats_burst_window_and_suppressed_count() -> None:
    clock = Clock()
    limiter = LimitRepeats(burst=2, interval=10.0, clock=clock)
    out = [run(limiter, "error", "boom") for _ in range(5)]
    assert [o is not None for o in out] == [True, True, False, False, False]
    # Other keys have their own budget: event, level and logger all count.
    assert run(limiter, "error", "other") is not None
    assert run(limiter, "warning", "boom") is not None
    assert run(limiter, "error", "boom", logger="marketd.y") is not None
    assert run(limiter, "info", "boom") is not None  # info passes untouched
    clock.now += 10.0
    first = run(limiter, "error", "boom")
    assert first is not None
    assert first["suppressed"] == 3
    again = run(limiter, "error", "boom")
    assert again is not None
    assert "suppressed" not in again


def test_limit_repeats_bounds_its_keys() -> None:
    limiter = LimitRepeats(burst=1, interval=10.0, clock=Clock(), max_keys=3)
    for i in range(10):
        assert run(limiter, "error", f"event {i}") is not None
    assert len(limiter._windows) <= 3


@pytest.mark.parametrize("fields", [{}, {"trace_id": "kept"}])
def test_add_trace_context_outside_a_span_adds_nothing(fields: dict[str, str]) -> None:
    assert add_trace_context(None, "info", dict(fields)) == fields
