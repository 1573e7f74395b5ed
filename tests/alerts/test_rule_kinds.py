"""The rule kinds' state machines (pure): unit cases, and properties against brute-force
reference models that re-scan the whole history at every tick."""

from __future__ import annotations

import decimal
import itertools
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketd.alerts.kinds import (
    LiquidationParams,
    LiquidationSignal,
    LiquidationState,
    ThresholdParams,
    ThresholdSignal,
    ThresholdState,
    VolumeParams,
    VolumeSignal,
    VolumeState,
    downsample,
    funding_pct,
    premium_pct,
)
from marketd.alerts.model import PATH_POINTS, Direction

D = Decimal
UP, DOWN = Direction.UP, Direction.DOWN
WIDE = decimal.Context(prec=80)


def vparams(
    window_ms: int = 1000,
    baseline_ms: int = 4000,
    multiple: str = "2",
    min_notional: str = "0",
    cooldown_ms: int = 0,
) -> VolumeParams:
    return VolumeParams(window_ms, baseline_ms, D(multiple), D(min_notional), cooldown_ms)


def trade(
    state: VolumeState, p: VolumeParams, time_ms: int, price: str, qty: str
) -> VolumeSignal | None:
    return state.observe(p, time_ms, D(price), price, D(price) * D(qty))


def trades(
    state: VolumeState, p: VolumeParams, ticks: list[tuple[int, str, str]]
) -> list[VolumeSignal]:
    out = []
    for t, price, qty in ticks:
        s = trade(state, p, t, price, qty)
        if s is not None:
            out.append(s)
    return out


# A quiet baseline: 10 of notional per second from t=0 to t=3000 (40 in [0, 4000)).
QUIET = [(t, "100", "0.1") for t in range(0, 4000, 1000)]


# --- volume --------------------------------------------------------------------------


def test_volume_spike_signals_with_its_figures() -> None:
    state, p = VolumeState(), vparams()
    # 4500: still warming up (the first trade, t=0, is after 4500 - 5000).
    assert trades(state, p, [*QUIET, (4500, "100", "0.1")]) == []
    # 5000: window [4000, 5000] = 10 + 19.8 = 29.8, baseline [0, 4000) = 40; the bar is
    # 2 * 40 * 1000 / 4000 = 20.
    s = trade(state, p, 5000, "99", "0.2")
    assert s is not None
    assert s.direction is DOWN  # 99 below the base 100 (the oldest trade in the window)
    assert (s.base_time_ms, s.base_price, s.time_ms, s.price) == (4500, "100", 5000, "99")
    assert (str(s.window_notional), str(s.baseline_notional)) == ("29.8", "40.0")
    assert (s.trades, s.ratio) == (2, D("2.98"))
    assert s.path == ((4500, "100"), (5000, "99"))


def test_volume_exactly_the_multiple_does_not_signal() -> None:
    state, p = VolumeState(), vparams()
    # window 10 + 10 = 20: exactly twice the baseline's rate
    assert trades(state, p, [*QUIET, (4500, "100", "0.1"), (5000, "100", "0.1")]) == []
    s = trade(state, p, 5000, "100", "0.0000001")  # a hair more, same millisecond
    assert s is not None
    assert s.direction is UP  # same price as the base: up
    assert str(s.window_notional) == "20.0000100"
    assert s.trades == 3


def test_volume_window_boundary_is_inside() -> None:
    p = vparams()
    base = [(0, "100", "0.4"), (4000, "100", "0.15")]  # 40 at t=0, 15 at 4000
    # At 5000 the trade of 4000 is in the window (15 + 6 = 21 > 20) ...
    [s] = trades(VolumeState(), p, [*base, (5000, "100", "0.06")])
    assert (s.base_time_ms, str(s.window_notional), str(s.baseline_notional)) == (
        4000,
        "21.00",
        "40.0",
    )
    # ... at 5001 it is the baseline, t=0 has left it: 6 * 4000 <= 2 * 15 * 1000.
    assert trades(VolumeState(), p, [*base, (5001, "100", "0.06")]) == []


