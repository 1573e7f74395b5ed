"""Histograms counted in plain ints and exposed at scrape time: HTTP request durations by
route (a bounded label set), and any other duration the gateway measures."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import attrs
from prometheus_client.core import HistogramMetricFamily, Metric

BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED: Final = "<unmatched>"
"""Route label of requests no route matched (404s): raw paths never become labels."""


@attrs.frozen
class HistogramSnapshot:
    bounds: tuple[float, ...]
    # Observations per bucket (not cumulative); one more than ``bounds``: the +Inf bucket.
    counts: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        return sum(self.counts)


class Histogram:
    """Counts observations per bucket (``value <= bound``, as Prometheus does)."""

    def __init__(self, buckets: Iterable[float] = BUCKETS) -> None:
        self.bounds = tuple(sorted(buckets))
        self._counts = [0] * (len(self.bounds) + 1)
        self._total = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self._total += value

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self.bounds, tuple(self._counts), self._total)


def histogram_family(
    name: str,
    doc: str,
    labels: Sequence[str],
    series: Mapping[tuple[str, ...], HistogramSnapshot],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for key, snap in sorted(series.items()):
        cumulative, buckets = 0, []
        for bound, n in zip((*snap.bounds, float("inf")), snap.counts, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        family.add_metric(list(key), buckets, sum_value=snap.total)
    return family


class RouteTimings:
    """Counts request durations per (route rule, method, status class); route labels are
    the app's URL rules (``/api/alerts``, ``/ui/<path:name>``) and statuses their class
    (``2xx``, ``4xx``), so the label set stays bounded."""

    def __init__(self, buckets: Iterable[float] = BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, str, str], Histogram] = {}

    def observe(self, route: str | None, method: str, status: int, seconds: float) -> None:
        status_class = f"{status // 100}xx" if 100 <= status < 600 else "other"
        key = (route or UNMATCHED, method if method in METHODS else "OTHER", status_class)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Histogram(self.buckets)
        series.observe(seconds)

    def metrics(self) -> Iterable[Metric]:
        yield histogram_family(
            "marketd_http_request_duration_seconds",
            "HTTP request duration by route rule, method and status class.",
            ["route", "method", "status"],
            {key: h.snapshot() for key, h in self._series.items()},
        )
