"""Traces (OpenTelemetry): set-up from :class:`TelemetrySettings`, cheap spans, W3C context
in Kafka headers, a bounded flush at shutdown.

Off by default: with no ``telemetry.otlp_endpoint`` nothing is exported and :func:`span`
returns one shared no-op context manager (no SDK object is made, well under a microsecond).
On: spans go through a ``BatchSpanProcessor`` (a background thread) to an OTLP/HTTP
exporter; sampling is ``ParentBased(TraceIdRatioBased(sampling_ratio))``.

Granularity: a span costs ~29 µs, so spans wrap connections, subscriptions, batches and
resyncs — never one message. STACK.md pitfall 6: a task started inside a span keeps it as
its parent for as long as it lives, so supervisors start their long-lived children outside
any span (a per-connection task inside that connection's session span is intended).

The tracer lives here, not in OpenTelemetry's process-wide provider (which can be set only
once): :func:`configure_tracing` may run again (tests do) and :meth:`Tracing.shutdown`
turns tracing off again. Use it around ``trio.run``::

    with tracing(settings.telemetry):
        trio.run(run_daemon, settings)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Protocol

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from marketd import __version__
from marketd.config.telemetry import TelemetrySettings

__all__ = [
    "Tracing",
    "configure_tracing",
    "end_span",
    "kafka_headers",
    "span",
    "span_context_from_headers",
    "start_span",
    "tracing",
    "tracing_enabled",
]

log = structlog.get_logger(__name__)

Headers = tuple[tuple[str, bytes], ...]
_PROPAGATOR = TraceContextTextMapPropagator()
_NOOP: contextlib.nullcontext[Span] = contextlib.nullcontext(trace.INVALID_SPAN)


class _Shutdownable(Protocol):
    def shutdown(self) -> None: ...


class _State:
    tracer: trace.Tracer | None = None


_state = _State()


def tracing_enabled() -> bool:
    return _state.tracer is not None


class _Recording:
    """``with``: a span that is the current one inside the block (see :func:`span`)."""

    __slots__ = ("_attributes", "_links", "_name", "_span", "_token", "_tracer")

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        attributes: Mapping[str, AttributeValue],
        links: Sequence[Link],
    ) -> None:
        self._tracer, self._name, self._attributes, self._links = tracer, name, attributes, links
        self._span: Span = trace.INVALID_SPAN
        self._token: object = None

    def __enter__(self) -> Span:
        self._span = self._tracer.start_span(
            self._name, attributes=self._attributes, links=self._links
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]
        _finish(self._span, exc)


def _finish(sp: Span, exc: BaseException | None) -> None:
    if exc is not None:
        if isinstance(exc, Exception):
            sp.record_exception(exc)
            sp.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))
        else:  # trio.Cancelled (in a group or not), KeyboardInterrupt: stopped, not failed
            sp.set_attribute("marketd.cancelled", True)
    sp.end()


def span(
    name: str, *, links: Iterable[SpanContext] = (), **attributes: AttributeValue
) -> contextlib.AbstractContextManager[Span]:
    """``with span("feed.connect", connection=...) as sp:`` — a child of the current span.

    An exception escaping the block is recorded and marks the span as an error;
    cancellation only marks it ``marketd.cancelled``. ``links`` relate a span to others
    that are not its parent (e.g. the publish spans of a consumed batch's records).
    Tracing off: a shared no-op whose span is ``INVALID_SPAN``.
    """
    tracer = _state.tracer
    if tracer is None:
        return _NOOP
    return _Recording(tracer, name, attributes, [Link(c) for c in links])


def start_span(name: str, **attributes: AttributeValue) -> Span:
    """A span started now and ended later by :func:`end_span` — possibly in another task
    (e.g. from hand-over to acknowledgement). Its parent is the current span; it does not
    become the current one. Tracing off: ``INVALID_SPAN`` (ending it is free)."""
    tracer = _state.tracer
    if tracer is None:
        return trace.INVALID_SPAN
    return tracer.start_span(name, attributes=attributes)


def end_span(
    sp: Span, error: BaseException | str | None = None, **attributes: AttributeValue
) -> None:
    """End a span from :func:`start_span`; ``error`` (an exception or a description)
    marks it as failed."""
    if not sp.is_recording():
        return
    if attributes:
        sp.set_attributes(attributes)
    if isinstance(error, str):
        sp.set_status(Status(StatusCode.ERROR, error[:200]))
        error = None
    _finish(sp, error)


def kafka_headers(sp: Span | None = None) -> Headers:
    """W3C trace context (``traceparent``, ``tracestate`` if any) of ``sp`` (default: the
    current span) as Kafka record headers; ``()`` when there is nothing to propagate.

    Computed once per published batch and appended to the headers of that batch's
    records, so a consumer continues the trace of the batch that carried its record."""
    current = trace.get_current_span() if sp is None else sp
    if not current.get_span_context().is_valid:
        return ()
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(current))
    return tuple((key, value.encode("ascii")) for key, value in carrier.items())


def span_context_from_headers(headers: Iterable[tuple[str, bytes]]) -> SpanContext | None:
    """The remote span context carried by a record's ``traceparent`` header, if any: use it
    as a link (``span(..., links=[ctx])``) or, for one record, as the parent."""
    carrier = {}
    for key, value in headers:
        if key in ("traceparent", "tracestate"):
            carrier[key] = value.decode("ascii", "replace")
    if "traceparent" not in carrier:
        return None
    ctx = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
    return ctx if ctx.is_valid else None


class Tracing:
    """The configured tracer provider; :meth:`shutdown` flushes and turns tracing off."""

    def __init__(self, provider: _Shutdownable | None, endpoint: str) -> None:
        self._provider = provider
        self.endpoint = endpoint
        self.worker: threading.Thread | None = None  # the last shutdown's, if any

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Export pending spans (bounded by ``timeout_s``), then stop. True if done in time.

        The SDK's own shutdown has no overall bound (a dead collector holds the export for
        its request timeout), so it runs in a daemon thread that is waited for at most
        ``timeout_s``; a late one is abandoned and the process may exit under it."""
        provider, self._provider = self._provider, None
        if provider is None:
            return True
        _state.tracer = None
        worker = self.worker = threading.Thread(
            target=provider.shutdown, name="otel-shutdown", daemon=True
        )
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            log.warning(
                "traces not flushed in time; pending spans dropped",
                endpoint=self.endpoint,
                timeout_s=timeout_s,
            )
            return False
        return True


def configure_tracing(settings: TelemetrySettings) -> Tracing:
    """Set up tracing from ``settings``: nothing at all unless ``otlp_endpoint`` is set."""
    if not settings.otlp_endpoint:
        _state.tracer = None
        return Tracing(None, "")
    # Imported only when tracing is on: the SDK and exporter cost nothing otherwise.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create(
        {"service.name": settings.service_name, "service.version": __version__}
    )
    provider = TracerProvider(
        resource=resource,
        sampler=ParentBased(TraceIdRatioBased(settings.sampling_ratio)),
        shutdown_on_exit=False,
    )
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint, timeout=settings.export_timeout_s)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _state.tracer = provider.get_tracer("marketd", __version__)
    log.info(
        "tracing on",
        endpoint=settings.otlp_endpoint,
        sampling_ratio=settings.sampling_ratio,
    )
    return Tracing(provider, settings.otlp_endpoint)


@contextlib.contextmanager
def tracing(settings: TelemetrySettings) -> Iterator[Tracing]:
    """Tracing on for the block (if configured); pending spans flushed at its end, bounded
    by ``telemetry.shutdown_timeout_s``."""
    handle = configure_tracing(settings)
    try:
        yield handle
    finally:
        handle.shutdown(settings.shutdown_timeout_s)
