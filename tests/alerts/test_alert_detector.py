"""The detector (pure): unit cases, and properties against a brute-force reference model."""

from __future__ import annotations

import fnmatch
import hashlib
import time
from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketd.alerts.detector import Detector, DetectorStatistics, alert_id, wall_ms
from marketd.alerts.model import Alert, Direction
from marketd.config.alerts import RuleSettings
from marketd.data.events import Tick

M, S = "usdm", "BTCUSDT"
RULE = RuleSettings(name="r", window_s=60.0, threshold_pct=2.0, cooldown_s=30.0)


def clock() -> int:
    return 42


def feed(det: Detector, ticks: list[tuple[int, str]], symbol: str = S) -> list[Alert]:
    out: list[Alert] = []
    for t, p in ticks:
        out.extend(det.observe(M, symbol, t, p))
    return out


def summary(alerts: list[Alert]) -> list[tuple[str, str, str, int, str, int]]:
    return [
        (a.rule, a.direction.value, a.base_price, a.base_time_ms, a.price, a.price_time_ms)
        for a in alerts
    ]


def test_pump_and_dump() -> None:
    det = Detector([RULE], clock=clock)
    up = feed(det, [(0, "100"), (1000, "101"), (2000, "102.01")])
    assert summary(up) == [("r", "up", "100", 0, "102.01", 2000)]
    a = up[0]
    assert a.change_pct == 2.01
    assert a.detected_at_ms == 42
    assert (a.window_s, a.threshold_pct, a.cooldown_s) == (60.0, 2.0, 30.0)
    assert a.id == alert_id(M, S, "r", 0, "100", 2000, "102.01")
    det2 = Detector([RULE], clock=clock)
    down = feed(det2, [(0, "50.00"), (5000, "48.99")])
    assert summary(down) == [("r", "down", "50.00", 0, "48.99", 5000)]
    assert down[0].direction is Direction.DOWN
    assert down[0].change_pct == -2.02


def test_exactly_the_threshold_does_not_alert() -> None:
    det = Detector([RULE], clock=clock)
    assert feed(det, [(0, "100"), (1000, "102"), (2000, "98"), (3000, "102.0000")]) == []
    # a hair above does
    assert summary(feed(det, [(4000, "102.00000001")]))[0][1] == "up"


def test_exact_decimal_comparison_where_float_is_wrong() -> None:
    # 0.1 + 2 % of it = 0.102 exactly; float(0.102) - float(0.1) is slightly more than 0.002.
    det = Detector([RULE], clock=clock)
    assert feed(det, [(0, "0.1"), (1, "0.102")]) == []
    assert feed(Detector([RULE]), [(0, "0.1"), (1, "0.09799999999999999999")]) != []


def test_window_uses_oldest_price_inside_and_boundary_is_inside() -> None:
    det = Detector([RULE], clock=clock)
    # base 100 at t=0 is still inside at t=60000 (boundary inside) ...
    assert summary(feed(det, [(0, "100"), (30_000, "101"), (60_000, "102.5")])) == [
        ("r", "up", "100", 0, "102.5", 60_000)
    ]
    det = Detector([RULE], clock=clock)
    # ... and gone at 60001: the base is then 101 (+1.49 %), no alert.
    assert feed(det, [(0, "100"), (30_000, "101"), (60_001, "102.5")]) == []


def test_cooldown_and_base_reset_one_move_alerts_once() -> None:
    det = Detector([RULE], clock=clock)
    # jump to 103 and stay there for two minutes: one alert, not one per cooldown
    ticks = [(0, "100"), (1000, "103")] + [(t, "103") for t in range(2000, 120_000, 1000)]
    alerts = feed(det, ticks)
    assert summary(alerts) == [("r", "up", "100", 0, "103", 1000)]


def test_quiet_during_cooldown_then_a_second_leg_alerts() -> None:
    det = Detector([RULE], clock=clock)
    ticks = [(0, "100"), (1000, "103"), (10_000, "106")]  # second leg inside the cooldown
    assert summary(feed(det, ticks)) == [("r", "up", "100", 0, "103", 1000)]
    # after the cooldown (t >= 31000) the base is the oldest price since the alert: 103
    later = feed(det, [(31_000, "106")])
    assert summary(later) == [("r", "up", "103", 1000, "106", 31_000)]