def test_volume_baseline_boundary_is_inside() -> None:
    p = vparams(multiple="4")  # the window's rate beats 4 times the baseline's: ws > bs
    # At 5000 the baseline is [0, 4000): the trade of t=0 is in it (39 <= 10 + 30) ...
    ticks = [(0, "100", "0.1"), (3000, "100", "0.3"), (5000, "100", "0.39")]
    assert trades(VolumeState(), p, ticks) == []
    # ... and at 5001 it has left it: 39 > 30.
    [s] = trades(VolumeState(), p, [*ticks[:2], (5001, "100", "0.39")])
    assert str(s.baseline_notional) == "30.0"


def test_volume_warm_up_needs_the_whole_baseline() -> None:
    p = vparams()
    assert trades(VolumeState(), p, [(0, "1", "10"), (4999, "1", "1000")]) == []
    [s] = trades(VolumeState(), p, [(0, "1", "10"), (5000, "1", "1000")])
    assert (s.baseline_notional, s.window_notional) == (D(10), D(1000))


def test_volume_zero_baseline_never_signals() -> None:
    state, p = VolumeState(), vparams(multiple="0")
    # A trade at 0, then nothing for longer than window + baseline, then a flood: no
    # signal even though any volume beats a multiple of 0 ...
    ticks = [(0, "1", "1")] + [(t, "1", "1000") for t in range(10_000, 11_000, 100)]
    assert trades(state, p, ticks) == []
    # ... until there is a baseline (the flood, [7000, 11000) at 12_000).
    s = trade(state, p, 12_000, "1", "1")
    assert s is not None
    assert (s.baseline_notional, s.window_notional, s.base_time_ms) == (D(10_000), D(1), 12_000)


def test_volume_min_notional_is_inclusive() -> None:
    ticks = [*QUIET, (4500, "100", "0.1"), (5000, "100", "0.11")]  # window 21
    assert len(trades(VolumeState(), vparams(min_notional="21"), ticks)) == 1
    assert trades(VolumeState(), vparams(min_notional="21.01"), ticks) == []


def test_volume_reset_spends_the_window_but_not_the_baseline() -> None:
    state, p = VolumeState(), vparams()
    [first] = trades(state, p, [*QUIET, (4500, "100", "0.1"), (5000, "99", "0.2")])
    assert first.time_ms == 5000
    # The same window by time holds 30.8 now, but only the trade after the signal counts.
    assert trade(state, p, 5000, "99", "0.01") is None
    s = trade(state, p, 5000, "101", "0.2")  # 0.99 + 20.2 > 20: the trades after it
    assert s is not None
    assert (s.base_time_ms, s.base_price, s.trades, str(s.window_notional)) == (
        5000,
        "99",
        2,
        "21.19",
    )
    assert s.direction is UP
    # The spent spike moves into the baseline: at 6001 the baseline is [1001, 5001):
    # 2000, 3000 (20) + 4500 (10) + all of 5000 (19.8 + 0.99 + 20.2) = 70.99.
    assert trade(state, p, 6001, "100", "0.35") is None  # 35 * 4000 <= 2 * 70.99 * 1000
    s = trade(state, p, 6001, "100", "0.01")
    assert s is not None
    assert (str(s.window_notional), str(s.baseline_notional)) == ("36.00", "70.99")
    assert s.ratio == WIDE.divide(D(36) * 4000, D("70.99") * 1000)


def test_volume_quiet_during_the_cooldown_then_counts_the_trades_since_the_signal() -> None:
    state, p = VolumeState(), vparams(baseline_ms=10_000, cooldown_ms=3000)
    ticks = [(t, "10", "1") for t in range(0, 11_000, 1000)]  # 10 per second
    [s] = trades(state, p, [*ticks, (11_000, "11", "3")])  # 10 + 33 > 2 * 100 / 10
    assert s.time_ms == 11_000
    # The burst goes on, quiet until 14_000 ...
    assert trades(state, p, [(12_000, "12", "3"), (13_999, "13", "3")]) == []
    # ... and the next signal counts only the trades after the first one's (12_000 left).
    [s] = trades(state, p, [(14_000, "14", "3")])
    assert (s.base_time_ms, s.base_price, s.trades) == (13_999, "13", 2)
    assert s.path == ((13_999, "13"), (14_000, "14"))


