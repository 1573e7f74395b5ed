"""Prometheus exposition of every component's ``statistics()``.

Components count in plain ints (cheap on the hot path); this collector turns their
frozen snapshots into metric families at scrape time. Label sets are bounded: markets,
event kinds, topics, configured connections and named children only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

MetricSource = Callable[[], Iterable[Metric]]


class StatisticsCollector(Collector):
    """A collector fed by callables that each yield metric families."""

    def __init__(self) -> None:
        self._sources: list[MetricSource] = []

    def add(self, source: MetricSource) -> None:
        self._sources.append(source)

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source()


def seeded(
    known: Iterable[tuple[str, ...]], values: Mapping[tuple[str, ...], int]
) -> dict[tuple[str, ...], int]:
    """``values`` with every ``known`` label set present, at 0 when it has none yet: a
    series a dashboard or an alert reads exists from the start, not after its first event."""
    out = dict.fromkeys(known, 0)
    out.update(values)
    return out


def counter(
    name: str, doc: str, labels: tuple[str, ...], values: dict[tuple[str, ...], int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def gauge(
    name: str, doc: str, labels: tuple[str, ...], values: dict[tuple[str, ...], float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family