def test_reverting_spike_alerts_both_ways_after_cooldown() -> None:
    det = Detector([RuleSettings(name="r", cooldown_s=0.0)], clock=clock)
    alerts = feed(det, [(0, "100"), (1000, "105"), (2000, "100")])
    assert [a.direction for a in alerts] == [Direction.UP, Direction.DOWN]
    assert summary(alerts)[1][2:] == ("105", 1000, "100", 2000)


def test_out_of_order_and_duplicates_are_dropped_and_counted() -> None:
    det = Detector([RULE], clock=clock)
    assert feed(det, [(5000, "100"), (5000, "100"), (4000, "90"), (5000, "100.5")]) == []
    stats = det.statistics()
    assert (stats.ticks, stats.duplicates, stats.out_of_order) == (2, 1, 1)
    assert stats.last_event_time_ms == 5000
    # same time, different price: used (several trades in one millisecond)
    assert summary(feed(det, [(5000, "103")])) == [("r", "up", "100", 5000, "103", 5000)]


def test_invalid_prices_are_dropped() -> None:
    det = Detector([RULE], clock=clock)
    assert feed(det, [(0, "abc"), (1, "0"), (2, "-1"), (3, "NaN"), (4, "inf"), (5, "1")]) == []
    assert det.statistics().invalid == 5
    assert det.statistics().ticks == 1


def test_symbols_are_independent() -> None:
    det = Detector([RULE], clock=clock)
    feed(det, [(0, "100")], "A")
    feed(det, [(0, "10")], "B")
    assert feed(det, [(1000, "10.1")], "B") == []
    assert summary(feed(det, [(1000, "103")], "A"))[0][1] == "up"


def test_several_rules_each_with_its_own_state() -> None:
    fast = RuleSettings(name="fast", window_s=5.0, threshold_pct=1.0, cooldown_s=0.0)
    slow = RuleSettings(name="slow", window_s=60.0, threshold_pct=3.0, cooldown_s=30.0)
    det = Detector([fast, slow], clock=clock)
    ticks = [(0, "100"), (4000, "101.5"), (20_000, "102.5"), (25_000, "103.1")]
    got = summary(feed(det, ticks))
    assert got == [
        ("fast", "up", "100", 0, "101.5", 4000),
        ("slow", "up", "100", 0, "103.1", 25_000),
    ]
    assert det.statistics().alerts == {("fast", "up"): 1, ("slow", "up"): 1}


def test_ids_are_stable_across_a_restart_and_distinct_per_rule() -> None:
    ticks = [(0, "100"), (1000, "103"), (40_000, "100"), (80_000, "97")]
    rules = [RULE, RuleSettings(name="other", threshold_pct=2.5)]
    first = [a.id for a in feed(Detector(rules, clock=clock), ticks)]
    again = [a.id for a in feed(Detector(rules, clock=lambda: 7), ticks)]
    assert first == again
    assert len(set(first)) == len(first) >= 3


def test_replacing_rules_keeps_state_by_name() -> None:
    det = Detector([RULE], clock=clock)
    feed(det, [(0, "100"), (1000, "101")])
    # a lower threshold applies at once against the kept window (base 100)
    det.set_rules([RuleSettings(name="r", threshold_pct=1.2), RuleSettings(name="new")])
    assert summary(feed(det, [(2000, "101.5")])) == [("r", "up", "100", 0, "101.5", 2000)]
    with pytest.raises(ValueError, match="given twice"):
        det.set_rules([RULE, RULE])
    with pytest.raises(ValueError, match="at least one rule"):
        det.set_rules([])


def test_replay_rebuilds_the_same_state() -> None:
    ticks = [(0, "100"), (1000, "103"), (10_000, "104"), (20_000, "104.5"), (35_000, "106.2")]
    whole = Detector([RULE], clock=clock)
    expected = feed(whole, ticks)
    assert len(expected) == 2
    # restart after the 3rd tick: replay the first three, re-applying the alert at t=1000
    det = Detector([RULE], clock=clock)
    for t, p in ticks[:3]:
        det.replay(M, S, t, p, ["r"] if t == 1000 else [])
    assert [a.id for a in feed(det, ticks[3:])] == [expected[1].id]


