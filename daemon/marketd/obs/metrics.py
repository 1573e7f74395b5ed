"""Prometheus exposition of every component's ``statistics()``.

Components count in plain ints (cheap on the hot path); this collector turns their
frozen snapshots into metric families at scrape time. Label sets are bounded: markets,
event kinds, topics, configured connections and named children only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

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
