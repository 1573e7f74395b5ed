"""REST request weights and the per-market weight budget (pure)."""

from __future__ import annotations

import pytest

from marketd.data.records import Market
from marketd.exchanges.binance.endpoints import depth_weight, trades_weight
from marketd.rest.weight import MIN_DELAY_S, WeightBudget, retry_after


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


# The start of a wall-clock minute (Unix seconds), so server minutes are realistic.
W0 = 1_700_000_040.0
assert W0 % 60 == 0


def test_depth_weights_change_right_above_each_limit_step() -> None:
    spot = [depth_weight(Market.SPOT, n) for n in (1, 100, 101, 500, 501, 1000, 1001)]
    assert spot == [5, 5, 25, 25, 50, 50, 250]
    usdm = [depth_weight(Market.USDM, n) for n in (5, 50, 51, 100, 101, 500, 501)]
    assert usdm == [2, 2, 5, 5, 10, 10, 20]


def test_trades_weights_per_market_and_kind() -> None:
    assert trades_weight(Market.SPOT, "aggTrade") == 4
    assert trades_weight(Market.SPOT, "trade") == 25
    assert trades_weight(Market.USDM, "aggTrade") == 20
    assert trades_weight(Market.USDM, "trade") == 20


def test_budget_is_at_least_one_and_burst_a_tenth_of_it_but_at_least_one() -> None:
    assert [WeightBudget(n).budget for n in (-5, 0, 1, 600)] == [1, 1, 1, 600]
    assert [WeightBudget(n).burst for n in (0, 5, 10, 600)] == [1.0, 1.0, 1.0, 60.0]
    tiny = WeightBudget(0)
    assert tiny.delay(1, 0.0, W0) == 0
    tiny.charge(1, 0.0)
    assert tiny.delay(1, 0.0, W0) == pytest.approx(60.0)  # one token per minute


def test_fresh_budget_sends_a_full_burst_at_once() -> None:
    b = WeightBudget(600)
    assert b.delay(60, 0.0, W0) == 0
    assert b.used(0.0, W0) == 0
    assert b.weight_requested == 0


def test_tokens_refill_at_budget_per_minute_up_to_the_burst() -> None:
    b = WeightBudget(600)  # burst 60, 10 per second
    b.charge(60, 0.0)
    assert b.delay(60, 0.0, W0) == 6.0
    assert b.delay(60, 3.0, W0) == 3.0  # 30 tokens back after 3 s
    assert b.delay(20, 3.0, W0) == 0
    b.charge(20, 3.0)
    assert b.delay(60, 3.0, W0) == 5.0  # 10 tokens left
    # A long idle period refills to the burst, not beyond.
    b.charge(60, 1000.0)
    assert b.delay(60, 1000.0, W0 + 600) == 6.0


def test_a_clock_read_out_of_order_does_not_drain_tokens() -> None:
    b = WeightBudget(600)
    b.charge(30, 10.0)  # 30 tokens left at t=10
    assert b.delay(60, 7.0, W0) == 3.0  # an earlier `now` neither refills nor drains


def test_a_request_heavier_than_the_burst_needs_only_a_full_burst() -> None:
    b = WeightBudget(600)
    assert b.delay(200, 0.0, W0) == 0
    b.charge(200, 0.0)  # takes the whole burst (60), not more
    assert b.delay(60, 3.0, W0) == 3.0
    assert b.used(3.0, W0) == 200
    assert b.weight_requested == 200


def test_own_window_fills_to_the_budget_exactly_then_waits_for_expiry() -> None:
    b = WeightBudget(60)  # burst 6, refilled 1 per second
    assert b.delay(30, 0.0, W0) == 0
    b.charge(30, 0.0)
    assert b.delay(30, 10.0, W0 + 10) == 0  # 30 + 30 = 60: exactly the budget is allowed
    b.charge(30, 10.0)
    assert b.used(10.0, W0 + 10) == 60
    assert b.weight_requested == 60
    # 30 more: the request at t=0 has to leave the window (at t=60).
    assert b.delay(30, 20.0, W0 + 20) == 40.0
    # 31 more: both earlier requests have to leave (the second at t=70).
    assert b.delay(31, 20.0, W0 + 20) == 50.0
    assert b.used(59.5, W0 + 59.5) == 60
    # A request leaves the window exactly 60 s after it was sent.
    assert b.used(60.0, W0 + 60) == 30
    assert b.delay(30, 60.0, W0 + 60) == 0
    assert b.used(70.0, W0 + 70) == 0