def test_change_pct_is_rounded_to_four_decimals() -> None:
    det = Detector([RULE], clock=clock)
    [a] = feed(det, [(0, "3"), (1, "3.1")])
    assert a.change_pct == 3.3333  # 10/3 %: display rounding only, the prices stay exact


def test_alert_carries_its_instrument_and_its_id_is_24_hex_digits_of_sha1() -> None:
    det = Detector([RULE], clock=clock)
    assert det.observe("spot", "ETHUSDT", 0, "100") == ()
    [a] = det.observe("spot", "ETHUSDT", 1, "103")
    assert (a.market, a.symbol) == ("spot", "ETHUSDT")
    # Written out so a change of the digest (length, input, algorithm) cannot go unseen:
    # downstream deduplication relies on ids being stable across versions.
    text = "spot|ETHUSDT|r|0|100|1|103"
    assert a.id == hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:24]
    assert a.id == "091c18e7028d0417f83616ee"


def test_default_clock_is_wall_time_in_whole_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    now = wall_ms()
    after = time.time_ns() // 1_000_000
    assert type(now) is int
    assert before <= now <= after
    [a] = feed(Detector([RULE]), [(0, "100"), (1, "103")])
    assert before <= a.detected_at_ms <= time.time_ns() // 1_000_000


def test_statistics_of_a_new_detector_are_zero() -> None:
    assert Detector([RULE], clock=clock).statistics() == DetectorStatistics(
        ticks=0, duplicates=0, out_of_order=0, invalid=0, alerts={}, instruments=0,
        last_event_time_ms=0,
    )  # fmt: skip


def test_statistics_count_every_drop_and_every_alert() -> None:
    det = Detector([RULE], clock=clock)
    ticks = [
        (10_000, "100"), (10_000, "100"), (10_000, "100"),  # two duplicates
        (9_000, "100"), (8_000, "99"),  # two out of order
        (11_000, "x"), (11_000, "0"),  # two invalid
        (12_000, "103"),  # up
        (50_000, "106.5"),  # up again after the cooldown, against the post-alert base
    ]  # fmt: skip
    assert summary(feed(det, ticks)) == [
        ("r", "up", "100", 10_000, "103", 12_000),
        ("r", "up", "103", 12_000, "106.5", 50_000),
    ]
    feed(det, [(20_000, "50")], symbol="ETHUSDT")
    assert det.statistics() == DetectorStatistics(
        ticks=4, duplicates=2, out_of_order=2, invalid=2, alerts={("r", "up"): 2},
        instruments=2, last_event_time_ms=50_000,
    )  # fmt: skip


def test_observe_many_keeps_each_ticks_instrument() -> None:
    det = Detector([RULE], clock=clock)
    alerts = det.observe_many(
        [Tick("spot", "A", 0, "1"), Tick("usdm", "A", 0, "5"), Tick("spot", "B", 0, "9"),
         Tick("usdm", "A", 1, "5.2"), Tick("spot", "A", 1, "1.03")]
    )  # fmt: skip
    assert [(a.market, a.symbol, a.base_price, a.price) for a in alerts] == [
        ("usdm", "A", "5", "5.2"),
        ("spot", "A", "1", "1.03"),
    ]


def test_forget_drops_the_instrument_and_its_next_tick_starts_fresh() -> None:
    det = Detector([RULE], clock=clock)
    feed(det, [(0, "100"), (10_000, "101")])
    feed(det, [(0, "7")], symbol="OTHER")
    det.forget(M, S)
    det.forget(M, "NEVER-SEEN")  # not an error: the input may have moved before any tick
    assert det.statistics().instruments == 1
    # Older than the forgotten newest tick, yet not out of order; its own price is the
    # base (the forgotten 100 is not: 103 would be a 3 % jump against it).
    assert feed(det, [(5_000, "103")]) == []
    assert summary(feed(det, [(6_000, "105.1")])) == [("r", "up", "103", 5_000, "105.1", 6_000)]
    assert (det.statistics().out_of_order, det.statistics().instruments) == (0, 2)
    # The other instrument kept its state.
    assert summary(feed(det, [(1_000, "7.2")], symbol="OTHER")) == [
        ("r", "up", "7", 0, "7.2", 1_000)
    ]


