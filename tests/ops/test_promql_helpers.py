"""The PromQL name extraction the dashboard and rules tests rely on."""

from __future__ import annotations

import pytest
from promql import metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up == 0", {"up"}),
        ('sum by (connection) (rate(marketd_feed_frames_total{a="x(y)"}[1m]))',
         {"marketd_feed_frames_total"}),
        ("histogram_quantile(0.99, sum by (le) (rate(m_bucket[5m])))", {"m_bucket"}),
        ("deriv(a[15m]) > 0 and a > 100e6", {"a"}),
        ("max by (instance, channel) (q / c) > 0.8", {"q", "c"}),
        ("sum(x) / 2^20", {"x"}),
        ("a / on (instance) group_left (job) b", {"a", "b"}),
    ],
)  # fmt: skip
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