def test_used_without_a_clock_does_not_expire_anything() -> None:
    # Statistics outside trio pass now=-inf: what was sent still counts.
    b = WeightBudget(100)
    b.charge(30, 0.0)
    assert b.used(float("-inf"), W0) == 30
    assert b.used(100.0, W0) == 0


def test_server_weight_counts_only_in_its_own_minute_and_keeps_the_highest() -> None:
    b = WeightBudget(100)
    b.observe(40, W0 + 5)
    b.observe(30, W0 + 6)  # an older response arriving late: the count does not go down
    assert b.server_used == 40
    assert b.used(0.0, W0 + 59) == 40
    b.observe(None, W0 + 20)  # no header: nothing changes
    b.observe(45, W0 + 30)
    assert b.used(0.0, W0 + 30) == 45
    assert b.used(0.0, W0 + 60) == 0  # a new minute: the server's count restarted
    b.observe(None, W0 + 65)
    assert (b.server_minute, b.server_used) == (int(W0 // 60), 45)
    b.observe(12, W0 + 61)  # the first count of the new minute replaces the old one
    assert (b.server_minute, b.server_used) == (int(W0 // 60) + 1, 12)
    assert b.used(0.0, W0 + 61) == 12


def test_used_is_the_larger_of_own_window_and_server_count() -> None:
    b = WeightBudget(100)
    b.charge(50, 0.0)
    b.observe(20, W0)
    assert b.used(1.0, W0 + 1) == 50
    b.observe(70, W0 + 2)  # other users of the IP
    assert b.used(2.0, W0 + 2) == 70


def test_server_count_up_to_the_budget_is_allowed_beyond_waits_for_the_next_minute() -> None:
    b = WeightBudget(100)
    b.observe(90, W0 + 10)
    assert b.delay(10, 0.0, W0 + 10) == 0  # 90 + 10 = 100: within the budget
    # 90 + 11 > 100: wait for the next minute plus the clock-skew margin.
    assert b.delay(11, 0.0, W0 + 10) == 51.0
    assert b.delay(11, 0.0, W0 + 59.5) == 1.5
    # In the next minute the old count no longer applies.
    assert b.delay(11, 0.0, W0 + 60) == 0


def test_block_holds_every_request_and_a_shorter_block_does_not_shorten_it() -> None:
    b = WeightBudget(100)
    b.block(30, 100.0)
    b.block(10, 105.0)
    assert b.blocked_until == 130.0
    assert b.delay(1, 110.0, W0) == 20.0
    assert b.delay(1, 130.0, W0) == 0
    b.block(60, 120.0)
    assert b.blocked_until == 180.0


def test_retry_after_accepts_non_negative_finite_seconds_only() -> None:
    assert retry_after("0", 60) == 0.0
    assert retry_after("1.5", 60) == 1.5
    assert retry_after(" 12 ", 60) == 12.0
    for bad in ("", "-1", "inf", "nan", "soon"):
        assert retry_after(bad, 9.0) == 9.0


def test_an_earlier_now_does_not_credit_the_same_seconds_twice() -> None:
    b = WeightBudget(600)  # burst 60, refill 10 per second
    wall = 120.0
    b.charge(60, 10.0)  # the burst spent at t=10
    assert b.delay(60, 10.0, wall) == pytest.approx(6.0)
    b.charge(0, 7.0)  # a caller that read the clock before t=10
    # From t=10 to t=13, 30 weight came back, not 30 plus the 3 s before t=10 again.
    assert b.delay(60, 13.0, wall) == pytest.approx(3.0)


def test_a_positive_delay_is_never_below_the_clock_resolution() -> None:
    """Float rounding leaves a token deficit of ~1e-16; its wait (~1e-14 s) vanishes when
    added to a clock at 1000 s (``now + wait == now``): a caller sleeping it would find
    the same deficit again, forever. Positive waits are rounded up to MIN_DELAY_S."""
    b = WeightBudget(7)  # burst 1, 7/60 a second
    now = 1000.0
    b.charge(1, now)
    wait = b.delay(1, now, W0)
    assert wait == pytest.approx(60 / 7)
    now += wait
    tiny = b.delay(1, now, W0 + wait)
    assert tiny == 0 or (tiny >= MIN_DELAY_S and now + tiny > now)
    for budget in range(1, 200):  # no positive wait below the floor, at any budget
        b = WeightBudget(budget)
        now = 1000.0
        for _ in range(20):
            wait = b.delay(1, now, W0)
            assert wait == 0 or wait >= MIN_DELAY_S, (budget, now, wait)
            now += wait
            if wait == 0:
                b.charge(1, now)
