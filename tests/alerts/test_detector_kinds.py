"""The detector with every rule kind (pure): what each kind reads from a tick, the figures
and paths its alerts carry, outcomes after an alert, and the Protobuf round trip."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketd.alerts.detector import MAX_PENDING_OUTCOMES, Detector, alert_id
from marketd.alerts.encoding import (
    alert_to_proto,
    decode_alert,
    decode_outcome,
    outcome_record,
)
from marketd.alerts.kinds import downsample
from marketd.alerts.model import PATH_POINTS, Alert, AlertKind, Direction, Outcome
from marketd.config.alerts import RuleSettings
from marketd.data.events import Tick
from marketd.v1 import alert_pb2

M, S = "usdm", "BTCUSDT"
PRICE = RuleSettings(name="jump", window_s=60.0, threshold_pct=2.0, cooldown_s=30.0)
VOLUME = RuleSettings(name="vol", kind="volume", window_s=10.0, baseline_s=60.0, multiple=5.0,
                      cooldown_s=0.0)  # fmt: skip
LIQ = RuleSettings(name="liq", kind="liquidation", window_s=30.0, min_notional=100_000.0,
                   cooldown_s=60.0)  # fmt: skip
PREMIUM = RuleSettings(name="prem", kind="premium", threshold_pct=0.5, cooldown_s=0.0)
FUNDING = RuleSettings(name="fund", kind="funding", threshold_pct=0.1, cooldown_s=0.0)


def clock() -> int:
    return 7


def trade(t: int, price: str, qty: str, symbol: str = S) -> Tick:
    return Tick(M, symbol, t, price, "", qty)


def mark(t: int, price: str, index: str, rate: str = "0.0001") -> Tick:
    return Tick(M, S, t, price, "", "", index, rate)


def liquidation(t: int, side: str, price: str, qty: str) -> Tick:
    return Tick(M, S, t, price, "", qty, "", "", side)


# --- price: several windows, and the path ----------------------------------------------


def test_a_rule_set_with_three_windows_fires_each_on_its_own_scale() -> None:
    rules = [
        RuleSettings(name="10s", window_s=10.0, threshold_pct=1.0, cooldown_s=300.0),
        RuleSettings(name="60s", window_s=60.0, threshold_pct=2.0, cooldown_s=300.0),
        RuleSettings(name="5m", window_s=300.0, threshold_pct=3.0, cooldown_s=300.0),
    ]
    det = Detector(rules, clock=clock)
    # A slow climb: 0.5 % every 10 s; the 10 s window never sees 1 %.
    ticks = [Tick(M, S, i * 10_000, f"{100 * (1 + 0.005 * i):.4f}") for i in range(30)]
    got = [(a.rule, a.base_time_ms, a.price_time_ms) for a in det.observe_many(ticks)]
    # 60 s: first more than 2 % at +50 s (2.5 %); 5 min: more than 3 % at +70 s (3.5 %).
    assert got == [("60s", 0, 50_000), ("5m", 0, 70_000)]


def test_a_price_alert_carries_its_window_as_a_path_of_at_most_60_points() -> None:
    det = Detector([PRICE], clock=clock)
    ticks = [Tick(M, S, t, "100") for t in range(0, 50_000, 100)]  # 500 flat ticks
    ticks[137] = Tick(M, S, 13_700, "99.5")  # the low inside the window
    ticks.append(Tick(M, S, 50_000, "102.5"))
    (alert,) = det.observe_many(ticks)
    assert alert.kind is AlertKind.PRICE
    assert len(alert.path) <= PATH_POINTS
    assert alert.path[0] == (0, "100")  # the base
    assert alert.path[-1] == (50_000, "102.5")  # the price that fired
    assert (13_700, "99.5") in alert.path  # the extremes survive the downsampling
    assert alert.path == downsample([(t.time_ms, t.price) for t in ticks])
    assert alert.to_json()["duration_ms"] == 50_000


def test_a_short_window_path_is_every_tick() -> None:
    det = Detector([PRICE], clock=clock)
    (alert,) = det.observe_many([Tick(M, S, 0, "100"), Tick(M, S, 1, "101"), Tick(M, S, 2, "103")])
    assert alert.path == ((0, "100"), (1, "101"), (2, "103"))


# --- volume -----------------------------------------------------------------------------


def test_a_volume_spike_fires_with_exact_figures() -> None:
    det = Detector([VOLUME], clock=clock)
    # Baseline: one trade of 100 x 1 each second for 70 s (100 quote per second).
    quiet = [trade(t * 1000, "100", "1") for t in range(71)]
    assert det.observe_many(quiet) == []
    # Then 6,000 quote in one second: the window (10 s) holds far more than 5x the rate.
    burst = [trade(71_000, "101", "20"), trade(71_500, "102", "40")]
    (alert,) = det.observe_many(burst)
    assert (alert.kind, alert.rule, alert.direction) == (AlertKind.VOLUME, "vol", Direction.UP)
    # Window [61.5 s, 71.5 s]: trades at 62..70 s (9 x 100) + 2020 + 4080 = 7000.
    # Baseline [1.5 s, 61.5 s): trades at 2..61 s = 60 x 100 = 6000.
    assert alert.figures == {
        "window_notional": "7000",
        "baseline_notional": "6000",
        "baseline_s": "60",
        "ratio": "7.00",  # (7000 / 10 s) / (6000 / 60 s)
        "trades": "11",
    }
    assert (alert.base_price, alert.base_time_ms, alert.price, alert.price_time_ms) == (
        "100",
        62_000,
        "102",
        71_500,
    )
    assert alert.change_pct == 2.0
    assert alert.id == alert_id(M, S, "vol", 62_000, "100", 71_500, "102")
    assert alert.path[0] == (62_000, "100")
    assert alert.path[-1] == (71_500, "102")


def test_volume_rules_read_only_ticks_with_a_quantity_and_price_rules_read_them_too() -> None:
    det = Detector([VOLUME, PRICE], clock=clock)
    # Tickers (no quantity) never feed a volume rule, however many.
    assert det.observe_many([Tick(M, S, t * 1000, "100", "5e9") for t in range(100)]) == []
    # A trade is a price too: 103 against 100 fires the price rule.
    (alert,) = det.observe_many([trade(100_000, "103", "1")])
    assert (alert.rule, alert.kind) == ("jump", AlertKind.PRICE)


# --- liquidations ---------------------------------------------------------------------------


def test_a_liquidation_cluster_fires_per_side_and_enters_no_price_window() -> None:
    det = Detector([LIQ, PRICE], clock=clock)
    det.observe_many([Tick(M, S, 0, "100")])
    # Longs liquidated far below the market: no price alert from liquidation prices.
    first = det.observe_many([liquidation(1_000, "SELL", "90", "500")])  # 45,000
    assert first == []
    assert det.observe_many([liquidation(2_000, "BUY", "91", "600")]) == []  # shorts: 54,600
    (alert,) = det.observe_many([liquidation(3_000, "SELL", "89.5", "700")])  # +62,650
    assert (alert.kind, alert.direction) == (AlertKind.LIQUIDATION, Direction.DOWN)
    assert alert.figures == {"side": "SELL", "notional": "107650.0", "count": "2"}
    assert (alert.base_price, alert.base_time_ms, alert.price, alert.price_time_ms) == (
        "90",
        1_000,
        "89.5",
        3_000,
    )
    assert alert.path == ((1_000, "90"), (3_000, "89.5"))
    # Still no price alert: the instrument's last price is 100.
    assert det.observe_many([Tick(M, S, 4_000, "100.1")]) == []


def test_liquidations_have_their_own_order_clock() -> None:
    det = Detector([LIQ], clock=clock)
    det.observe_many([trade(5_000, "100", "1")])
    # A liquidation event older than the last trade is still used (its own clock) ...
    det.observe_many([liquidation(4_000, "BUY", "100", "900")])
    (alert,) = det.observe_many([liquidation(4_500, "BUY", "100", "200")])
    assert alert.figures["notional"] == "110000"
    # ... but one older than the last liquidation is out of order, a repeat a duplicate.
    det.observe_many(
        [liquidation(4_400, "BUY", "100", "5000"), liquidation(4_500, "BUY", "100", "200")]
    )
    stats = det.statistics()
    assert (stats.out_of_order, stats.duplicates) == (1, 1)


def test_a_bad_liquidation_is_invalid() -> None:
    det = Detector([LIQ], clock=clock)
    det.observe_many([liquidation(1, "SIDEWAYS", "100", "1"), liquidation(2, "BUY", "100", "x")])
    assert det.statistics().invalid == 2


# --- premium and funding --------------------------------------------------------------------


def test_premium_and_funding_fire_on_crossing_with_exact_figures() -> None:
    det = Detector([PREMIUM, FUNDING], clock=clock)
    assert det.observe_many([mark(0, "100.4", "100")]) == []  # +0.4 %
    (premium,) = det.observe_many([mark(1_000, "100.6", "100")])  # +0.6 %
    assert (premium.kind, premium.direction, premium.change_pct) == (
        AlertKind.PREMIUM,
        Direction.UP,
        0.6,
    )
    assert premium.figures == {"mark_price": "100.6", "index_price": "100"}
    assert (premium.price, premium.base_price) == ("100.6", "100")
    assert premium.path == ()
    assert det.observe_many([mark(2_000, "100.7", "100")]) == []  # still outside: once
    (funding,) = det.observe_many([mark(3_000, "100.1", "100", "-0.00150000")])
    assert (funding.kind, funding.direction, funding.change_pct) == (
        AlertKind.FUNDING,
        Direction.DOWN,
        -0.15,
    )
    assert funding.figures == {"funding_rate": "-0.00150000", "mark_price": "100.1"}
    assert funding.id == alert_id(M, S, "fund", 3_000, "-0.00150000", 3_000, "100.1")


def test_mark_prices_have_their_own_order_clock_beside_trades() -> None:
    det = Detector([PREMIUM], clock=clock)
    det.observe_many([trade(10_000, "100", "1")])
    # Mark prices come once a second; one a little older than the last trade still counts.
    (alert,) = det.observe_many([mark(9_990, "101", "100")])
    assert alert.price_time_ms == 9_990
    assert det.statistics().out_of_order == 0


# --- filters and rule changes apply to every kind ---------------------------------------------


def test_filters_apply_to_every_kind() -> None:
    only_eth = attrs.evolve(PREMIUM, symbols=("ETH*",))
    spot_only = attrs.evolve(FUNDING, markets=("spot",))
    det = Detector([only_eth, spot_only], clock=clock)
    assert det.observe_many([mark(0, "110", "100", "0.01")]) == []  # BTCUSDT on usdm


def test_a_rule_that_changes_kind_starts_afresh_and_a_kept_one_keeps_its_state() -> None:
    det = Detector([PREMIUM, FUNDING], clock=clock)
    det.observe_many([mark(0, "101", "100", "0.002")])  # both fire and disarm
    det.set_rules([PREMIUM, attrs.evolve(FUNDING, kind="premium")])
    got = det.observe_many([mark(1_000, "101", "100", "0.002")])
    # "prem" kept its state (still outside: quiet); "fund" is a premium rule now, new state.
    assert [(a.rule, a.kind) for a in got] == [("fund", AlertKind.PREMIUM)]


# --- outcomes ----------------------------------------------------------------------------------


def test_outcomes_at_1_5_15_minutes_are_the_last_price_at_or_before_each() -> None:
    det = Detector([PRICE], clock=clock)
    (alert,) = det.observe_many([Tick(M, S, 0, "100"), Tick(M, S, 1_000, "103")])
    assert det.take_outcomes() == []
    det.observe_many([Tick(M, S, 30_000, "104"), Tick(M, S, 61_000, "105")])
    # +60 s is 61,000 exactly: that tick is on time.
    assert det.take_outcomes() == [Outcome(alert.id, M, S, 60, "105", 61_000, 1.9417)]
    det.observe_many([Tick(M, S, 200_000, "101"), Tick(M, S, 400_000, "99")])
    # +300 s is 301,000: the last price at or before it is 101 (at 200 s).
    assert det.take_outcomes() == [Outcome(alert.id, M, S, 300, "101", 200_000, -1.9417)]
    det.observe_many([Tick(M, S, 2_000_000, "110")])  # long after +900 s: still 99
    assert det.take_outcomes() == [Outcome(alert.id, M, S, 900, "99", 400_000, -3.8835)]
    assert det.pending_outcomes == 0


def test_an_outcome_on_time_is_reported_by_that_tick() -> None:
    det = Detector([PRICE], clock=clock)
    (alert,) = det.observe_many([Tick(M, S, 0, "100"), Tick(M, S, 1_000, "103")])
    det.observe_many([Tick(M, S, 61_000, "104")])
    assert [o.after_s for o in det.take_outcomes()] == [60]
    det.observe_many([Tick(M, S, 301_000, "98")])  # exactly +5 min: known now
    assert det.take_outcomes() == [Outcome(alert.id, M, S, 300, "98", 301_000, -4.8544)]
    det.observe_many([Tick(M, S, 901_000, "97")])
    assert det.take_outcomes() == [Outcome(alert.id, M, S, 900, "97", 901_000, -5.8252)]


def test_liquidation_ticks_are_no_outcome_prices() -> None:
    det = Detector([PRICE, LIQ], clock=clock)
    det.observe_many([Tick(M, S, 0, "100"), Tick(M, S, 1_000, "103")])
    det.observe_many([liquidation(70_000, "SELL", "50", "1")])
    assert det.take_outcomes() == []


def test_pending_outcomes_are_bounded_and_counted() -> None:
    det = Detector([attrs.evolve(PRICE, cooldown_s=0.0)], clock=clock)
    ticks = [Tick(M, f"S{i}", t, p) for i in range(MAX_PENDING_OUTCOMES // 2 + 5)
             for t, p in ((0, "100"), (1, "103"), (2, "100"))]  # fmt: skip
    alerts = det.observe_many(ticks)
    assert len(alerts) == 2 * (MAX_PENDING_OUTCOMES // 2 + 5)
    assert det.pending_outcomes == MAX_PENDING_OUTCOMES
    assert det.outcomes_skipped == 10
    det.forget(M, "S0")
    assert det.pending_outcomes == MAX_PENDING_OUTCOMES - 2


prices = st.integers(min_value=95, max_value=105).map(str)
steps = st.lists(st.tuples(st.integers(min_value=0, max_value=40_000), prices), max_size=50)


@settings(max_examples=200, deadline=None)
@given(steps=steps)
def test_outcomes_match_a_brute_force_model(steps: list[tuple[int, str]]) -> None:
    """Every outcome is the last accepted price at or before alert + h, reported at the
    first accepted tick at or after it; none before, none missing."""
    rule = RuleSettings(name="r", window_s=30.0, threshold_pct=2.0, cooldown_s=0.0)
    det = Detector([rule], clock=clock)
    accepted: list[tuple[int, str]] = []
    alerts: list[tuple[int, Alert]] = []  # (index of the tick, alert)
    got: list[tuple[str, int, str, int, int]] = []  # (+ the index of the tick reporting it)
    t = 0
    for dt, price in steps:
        t += dt
        before = det.statistics().ticks
        found = det.observe_many([Tick(M, S, t, price)])
        if det.statistics().ticks > before:
            accepted.append((t, price))
        for a in found:
            alerts.append((len(accepted) - 1, a))
        got += [(o.alert_id, o.after_s, o.price, o.price_time_ms, len(accepted) - 1)
                for o in det.take_outcomes()]  # fmt: skip
    expected = []
    for i, alert in alerts:
        for h in (60, 300, 900):
            due = alert.price_time_ms + h * 1000
            later = [j for j in range(i + 1, len(accepted)) if accepted[j][0] >= due]
            if not later:
                continue
            j = later[0]
            at, price = accepted[j] if accepted[j][0] == due else accepted[j - 1]
            expected.append((alert.id, h, price, at, j))
    assert sorted(got) == sorted(expected)


# --- the Protobuf Alert carries every kind losslessly -----------------------------------------


@pytest.mark.parametrize(
    ("kind", "figures"),
    [
        (AlertKind.PRICE, {}),
        (
            AlertKind.VOLUME,
            {
                "window_notional": "123456789.123456789",
                "baseline_notional": "0.000000001",
                "baseline_s": "1800.5",
                "ratio": "7.31",
                "trades": "18446744073709551615",
            },
        ),
        (AlertKind.LIQUIDATION, {"side": "SELL", "notional": "1250000.50", "count": "3"}),
        (AlertKind.PREMIUM, {"mark_price": "65000.10", "index_price": "64450.00000001"}),
        (AlertKind.FUNDING, {"funding_rate": "-0.00250000", "mark_price": "65000.1"}),
    ],
)
def test_every_kind_round_trips_through_protobuf(kind: AlertKind, figures: dict[str, str]) -> None:
    alert = Alert(
        id="abc", symbol=S, market=M, rule="r", direction=Direction.DOWN, change_pct=-1.25,
        price="1.5", price_time_ms=2, base_price="1.6", base_time_ms=1, detected_at_ms=3,
        window_s=60.0, threshold_pct=2.0, cooldown_s=30.0, kind=kind, figures=figures,
        path=((1, "1.6"), (2, "1.5")),
    )  # fmt: skip
    message = alert_to_proto(alert)
    assert message.kind == alert_pb2.AlertKind.Value(f"ALERT_KIND_{kind.name}")
    assert decode_alert(message.SerializeToString()) == alert
    if kind is AlertKind.VOLUME:  # typed on the wire: a count is an integer
        assert message.volume.trades == 18446744073709551615
        assert message.volume.window_notional == "123456789.123456789"


def test_an_alert_from_a_marketd_before_kinds_is_a_price_jump() -> None:
    old = alert_pb2.Alert(id="x", symbol=S, rule="r", direction=alert_pb2.DIRECTION_UP,
                          price="2", base_price="1", market=2)  # fmt: skip
    alert = decode_alert(old.SerializeToString())
    assert (alert.kind, alert.figures, alert.path) == (AlertKind.PRICE, {}, ())


def test_an_outcome_record_round_trips() -> None:
    outcome = Outcome("abc", "spot", "ETHUSDT", 300, "3100.5", 1_000, -1.25)
    record = outcome_record(outcome, "alerts")
    assert (record.topic, record.key, dict(record.headers)["type"]) == (
        "alerts",
        b"ETHUSDT",
        b"alert_outcome",
    )
    assert decode_outcome(record.value) == outcome
    assert Decimal(outcome.price) == Decimal("3100.5")