def test_restored_alert_time_keeps_the_cooldown_over_a_restart() -> None:
    # Before the restart "r" alerted at t=1000; its tick is not replayed (older than the
    # replayed range), so only the restored time keeps the move from alerting twice.
    other = RuleSettings(name="other", window_s=60.0, threshold_pct=3.0, cooldown_s=30.0)
    det = Detector([RULE, other], clock=clock)
    det.restore_alert(M, S, "r", 1_000)
    assert det.statistics().instruments == 1
    ticks = [(0, "100"), (5_000, "103.5"), (31_000, "103.5")]
    assert summary(feed(det, ticks)) == [
        ("other", "up", "100", 0, "103.5", 5_000),  # not restored: not quiet
        ("r", "up", "100", 0, "103.5", 31_000),  # quiet until 1000 + 30 s
    ]
    # Other instruments are not affected.
    assert summary(feed(det, [(0, "100"), (5_000, "103.5")], symbol="ETHUSDT"))[0][0] == "r"


def test_restore_alert_reaches_a_rule_added_after_the_instrument() -> None:
    det = Detector([RULE], clock=clock)
    feed(det, [(0, "100")])
    b = RuleSettings(name="b", window_s=60.0, threshold_pct=2.0, cooldown_s=30.0)
    det.set_rules([RULE, b])
    det.restore_alert(M, S, "b", 1_000)
    # "b" starts with an empty window at 2000 and is quiet until 31000; "r" is not.
    assert summary(feed(det, [(2_000, "100"), (3_000, "103.5")])) == [
        ("r", "up", "100", 0, "103.5", 3_000)
    ]
    assert summary(feed(det, [(31_000, "103.5")])) == [("b", "up", "100", 2_000, "103.5", 31_000)]


def test_replay_drops_out_of_order_ticks_like_observe() -> None:
    det = Detector([RULE], clock=clock)
    for t, p in [(0, "100"), (5_000, "101"), (3_000, "103")]:
        det.replay(M, S, t, p)
    # 5000 stays the newest time: 4000 is out of order, and 103 never became a price.
    assert feed(det, [(4_000, "103")]) == []
    stats = det.statistics()
    assert (stats.ticks, stats.out_of_order, stats.duplicates) == (0, 1, 0)


def test_replay_drops_a_duplicate_even_with_alert_names() -> None:
    det = Detector([RULE], clock=clock)
    det.replay(M, S, 0, "100")
    det.replay(M, S, 1_000, "101")
    det.replay(M, S, 1_000, "101", ["r"])  # a duplicate: not the alert tick again
    assert summary(feed(det, [(2_000, "102.5")])) == [("r", "up", "100", 0, "102.5", 2_000)]


def test_replay_keeps_several_trades_of_one_millisecond() -> None:
    det = Detector([RULE], clock=clock)
    det.replay(M, S, 0, "100")
    det.replay(M, S, 1_000, "100.5")
    det.replay(M, S, 1_000, "103", ["r"])  # same time, another price: it alerted last time
    assert feed(det, [(2_000, "106")]) == []  # quiet, base reset to 103
    assert summary(feed(det, [(31_000, "106")])) == [("r", "up", "103", 1_000, "106", 31_000)]


def test_replay_skips_invalid_prices() -> None:
    det = Detector([RULE], clock=clock)
    for p in ["abc", "0", "-1", "NaN", "inf"]:
        det.replay(M, S, 5_000, p)
    det.replay(M, S, 0, "100")  # not out of order: the invalid ticks set no time
    assert summary(feed(det, [(1_000, "103")])) == [("r", "up", "100", 0, "103", 1_000)]
    assert (det.statistics().ticks, det.statistics().out_of_order) == (1, 0)


def test_a_replayed_tick_is_the_last_one_for_duplicates() -> None:
    det = Detector([RULE], clock=clock)
    det.replay(M, S, 1_000, "100")
    assert feed(det, [(1_000, "100")]) == []
    stats = det.statistics()
    assert (stats.ticks, stats.duplicates) == (0, 1)


def test_replay_window_boundary_is_inside() -> None:
    det = Detector([RULE], clock=clock)
    det.replay(M, S, 0, "100")
    det.replay(M, S, 60_000, "101")  # t=0 is exactly one window old: still inside
    assert summary(feed(det, [(60_000, "102.5")])) == [("r", "up", "100", 0, "102.5", 60_000)]


