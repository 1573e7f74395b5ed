"""REST request weights and the per-market weight budget (pure)."""

from __future__ import annotations

import pytest

from marketd.records import Market
from marketd.rest_weight import WeightBudget, depth_weight, retry_after


def test_depth_weights() -> None:
    assert [depth_weight(Market.SPOT, n) for n in (100, 500, 1000, 5000)] == [5, 25, 50, 250]
    assert [depth_weight(Market.USDM, n) for n in (50, 100, 500, 1000)] == [2, 5, 10, 20]


def test_budget_window_header_and_blocks() -> None:
    b = WeightBudget(100)  # burst 10, refill 100/60 per second
    wall = 120.0
    assert b.delay(10, 0.0, wall) == 0
    b.charge(10, 0.0)
    assert b.delay(10, 0.0, wall) == pytest.approx(6.0)
    now = 0.0
    sent = 10
    while now < 59:
        now += b.delay(10, now, wall + now)
        if now >= 59:
            break
        b.charge(10, now)
        sent += 10
    assert sent <= 100  # never over the budget within a minute
    b2 = WeightBudget(100)
    b2.observe(95, 130.0)  # someone else used the IP's weight this minute
    assert b2.delay(10, 0.0, 130.0) == pytest.approx(180 + 1 - 130)
    b2.block(30, 0.0)
    assert b2.delay(1, 0.0, 200.0) == pytest.approx(30)
    assert retry_after("7", 60) == 7
    assert retry_after(None, 60) == 60
    assert retry_after("x", 5) == 5