def test_volume_path_is_the_downsampled_window() -> None:
    window = [(20_000 + 10 * i, str(100 + (i * 37) % 23), "1") for i in range(200)]
    # Equal windows and baselines: a signal when the window's notional beats ``multiple``
    # times the baseline's, which is 1 (the trade at 5000) from 20_010 on: make it the
    # notional of the first 199 trades, so that only the 200th signals.
    multiple = str(sum(D(price) for _, price, _ in window[:199]))
    state, p = VolumeState(), vparams(window_ms=10_000, baseline_ms=10_000, multiple=multiple)
    found = trades(state, p, [(0, "1", "1"), (5000, "1", "1"), *window])
    assert [x.trades for x in found] == [200]
    assert found[0].path == downsample([(t, price) for t, price, _ in window])
    assert len(found[0].path) == PATH_POINTS


def test_volume_longer_window_takes_back_trades_from_the_baseline() -> None:
    short, long = vparams(window_ms=1000), vparams(window_ms=2000, baseline_ms=3000)
    ticks = [(t, "100", "0.1") for t in range(0, 5000, 500)]
    changed = VolumeState()
    assert trades(changed, short, ticks) == []
    fresh = VolumeState()
    assert trades(fresh, long, ticks) == []
    end = (5000, "100", "0.5")  # window [3000, 5000]: 40 + 50 > 2 * 60 * 2000 / 3000
    assert trades(changed, long, [end]) == trades(fresh, long, [end]) != []


def test_volume_longer_window_keeps_spent_trades_spent() -> None:
    state, short, long = VolumeState(), vparams(), vparams(window_ms=3000, baseline_ms=2000)
    assert len(trades(state, short, [*QUIET, (4500, "100", "0.1"), (5000, "99", "0.2")])) == 1
    # [2500, 5500] by time, but only the trade after the signal counts: 25 * 2000 is not
    # above 2 * 20 * 3000 with the baseline [500, 2500) = 20 ...
    assert trade(state, long, 5500, "100", "0.25") is None
    s = trade(state, long, 5500, "100", "0.36")  # ... 61 * 2000 is
    assert s is not None
    assert (s.trades, str(s.window_notional), str(s.baseline_notional)) == (2, "61.00", "20.0")


def test_volume_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        vparams(window_ms=0)
    with pytest.raises(ValueError, match="positive"):
        vparams(baseline_ms=0)
    with pytest.raises(ValueError, match="multiple"):
        vparams(multiple="-1")
    with pytest.raises(ValueError, match="min_notional"):
        vparams(min_notional="NaN")
    with pytest.raises(ValueError, match="cooldown"):
        vparams(cooldown_ms=-1)


# --- liquidations --------------------------------------------------------------------


def liq(
    state: LiquidationState, p: LiquidationParams, t: int, side: str, price: str, qty: str
) -> LiquidationSignal | None:
    return state.observe(p, t, side, D(price), price, D(price) * D(qty))


LP = LiquidationParams(window_ms=10_000, min_notional=D(1000), cooldown_ms=0)


def test_liquidation_cluster_of_longs_signals_down_with_its_figures() -> None:
    state = LiquidationState()
    assert liq(state, LP, 0, "SELL", "100.5", "4") is None  # 402
    assert liq(state, LP, 3000, "SELL", "100", "5") is None  # 902
    s = liq(state, LP, 7000, "SELL", "99.9", "1")  # 1001.9
    assert s == LiquidationSignal(
        direction=DOWN,
        side="SELL",
        first_time_ms=0,
        first_price="100.5",
        time_ms=7000,
        price="99.9",
        notional=D("1001.9"),
        count=3,
        path=((0, "100.5"), (3000, "100"), (7000, "99.9")),
    )
    assert str(s.notional) == "1001.9"


def test_liquidation_exactly_the_minimum_does_not_signal() -> None:
    state = LiquidationState()
    assert liq(state, LP, 0, "BUY", "100", "4") is None
    assert liq(state, LP, 1000, "BUY", "100", "6") is None  # exactly 1000
    s = liq(state, LP, 2000, "BUY", "0.01", "1")
    assert s is not None
    assert (s.direction, s.side, str(s.notional), s.count) == (UP, "BUY", "1000.01", 3)


def test_liquidation_window_boundary_is_inside() -> None:
    state = LiquidationState()
    liq(state, LP, 0, "SELL", "100", "6")
    s = liq(state, LP, 10_000, "SELL", "100", "5")
    assert s is not None
    assert s.first_time_ms == 0
    state = LiquidationState()
    liq(state, LP, 0, "SELL", "100", "6")
    assert liq(state, LP, 10_001, "SELL", "100", "5") is None