A = RuleSettings(name="a", window_s=60.0, threshold_pct=2.0, cooldown_s=30.0)
B = RuleSettings(name="b", window_s=60.0, threshold_pct=5.0, cooldown_s=0.0)


def test_reordered_rules_keep_their_state_by_name() -> None:
    det = Detector([A, B], clock=clock)
    assert summary(feed(det, [(0, "100"), (1_000, "103")])) == [("a", "up", "100", 0, "103", 1_000)]
    det.set_rules([B, A])
    # "a" is quiet (cooldown) with its window reset; "b" still has base 100.
    assert summary(feed(det, [(2_000, "106")])) == [("b", "up", "100", 0, "106", 2_000)]
    assert summary(feed(det, [(31_000, "106")])) == [("a", "up", "103", 1_000, "106", 31_000)]


def test_a_removed_rule_takes_its_state_with_it() -> None:
    det = Detector([A, B], clock=clock)
    feed(det, [(0, "100"), (1_000, "103")])  # "a" alerts, its window resets to 103
    det.set_rules([B])
    assert summary(feed(det, [(2_000, "106")])) == [("b", "up", "100", 0, "106", 2_000)]
    assert det.statistics().alerts == {("a", "up"): 1, ("b", "up"): 1}


def test_a_renamed_rule_starts_empty() -> None:
    det = Detector([A], clock=clock)
    feed(det, [(0, "100")])
    det.set_rules([RuleSettings(name="c", window_s=60.0, threshold_pct=2.0, cooldown_s=30.0)])
    assert feed(det, [(1_000, "103")]) == []  # the old base 100 belonged to "a"
    assert summary(feed(det, [(2_000, "106.1")])) == [("c", "up", "103", 1_000, "106.1", 2_000)]
    assert summary(feed(det, [(40_000, "100")])) == [("c", "down", "106.1", 2_000, "100", 40_000)]


def test_invalid_rule_sets_report_every_problem() -> None:
    det = Detector([RULE], clock=clock)
    twice = "rule name 'r' is given twice (names must be unique)"
    with pytest.raises(ValueError, match="given twice") as info:
        det.set_rules([RULE, RULE, RULE])
    assert str(info.value) == f"{twice}; {twice}"
    assert det.rules == (RULE,)  # unchanged


# --- properties against a brute-force reference ---------------------------------------


def reference(rules: list[RuleSettings], ticks: list[tuple[str, int, str]]) -> list[tuple]:
    """Recompute every decision from the full tick history, by the documented rules."""
    accepted: list[tuple[str, int, Decimal, str]] = []  # in order
    last: dict[str, tuple[int, str]] = {}
    out = []
    last_alert: dict[tuple[str, str], tuple[int, int]] = {}  # (symbol, rule) -> (time, index)
    for symbol, t, p in ticks:
        if symbol in last:
            lt, lp = last[symbol]
            if t < lt or (t == lt and p == lp):
                continue
        last[symbol] = (t, p)
        accepted.append((symbol, t, Decimal(p), p))
        i = len(accepted) - 1
        for rule in rules:
            w = round(rule.window_s * 1000)
            c = round(rule.cooldown_s * 1000)
            la = last_alert.get((symbol, rule.name))
            if la is not None and t < la[0] + c:
                continue
            since = la[1] if la is not None else 0
            candidates = [
                j
                for j in range(since, i + 1)
                if accepted[j][0] == symbol and accepted[j][1] >= t - w
            ]
            base = accepted[candidates[0]]
            change = (Decimal(p) - base[2]) * 100 / base[2]
            threshold = Decimal(repr(rule.threshold_pct))
            if abs(change) > threshold:
                direction = "up" if change > 0 else "down"
                out.append((symbol, rule.name, direction, base[3], base[1], p, t))
                last_alert[(symbol, rule.name)] = (t, i)
    return out


