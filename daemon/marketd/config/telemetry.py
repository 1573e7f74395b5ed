"""Settings of traces (OpenTelemetry) and readiness probes."""

from __future__ import annotations

from typing import Any

import attrs

from marketd.config.validators import greater_than, url, within

_http_url = url("http", "https")


def _empty_or_http_url(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value:
        _http_url(instance, attribute, value)


@attrs.frozen
class TelemetrySettings:
    # OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318/v1/traces); empty: tracing off.
    otlp_endpoint: str = attrs.field(default="", validator=_empty_or_http_url)
    # Fraction of traces sampled. [0, 1].
    sampling_ratio: float = attrs.field(default=1.0, validator=within(0, 1))
    service_name: str = "marketd"
    # Seconds one export request to the endpoint may take. > 0.
    export_timeout_s: float = attrs.field(default=10.0, validator=greater_than(0))
    # Seconds allowed at shutdown to export the spans still pending. > 0.
    shutdown_timeout_s: float = attrs.field(default=5.0, validator=greater_than(0))


@attrs.frozen
class ReadinessSettings:
    # /readyz requires every book to be synced.
    require_books_synced: bool = False
    # ... except a book that was synced and lost sync less than this long ago (a gap, a
    # shallow book the price moved past: it resyncs in seconds); 0: none is excused.
    books_resync_grace_s: float = attrs.field(default=30.0, validator=within(0, 3600))