def test_liquidation_sides_are_independent() -> None:
    state = LiquidationState()
    assert liq(state, LP, 0, "SELL", "100", "6") is None
    assert liq(state, LP, 1000, "BUY", "100", "6") is None  # not 1200: its own side
    s = liq(state, LP, 2000, "BUY", "100", "5")
    assert s is not None
    assert (s.side, s.direction, s.notional, s.first_time_ms) == ("BUY", UP, D(1100), 1000)
    # the BUY signal did not empty the SELL window, nor start a SELL cooldown
    s = liq(state, LP, 3000, "SELL", "100", "5")
    assert s is not None
    assert (s.side, s.direction, s.notional, s.count) == ("SELL", DOWN, D(1100), 2)


def test_liquidation_signal_starts_a_new_cluster_and_a_cooldown_per_side() -> None:
    p = LiquidationParams(window_ms=10_000, min_notional=D(1000), cooldown_ms=5000)
    state = LiquidationState()
    assert liq(state, p, 0, "SELL", "100", "11") is not None
    assert liq(state, p, 1000, "BUY", "100", "11") is not None  # other side: not quiet
    assert liq(state, p, 1000, "SELL", "100", "11") is None  # quiet until 5000
    assert liq(state, p, 4999, "SELL", "100", "1") is None
    s = liq(state, p, 5000, "SELL", "100", "1")
    assert s is not None  # only the orders after the signal: 1100 + 100 + 100
    assert (s.first_time_ms, s.notional, s.count) == (1000, D(1300), 3)
    assert liq(state, p, 6000, "BUY", "100", "11") is not None  # BUY quiet until 6000


def test_liquidation_side_must_be_buy_or_sell() -> None:
    with pytest.raises(ValueError, match="BUY or SELL"):
        liq(LiquidationState(), LP, 0, "sell", "1", "1")
    with pytest.raises(ValueError, match="min_notional"):
        LiquidationParams(1000, D(-1), 0)


# --- premium and funding -------------------------------------------------------------

TP = ThresholdParams(threshold_pct=D("0.5"), cooldown_ms=0)


def values(state: ThresholdState, p: ThresholdParams, vs: list[tuple[int, str]]) -> list[str]:
    out = []
    for t, v in vs:
        s = state.observe(p, t, D(v))
        if s is not None:
            out.append(f"{s.direction.value} {s.time_ms} {s.value}")
    return out


def test_threshold_crossing_signals_once_and_rearms_inside() -> None:
    ticks = [(0, "0.1"), (1, "0.5"), (2, "0.51"), (3, "0.9"), (4, "0.6"), (5, "0.5"), (6, "0.7")]
    assert values(ThresholdState(), TP, ticks) == ["up 2 0.51", "up 6 0.7"]


def test_threshold_negative_values_signal_down() -> None:
    ticks = [(0, "-0.5"), (1, "-0.50001"), (2, "0"), (3, "-1")]
    assert values(ThresholdState(), TP, ticks) == ["down 1 -0.50001", "down 3 -1"]


def test_threshold_sign_flip_without_a_tick_inside_does_not_rearm() -> None:
    ticks = [(0, "0.8"), (1, "-0.8"), (2, "0.8"), (3, "-0.5"), (4, "-0.8")]
    assert values(ThresholdState(), TP, ticks) == ["up 0 0.8", "down 4 -0.8"]


def test_threshold_crossing_during_the_cooldown_signals_when_it_ends() -> None:
    p = ThresholdParams(threshold_pct=D("0.5"), cooldown_ms=1000)
    ticks = [(0, "0.6"), (100, "0"), (200, "0.7"), (999, "0.7"), (1000, "0.65"), (1100, "0.9")]
    assert values(ThresholdState(), p, ticks) == ["up 0 0.6", "up 1000 0.65"]
    # back inside during the cooldown and still inside after it: nothing
    ticks = [(0, "0.6"), (100, "0"), (200, "0.7"), (300, "0.1"), (1000, "0.2")]
    assert values(ThresholdState(), p, ticks) == ["up 0 0.6"]