prices = st.integers(min_value=90, max_value=110).map(lambda n: f"{n / 10:.1f}")
tick_lists = st.lists(
    st.tuples(st.sampled_from(["A", "B"]), st.integers(min_value=0, max_value=4), prices),
    max_size=60,
).map(
    # mostly increasing times with some going back (out of order) and repeats
    lambda steps: [
        (s, sum(d for _, d, _ in steps[: i + 1]) * 1000 - (3000 if i % 7 == 6 else 0), p)
        for i, (s, _, p) in enumerate(steps)
    ]
)
rule_sets = st.lists(
    st.builds(
        RuleSettings,
        window_s=st.sampled_from([1.0, 3.0, 5.0, 10.0]),
        threshold_pct=st.sampled_from([1.0, 2.0, 5.0, 10.0, 1.11]),
        cooldown_s=st.sampled_from([0.0, 1.0, 4.0, 20.0]),
    ),
    min_size=1,
    max_size=3,
).map(lambda rs: [RuleSettings(f"r{i}", r.window_s, r.threshold_pct, r.cooldown_s)
                  for i, r in enumerate(rs)])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(rules=rule_sets, ticks=tick_lists)
def test_matches_the_reference_model(
    rules: list[RuleSettings], ticks: list[tuple[str, int, str]]
) -> None:
    det = Detector(rules, clock=clock)
    got = []
    for symbol, t, p in ticks:
        for a in det.observe(M, symbol, t, p):
            got.append((a.symbol, a.rule, a.direction.value, a.base_price, a.base_time_ms,
                        a.price, a.price_time_ms))  # fmt: skip
    assert got == reference(rules, ticks)


@settings(max_examples=100, deadline=None)
@given(rules=rule_sets, ticks=tick_lists, cut=st.integers(min_value=0, max_value=60))
def test_replay_then_continue_matches_uninterrupted(
    rules: list[RuleSettings], ticks: list[tuple[str, int, str]], cut: int
) -> None:
    whole = Detector(rules, clock=clock)
    fired: dict[int, list[str]] = {}
    expected = []
    for i, (symbol, t, p) in enumerate(ticks):
        alerts = whole.observe(M, symbol, t, p)
        fired[i] = [a.rule for a in alerts]
        if i >= cut:
            expected += [a.id for a in alerts]
    det = Detector(rules, clock=clock)
    for i, (symbol, t, p) in enumerate(ticks[:cut]):
        det.replay(M, symbol, t, p, fired[i])
    got = [a.id for symbol, t, p in ticks[cut:] for a in det.observe(M, symbol, t, p)]
    assert got == expected


def test_observe_many_takes_ticks() -> None:
    det = Detector([RULE], clock=clock)
    alerts = det.observe_many([Tick(M, S, 0, "1"), Tick(M, S, 1, "1.03")])
    assert summary(alerts) == [("r", "up", "1", 0, "1.03", 1)]


# --- rule filters against a model that filters the unfiltered detector's alerts ---------

filter_ticks = st.lists(
    st.tuples(
        st.sampled_from(["spot", "usdm"]),
        st.sampled_from(["BTCUSDT", "ETHUSDT", "BTCDOWNUSDT", "XRPBTC"]),
        st.integers(min_value=0, max_value=3),
        prices,
        st.sampled_from(["", "", "0", "1000", "5e7", "2e8", "junk"]),
    ),
    max_size=80,
).map(
    lambda steps: [
        (
            m,
            s,
            sum(d for _, _, d, _, _ in steps[: i + 1]) * 1000 - (3000 if i % 9 == 8 else 0),
            p,
            v,
        )
        for i, (m, s, _, p, v) in enumerate(steps)
    ]
)
filters = st.fixed_dictionaries(
    {
        "symbols": st.sampled_from([(), ("BTC*",), ("*USDT",), ("ETH*", "XRP?TC")]),
        "exclude": st.sampled_from([(), ("*DOWN*",), ("ETH*",)]),
        "markets": st.sampled_from([(), ("spot",), ("usdm",), ("spot", "usdm")]),
        "min_quote_volume_24h": st.sampled_from([0.0, 1.0, 1000.0, 1e8]),
    }
)


def passes(rule: RuleSettings, market: str, symbol: str, volume: float | None) -> bool:
    """The filters as documented, written plainly."""
    if rule.markets and market not in rule.markets:
        return False
    if rule.symbols and not any(fnmatch.fnmatchcase(symbol, g) for g in rule.symbols):
        return False
    if any(fnmatch.fnmatchcase(symbol, g) for g in rule.exclude):
        return False
    m = rule.min_quote_volume_24h
    return not m or (volume is not None and volume >= m)


