"""HTTP request durations by route (a Prometheus histogram with a bounded label set)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Final

from prometheus_client.core import HistogramMetricFamily, Metric

BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED: Final = "<unmatched>"
"""Route label of requests no route matched (404s): raw paths never become labels."""


class RouteTimings:
    """Counts request durations per (route rule, method); route labels are the app's URL
    rules (``/api/alerts``, ``/ui/<path:name>``), so the label set stays bounded."""

    def __init__(self, buckets: Iterable[float] = BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def observe(self, route: str | None, method: str, seconds: float) -> None:
        key = (route or UNMATCHED, method if method in METHODS else "OTHER")
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = ([0] * (len(self.buckets) + 1), [0.0])
        counts, total = series
        counts[bisect.bisect_left(self.buckets, seconds)] += 1
        total[0] += seconds

    def metrics(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(
            "marketd_http_request_duration_seconds",
            "HTTP request duration by route rule and method.",
            labels=["route", "method"],
        )
        for (route, method), (counts, total) in sorted(self._series.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric([route, method], buckets, sum_value=total[0])
        yield family