def test_threshold_signal_is_exact() -> None:
    s = ThresholdState().observe(TP, 7, D("-0.75000"))
    assert s == ThresholdSignal(DOWN, 7, D("-0.75"))
    assert s is not None
    assert str(s.value) == "-0.75000"
    with pytest.raises(ValueError, match="threshold_pct"):
        ThresholdParams(D(-1), 0)


def test_premium_and_funding_in_percent_exactly() -> None:
    assert premium_pct(D("100.05"), D("100")) == D("0.05")  # float: 0.04999999999999716
    assert str(premium_pct(D("99.5"), D("100.0"))) == "-0.5"
    assert premium_pct(D(1), D(0)) is None
    assert premium_pct(D(1), D(-1)) is None
    third = premium_pct(D(4), D(3))
    assert third is not None
    assert str(third) == "33." + "3" * 78  # non-terminating: 80 significant digits
    assert str(funding_pct(D("0.00010000"))) == "0.01000000"
    assert funding_pct(D("-0.0375")) == D("-3.75")


# --- downsample ----------------------------------------------------------------------


def test_downsample_keeps_extremes_of_each_bucket_in_time_order() -> None:
    pts = [(i, p) for i, p in enumerate(["5", "9", "1", "4", "4", "2", "7", "6", "3.0", "5"])]
    # limit 6: first, last, and two buckets of the 8 inner points: [1..4], [5..8]; the
    # highest comes first in one, the lowest in the other
    assert downsample(pts, 6) == ((0, "5"), (1, "9"), (2, "1"), (5, "2"), (6, "7"), (9, "5"))
    flat = [(i, "1.0" if i % 2 else "1") for i in range(10)]  # equal prices: one per bucket
    assert downsample(flat, 6) == ((0, "1"), (1, "1.0"), (5, "1.0"), (9, "1.0"))
    assert downsample(pts, 2) == downsample(pts, 3) == ((0, "5"), (9, "5"))
    assert downsample([], 5) == ()
    assert downsample(pts, 10) == tuple(pts)
    with pytest.raises(ValueError, match="room"):
        downsample(pts, 1)


point_steps = st.tuples(
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=1, max_value=30).map(lambda n: f"{n / 10}"),
)