@settings(max_examples=300, deadline=None)
@given(rules=rule_sets, ticks=filter_ticks, data=st.data())
def test_filters_only_remove_alerts_as_the_model_says(
    rules: list[RuleSettings], ticks: list[tuple[str, str, int, str, str]], data: st.DataObject
) -> None:
    chosen = [data.draw(filters) for _ in rules]
    filtered_rules = [attrs.evolve(r, **f) for r, f in zip(rules, chosen, strict=True)]
    plain = Detector(rules, clock=clock)
    filtered = Detector(filtered_rules, clock=clock)
    # Each rule on its own too: a filtered rule must not change another rule's alerts.
    alone = [Detector([r], clock=clock) for r in filtered_rules]
    by_name = {r.name: r for r in filtered_rules}
    volume: dict[tuple[str, str], float] = {}
    last: dict[tuple[str, str], tuple[int, str]] = {}
    expected: list[str] = []
    got: list[str] = []
    got_named: list[tuple[str, str]] = []
    got_alone: list[tuple[str, str]] = []
    for market, symbol, t, p, v in ticks:
        key = (market, symbol)
        accepted = key not in last or not (
            t < last[key][0] or (t == last[key][0] and p == last[key][1])
        )
        if accepted:
            last[key] = (t, p)
            if v and v != "junk":  # an unreadable volume keeps the last one known
                volume[key] = float(v)
        for a in plain.observe(market, symbol, t, p, v):
            if passes(by_name[a.rule], market, symbol, volume.get(key)):
                expected.append(a.id)
        found = filtered.observe(market, symbol, t, p, v)
        got += [a.id for a in found]
        got_named += [(a.rule, a.id) for a in found]
        for det in alone:
            got_alone += [(a.rule, a.id) for a in det.observe(market, symbol, t, p, v)]
    assert got == expected
    for name in by_name:  # each rule alone raises the same alerts as in company
        mine = [i for rule, i in got_alone if rule == name]
        assert mine == [i for rule, i in got_named if rule == name]


def test_symbol_and_market_filters_select_instruments() -> None:
    rule = RuleSettings(name="f", symbols=("btc*", "ETH*"), exclude=("*DOWN*",), markets=("usdm",))
    det = Detector([rule], clock=clock)
    fired = []
    for market, symbol in [
        ("usdm", "BTCUSDT"),
        ("usdm", "ETHUSDT"),
        ("usdm", "BTCDOWNUSDT"),
        ("spot", "BTCUSDT"),
        ("usdm", "XRPUSDT"),
    ]:
        det.observe(market, symbol, 0, "100")
        fired += [(a.market, a.symbol) for a in det.observe(market, symbol, 1, "110")]
    assert fired == [("usdm", "BTCUSDT"), ("usdm", "ETHUSDT")]
    assert det.statistics().ticks == 10  # filtered instruments still count as seen


def test_a_volume_known_later_enables_the_rule_from_then_on() -> None:
    det = Detector([attrs.evolve(RULE, min_quote_volume_24h=1e6)], clock=clock)
    assert feed(det, [(0, "100"), (1000, "110")]) == []  # volume unknown: withheld
    assert det.observe(M, S, 2000, "110", "5e5") == ()  # known, too small
    assert det.observe(M, S, 40_000, "121", "2e6") != ()  # big enough (and quiet is over)
    # a price tick without volume keeps the last known one
    assert summary(feed(det, [(80_000, "140")])) == [("r", "up", "121", 40_000, "140", 80_000)]


def test_ticks_carry_the_volume_to_observe_many() -> None:
    det = Detector([attrs.evolve(RULE, min_quote_volume_24h=10)], clock=clock)
    alerts = det.observe_many([Tick(M, S, 0, "1", "5"), Tick(M, S, 1, "1.03", "20")])
    assert summary(alerts) == [("r", "up", "1", 0, "1.03", 1)]


def test_changing_a_rules_filters_applies_to_known_instruments() -> None:
    det = Detector([RULE], clock=clock)
    feed(det, [(0, "100")])
    det.set_rules([attrs.evolve(RULE, exclude=("BTC*",))])
    assert feed(det, [(1000, "110")]) == []
    det.set_rules([RULE])
    assert feed(det, [(2000, "100"), (3000, "110")]) != []


# The price test is decided from limits kept per rule state (see _RuleState): these cases
# fail if a kept limit outlives the base or the threshold it was computed for.


