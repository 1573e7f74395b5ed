"""Settings of traces (OpenTelemetry) and readiness probes."""

from __future__ import annotations

import attrs

from marketd.validators import within


@attrs.frozen
class TelemetrySettings:
    # OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318/v1/traces); empty: tracing off.
    otlp_endpoint: str = ""
    # Fraction of traces sampled. [0, 1].
    sampling_ratio: float = attrs.field(default=1.0, validator=within(0, 1))
    service_name: str = "marketd"


@attrs.frozen
class ReadinessSettings:
    # /readyz requires every book to be synced.
    require_books_synced: bool = False