def path_of(steps: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(time step, price) -> (time, price)."""
    times = itertools.accumulate(d for d, _ in steps)
    return list(zip(times, [p for _, p in steps], strict=True))


points = st.one_of(
    st.lists(point_steps, max_size=25),
    st.lists(point_steps, min_size=PATH_POINTS + 1, max_size=150),  # always reduced
).map(path_of)


def is_subsequence(short: tuple[tuple[int, str], ...], long: list[tuple[int, str]]) -> bool:
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


@settings(max_examples=150, deadline=None)
@given(pts=points, limit=st.one_of(st.just(PATH_POINTS), st.integers(min_value=2, max_value=20)))
def test_downsample_properties(pts: list[tuple[int, str]], limit: int) -> None:
    got = downsample(pts, limit)
    assert len(got) <= limit
    if len(pts) <= limit:
        assert got == tuple(pts)
        return
    assert len(got) >= 2 + (limit - 2) // 2  # no bucket is empty
    assert (got[0], got[-1]) == (pts[0], pts[-1])
    assert is_subsequence(got, pts)
    if limit >= 4:
        prices = [D(p) for _, p in pts]
        kept = [D(p) for _, p in got]
        assert (min(kept), max(kept)) == (min(prices), max(prices))


# --- properties against brute-force reference models ---------------------------------
#
# Each tick carries the index of the parameter set it is observed with, so the models
# also cover parameters that change between ticks. A model keeps the whole history and
# marks a trade forgotten once it was older than a tick's horizon (what the state evicts).

steps = st.sampled_from([0, 0, 250, 500, 1000, 1500])


def timed(raw: list[tuple[int, int, str, str]]) -> list[tuple[int, int, str, str]]:
    """(parameter index, time step, a, b) -> (parameter index, time, a, b)."""
    t, out = 0, []
    for k, d, a, b in raw:
        t += d
        out.append((k, t, a, b))
    return out


volume_params = st.builds(
    vparams,
    window_ms=st.sampled_from([500, 1000, 2000]),
    baseline_ms=st.sampled_from([1000, 2000, 3000]),
    multiple=st.sampled_from(["0", "1", "1", "1.5", "2", "3"]),
    min_notional=st.sampled_from(["0", "3", "6", "10"]),
    cooldown_ms=st.sampled_from([0, 500, 2000]),
)
volume_ticks = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1),
        steps,
        st.sampled_from(["1", "2", "2.0", "3", "5"]),
        st.sampled_from(["1", "2", "0.5", "3"]),
    ),
    min_size=5,
    max_size=60,
).map(timed)


def volume_reference(
    params: list[VolumeParams], ticks: list[tuple[int, int, str, str]]
) -> list[VolumeSignal]:
    hist: list[tuple[int, Decimal, str, Fraction]] = []
    kept: list[bool] = []
    out: list[VolumeSignal] = []
    last: tuple[int, int] | None = None  # (time, index) of the last signal
    for i, (k, t, price, qty) in enumerate(ticks):
        p = params[k % len(params)]
        hist.append((t, D(price), price, Fraction(D(price) * D(qty))))
        kept.append(True)
        edge = t - p.window_ms
        horizon = edge - p.baseline_ms
        for j in range(i + 1):
            if hist[j][0] < horizon:
                kept[j] = False
        if hist[0][0] > horizon:
            continue
        if last is not None and t < last[0] + p.cooldown_ms:
            continue
        win = [
            j
            for j in range(i + 1)
            if kept[j] and hist[j][0] >= edge and (last is None or j > last[1])
        ]
        base = [j for j in range(i + 1) if kept[j] and hist[j][0] < edge]
        ws = sum((hist[j][3] for j in win), Fraction(0))
        bs = sum((hist[j][3] for j in base), Fraction(0))
        multiple = Fraction(p.multiple)
        if not (
            bs > 0
            and ws >= Fraction(p.min_notional)
            and ws * p.baseline_ms > multiple * bs * p.window_ms
        ):
            continue
        wd = D(ws.numerator) / D(ws.denominator)  # exact: the sums are short decimals
        bd = D(bs.numerator) / D(bs.denominator)
        out.append(
            VolumeSignal(
                direction=UP if hist[i][1] >= hist[win[0]][1] else DOWN,
                base_time_ms=hist[win[0]][0],
                base_price=hist[win[0]][2],
                time_ms=t,
                price=price,
                window_notional=wd,
                baseline_notional=bd,
                trades=len(win),
                ratio=WIDE.divide(wd * p.baseline_ms, bd * p.window_ms),
                path=downsample([(hist[j][0], hist[j][2]) for j in win]),
            )
        )
        last = (t, i)
    return out


@settings(max_examples=300, deadline=None)
@given(params=st.lists(volume_params, min_size=1, max_size=2), ticks=volume_ticks)
def test_volume_matches_the_reference_model(
    params: list[VolumeParams], ticks: list[tuple[int, int, str, str]]
) -> None:
    check_volume(params, ticks)


def check_volume(params: list[VolumeParams], ticks: list[tuple[int, int, str, str]]) -> None:
    state = VolumeState()
    got = []
    for k, t, price, qty in ticks:
        s = trade(state, params[k % len(params)], t, price, qty)
        if s is not None:
            got.append(s)
    assert got == volume_reference(params, ticks)


# Two parameter sets that differ a lot: switching between them often pulls trades back
# out of the baseline, also trades spent by an earlier signal.
changing_volume_params = st.lists(
    st.builds(
        vparams,
        window_ms=st.sampled_from([500, 2500]),
        baseline_ms=st.sampled_from([1000, 2000]),
        multiple=st.sampled_from(["0", "1", "1.5"]),
        min_notional=st.sampled_from(["0", "3"]),
        cooldown_ms=st.sampled_from([0, 500]),
    ),
    min_size=2,
    max_size=2,
)


@settings(max_examples=300, deadline=None)
@given(params=changing_volume_params, ticks=volume_ticks)
def test_volume_with_changing_parameters_matches_the_reference_model(
    params: list[VolumeParams], ticks: list[tuple[int, int, str, str]]
) -> None:
    check_volume(params, ticks)


liquidation_params = st.builds(
    LiquidationParams,
    window_ms=st.sampled_from([0, 500, 1000, 3000]),
    min_notional=st.sampled_from([D(0), D(5), D(10), D(20)]),
    cooldown_ms=st.sampled_from([0, 1000, 3000]),
)
liquidation_ticks = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1),
        steps,
        st.sampled_from(["BUY", "SELL"]),
        st.sampled_from(["1:1", "2:2", "2.0:3", "5:1", "3:0.5"]),  # price:quantity
    ),
    min_size=3,
    max_size=60,
).map(timed)


def liquidation_reference(
    params: list[LiquidationParams], ticks: list[tuple[int, int, str, str]]
) -> list[LiquidationSignal]:
    hist: list[tuple[int, str, str, Fraction]] = []
    kept: list[bool] = []
    last: dict[str, tuple[int, int]] = {}
    out: list[LiquidationSignal] = []
    for i, (k, t, side, order) in enumerate(ticks):
        p = params[k % len(params)]
        price, qty = order.split(":")
        hist.append((t, side, price, Fraction(D(price) * D(qty))))
        kept.append(True)
        for j in range(i + 1):
            if hist[j][0] < t - p.window_ms:
                kept[j] = False
        mine = last.get(side)
        if mine is not None and t < mine[0] + p.cooldown_ms:
            continue
        win = [
            j
            for j in range(i + 1)
            if kept[j] and hist[j][1] == side and (mine is None or j > mine[1])
        ]
        total = sum((hist[j][3] for j in win), Fraction(0))
        if total <= Fraction(p.min_notional):
            continue
        out.append(
            LiquidationSignal(
                direction=UP if side == "BUY" else DOWN,
                side=side,
                first_time_ms=hist[win[0]][0],
                first_price=hist[win[0]][2],
                time_ms=t,
                price=price,
                notional=D(total.numerator) / D(total.denominator),
                count=len(win),
                path=downsample([(hist[j][0], hist[j][2]) for j in win]),
            )
        )
        last[side] = (t, i)
    return out


@settings(max_examples=300, deadline=None)
@given(params=st.lists(liquidation_params, min_size=1, max_size=2), ticks=liquidation_ticks)
def test_liquidation_matches_the_reference_model(
    params: list[LiquidationParams], ticks: list[tuple[int, int, str, str]]
) -> None:
    state = LiquidationState()
    got = []
    for k, t, side, order in ticks:
        price, qty = order.split(":")
        s = liq(state, params[k % len(params)], t, side, price, qty)
        if s is not None:
            got.append(s)
    assert got == liquidation_reference(params, ticks)


threshold_params = st.builds(
    ThresholdParams,
    threshold_pct=st.sampled_from([D(0), D("0.1"), D("0.2")]),
    cooldown_ms=st.sampled_from([0, 1000, 3000]),
)
threshold_ticks = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1),
        steps,
        st.sampled_from(["-0.3", "-0.2", "-0.1", "0", "0.1", "0.10", "0.2", "0.3"]),
        st.just(""),
    ),
    min_size=3,
    max_size=60,
).map(timed)


def threshold_reference(
    params: list[ThresholdParams], ticks: list[tuple[int, int, str, str]]
) -> list[ThresholdSignal]:
    out: list[ThresholdSignal] = []
    last: tuple[int, int] | None = None
    for i, (k, t, v, _) in enumerate(ticks):
        p = params[k % len(params)]
        value = D(v)
        if abs(value) <= p.threshold_pct:
            continue
        # armed: no signal yet, or a value within its tick's threshold since the last one
        armed = last is None or any(
            abs(D(ticks[j][2])) <= params[ticks[j][0] % len(params)].threshold_pct
            for j in range(last[1] + 1, i)
        )
        if armed and (last is None or t >= last[0] + p.cooldown_ms):
            out.append(ThresholdSignal(UP if value > 0 else DOWN, t, value))
            last = (t, i)
    return out


@settings(max_examples=300, deadline=None)
@given(params=st.lists(threshold_params, min_size=1, max_size=2), ticks=threshold_ticks)
def test_threshold_matches_the_reference_model(
    params: list[ThresholdParams], ticks: list[tuple[int, int, str, str]]
) -> None:
    state = ThresholdState()
    got = []
    for k, t, v, _ in ticks:
        s = state.observe(params[k % len(params)], t, D(v))
        if s is not None:
            got.append(s)
    assert got == threshold_reference(params, ticks)