def test_a_limit_follows_its_base_out_of_the_window() -> None:
    det = Detector([attrs.evolve(RULE, cooldown_s=0.0)], clock=clock)
    # limits of base 100 (up 102, down 98) are known after these
    assert feed(det, [(0, "100"), (1000, "101"), (30_000, "99")]) == []
    # from t=61_000 the base is 99 (t=30_000): 100.98 is exactly 2 % above it
    assert feed(det, [(61_000, "100.98")]) == []
    assert summary(feed(det, [(61_001, "100.99")])) == [("r", "up", "99", 30_000, "100.99", 61_001)]
    det = Detector([attrs.evolve(RULE, cooldown_s=0.0)], clock=clock)
    assert feed(det, [(0, "100"), (1000, "99"), (30_000, "101")]) == []
    # from t=61_000 the base is 101: 98.98 is exactly 2 % below it, 98.97 beyond
    assert feed(det, [(61_000, "98.98")]) == []
    assert summary(feed(det, [(61_001, "98.97")])) == [
        ("r", "down", "101", 30_000, "98.97", 61_001)
    ]


def test_a_new_threshold_applies_from_the_next_tick_to_the_kept_window() -> None:
    det = Detector([RULE], clock=clock)
    assert feed(det, [(0, "100"), (1000, "101.5"), (2000, "98.5")]) == []  # within 2 %
    det.set_rules([attrs.evolve(RULE, threshold_pct=1.0)])
    assert summary(feed(det, [(3000, "101.01")])) == [("r", "up", "100", 0, "101.01", 3000)]
    det = Detector([RULE], clock=clock)
    assert feed(det, [(0, "100"), (1000, "101.5"), (2000, "98.5")]) == []
    det.set_rules([attrs.evolve(RULE, threshold_pct=1.0)])
    assert summary(feed(det, [(3000, "98.99")])) == [("r", "down", "100", 0, "98.99", 3000)]
    # a higher threshold: the limits of the old one no longer alert
    det = Detector([RULE], clock=clock)
    assert feed(det, [(0, "100"), (1000, "101.5"), (2000, "98.5")]) == []
    det.set_rules([attrs.evolve(RULE, threshold_pct=5.0)])
    assert feed(det, [(3000, "104.99"), (4000, "95.01"), (5000, "105")]) == []
    assert summary(feed(det, [(6000, "94.99")])) == [("r", "down", "100", 0, "94.99", 6000)]


def test_limits_start_again_at_the_base_after_an_alert() -> None:
    det = Detector([attrs.evolve(RULE, cooldown_s=0.0)], clock=clock)
    assert feed(det, [(0, "100"), (1000, "101")]) == []
    [a] = feed(det, [(2000, "102.5")])
    assert (a.direction, a.base_price) == (Direction.UP, "100")
    # the base is now 102.5: its limits are 104.55 and 100.45, exactly
    assert feed(det, [(3000, "104.55"), (4000, "100.45")]) == []
    assert summary(feed(det, [(5000, "100.44")])) == [("r", "down", "102.5", 2000, "100.44", 5000)]
    # and now 100.44: up at 102.4488 exactly
    assert feed(det, [(6000, "102.4488")]) == []
    assert summary(feed(det, [(7000, "102.4489")])) == [
        ("r", "up", "100.44", 5000, "102.4489", 7000)
    ]
    det = Detector([attrs.evolve(RULE, cooldown_s=0.0)], clock=clock)
    feed(det, [(0, "100"), (2000, "102.5")])
    assert summary(feed(det, [(3000, "104.56")])) == [("r", "up", "102.5", 2000, "104.56", 3000)]


def test_a_threshold_of_100_percent_or_more_never_alerts_down() -> None:
    det = Detector([attrs.evolve(RULE, threshold_pct=150.0, cooldown_s=0.0)], clock=clock)
    assert feed(det, [(0, "100"), (1, "0.00000001"), (2, "250")]) == []
    assert summary(feed(det, [(3, "250.01")])) == [("r", "up", "100", 0, "250.01", 3)]
    det = Detector([attrs.evolve(RULE, threshold_pct=100.0)], clock=clock)
    assert feed(det, [(0, "100"), (1, "0.00000001"), (2, "200")]) == []
