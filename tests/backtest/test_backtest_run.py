"""The backtest driver and its report over a recording with known price jumps: the exact
alerts (the live detector's, ids included), their exact outcomes, the counts, and the
JSON, CSV, terminal and HTML renderings of them."""

from __future__ import annotations

import csv
import io
import statistics

import attrs
import orjson
import pytest
from conftest import DELAY_MS, T0_MS, LiveRun, Scenario

from marketd.alerts.detector import alert_id
from marketd.backtest.page import render_page
from marketd.backtest.report import build_report, to_csv, to_json
from marketd.backtest.run import RunResult, run_backtest
from marketd.backtest.text import render_text
from marketd.config.alerts import RuleSettings

JUMP = RuleSettings(name="jump", window_s=60.0, threshold_pct=2.0, cooldown_s=30.0)
PREMIUM = RuleSettings(name="premium", kind="premium", threshold_pct=0.5, cooldown_s=60.0)
RULES = (JUMP, PREMIUM)
KINDS = ("aggTrade", "markPriceUpdate")
MARKETS = ("usdm",)
END_S = 1600


def btc_price(second: int) -> str:
    """BTCUSDT: +3 % at 120 s (an up alert), then drifts; -3.4 % at 600 s (a down alert)."""
    for since, price in ((1200, "98.50"), (900, "98.00"), (600, "99.00"), (300, "102.50"),
                         (150, "104.00"), (120, "103.00")):  # fmt: skip
        if second >= since:
            return price
    return "100.00"


def eth_mark(second: int) -> str:
    """ETHUSDT's mark price: 0.6 % above its index from 300.5 s to 400.5 s (premium)."""
    return "2012.00" if 300 <= second < 400 else "2000.00"


def build(s: Scenario) -> Scenario:
    """Trades every second for both symbols; ETHUSDT's mark price every 3 s, half a
    second after its trade (so a tick is on time for each outcome)."""
    for second in range(END_S + 1):
        s.agg_trade("BTCUSDT", btc_price(second), second * 1000)
        s.agg_trade("ETHUSDT", "2000.00", second * 1000)
        if second % 3 == 0:
            s.mark_price("ETHUSDT", eth_mark(second), "2000.00", second * 1000 + 500, "0.00010000")
    return s


def backtest(s: Scenario) -> RunResult:
    return run_backtest(s.write(), RULES, kinds=KINDS, markets=MARKETS)


def at(ms: int) -> int:
    return T0_MS + ms


def test_the_alerts_and_their_ids_are_the_live_detectors(
    scenario: Scenario, live_alerts: LiveRun
) -> None:
    result = backtest(build(scenario))
    found = [f.alert for f in result.alerts]
    assert [(a.rule, a.symbol, a.direction.value, a.base_price, a.base_time_ms, a.price,
             a.price_time_ms, a.change_pct) for a in found] == [
        ("jump", "BTCUSDT", "up", "100.00", at(60_000), "103.00", at(120_000), 3.0),
        ("premium", "ETHUSDT", "up", "2000.00", at(300_500), "2012.00", at(300_500), 0.6),
        ("jump", "BTCUSDT", "down", "102.50", at(540_000), "99.00", at(600_000), -3.4146),
    ]  # fmt: skip
    assert found[0].id == alert_id("usdm", "BTCUSDT", "jump", at(60_000), "100.00",
                                   at(120_000), "103.00")  # fmt: skip
    live, live_outcomes = live_alerts(scenario.entries, RULES, KINDS, MARKETS)
    # Live, detected_at_ms is the wall clock; here the receive time of the raising frame.
    assert [attrs.evolve(a, detected_at_ms=0) for a in found] == live
    assert [f.alert.detected_at_ms for f in result.alerts] == [
        at(120_000 + DELAY_MS),
        at(300_500 + DELAY_MS),
        at(600_000 + DELAY_MS),
    ]
    mine = [o for f in result.alerts for o in f.outcomes if o is not None]
    assert sorted(mine, key=lambda o: (o.alert_id, o.after_s)) == sorted(
        live_outcomes, key=lambda o: (o.alert_id, o.after_s)
    )


def test_outcomes_are_the_prices_1_5_15_minutes_after(scenario: Scenario) -> None:
    result = backtest(build(scenario))
    outcomes = [
        [(o.after_s, o.price, o.price_time_ms, o.change_pct) for o in f.outcomes if o]
        for f in result.alerts
    ]
    assert outcomes == [
        [(60, "104.00", at(180_000), 0.9709), (300, "102.50", at(420_000), -0.4854),
         (900, "98.00", at(1_020_000), -4.8544)],
        [(60, "2012.00", at(360_500), 0.0), (300, "2000.00", at(600_500), -0.5964),
         (900, "2000.00", at(1_200_500), -0.5964)],
        [(60, "99.00", at(660_000), 0.0), (300, "98.00", at(900_000), -1.0101),
         (900, "98.50", at(1_500_000), -0.5051)],
    ]  # fmt: skip


def test_counts_by_kind_and_direction_and_the_moves_after(scenario: Scenario) -> None:
    report = build_report(backtest(build(scenario)))
    jump, premium = report.rules
    assert [(g.kind, g.direction, g.alerts) for g in jump.groups] == [
        ("price", "up", 1), ("price", "down", 1), ("price", "all", 2)
    ]  # fmt: skip
    assert [(g.kind, g.direction, g.alerts) for g in premium.groups] == [
        ("premium", "up", 1), ("premium", "down", 0), ("premium", "all", 1)
    ]  # fmt: skip
    both = jump.groups[2]
    # Moves in the alert's direction: up +0.9709 then down 0.0 (flat) at +1m; up -0.4854
    # (reversed) and down +1.0101 (continued) at +5m; -4.8544 and +0.5051 at +15m.
    assert [(h.after_s, h.known, h.continued, h.reversed, h.flat) for h in both.horizons] == [
        (60, 2, 1, 0, 1), (300, 2, 1, 1, 0), (900, 2, 1, 1, 0)
    ]  # fmt: skip
    assert [h.median_pct for h in both.horizons] == [
        round(statistics.median(m), 4) for m in ([0.9709, 0.0], [-0.4854, 1.0101],
                                                 [-4.8544, 0.5051])
    ]  # fmt: skip
    assert [h.mean_pct for h in premium.groups[1].horizons] == [None, None, None]
    assert set(jump.paths) == {("usdm", "BTCUSDT")}


def test_json_holds_the_alerts_outcomes_and_statistics(scenario: Scenario) -> None:
    result = backtest(build(scenario))
    document = orjson.loads(to_json(build_report(result)))
    assert [(a["rule"], a["symbol"], a["direction"], a["price"]) for a in document["alerts"]] == [
        ("jump", "BTCUSDT", "up", "103.00"),
        ("premium", "ETHUSDT", "up", "2012.00"),
        ("jump", "BTCUSDT", "down", "99.00"),
    ]
    first = document["alerts"][0]
    assert first["id"] == result.alerts[0].alert.id
    assert first["outcomes"]["60"] == {
        "id": first["id"], "after_s": 60, "price": "104.00", "price_time_ms": at(180_000),
        "change_pct": 0.9709, "move_pct": 0.9709,
    }  # fmt: skip
    assert document["alerts"][2]["outcomes"]["900"]["move_pct"] == 0.5051
    assert [r["rule"]["name"] for r in document["rules"]] == ["jump", "premium"]
    assert document["rules"][0]["groups"][2]["alerts"] == 2
    entries = len(scenario.entries)
    assert document["statistics"]["read"]["entries"] == entries
    assert document["statistics"]["decode"]["ticks"] == entries
    assert document["statistics"]["read"]["corrupt_blocks"] == 0
    assert document["recording"]["entries"] == entries
    assert document["watched"] == {"kinds": list(KINDS), "markets": list(MARKETS)}


def test_csv_has_a_row_per_alert_with_its_outcomes(scenario: Scenario) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(build_report(backtest(build(scenario)))))))
    # Rules in their order, each rule's alerts as raised.
    assert [(r["rule"], r["symbol"], r["direction"], r["price"], r["figure"]) for r in rows] == [
        ("jump", "BTCUSDT", "up", "103.00", "+3.00%"),
        ("jump", "BTCUSDT", "down", "99.00", "-3.41%"),
        ("premium", "ETHUSDT", "up", "2012.00", "premium +0.60%"),
    ]
    down = rows[1]
    assert down["price_time"] == "2024-05-01T00:10:00.000Z"
    assert (down["outcome_price_300s"], down["outcome_change_pct_300s"]) == ("98.00", "-1.0101")
    assert down["outcome_move_pct_300s"] == "1.0101"


def test_the_terminal_gets_a_table_per_rule_and_the_alerts(scenario: Scenario) -> None:
    text = render_text(build_report(backtest(build(scenario))))
    lines = text.splitlines()
    assert any(line.startswith("rule jump: 2% in 60s, cooldown 30s [price]") for line in lines)
    header = next(line for line in lines if "+1m mean" in line).split()
    up = next(line for line in lines if line.split()[:2] == ["price", "up"]).split()
    assert header[:3] == ["kind", "direction", "alerts"]
    assert up[:6] == ["price", "up", "1", "+0.97%", "+0.97%", "1/0"]
    listed = next(line for line in lines if "2024-05-01T00:02:00.000Z" in line).split()
    assert listed == ["2024-05-01T00:02:00.000Z", "usdm", "BTCUSDT", "price", "up", "+3.00%",
                      "103.00", "+0.97%", "-0.49%", "-4.85%"]  # fmt: skip
    assert "damage    none" in lines


def test_the_page_has_a_chart_per_rule_with_its_alerts_marked(scenario: Scenario) -> None:
    page = render_page(build_report(backtest(build(scenario))))
    assert page.count("<svg") == len(RULES)
    assert page.count('<g class="alert up">') == 2
    assert page.count('<g class="alert down">') == 1
    assert page.count('<polyline class="path"') == 2  # BTCUSDT's, ETHUSDT's
    # Self-contained: the only URL is SVG's namespace name, nothing is fetched or run.
    assert page.replace('xmlns="http://www.w3.org/2000/svg"', "").count("http") == 0
    assert "<script" not in page
    assert "src=" not in page
    assert "href=" not in page


def test_the_range_selects_by_receive_time_and_outcomes_read_past_it(
    scenario: Scenario,
) -> None:
    directory = build(scenario).write()
    full = run_backtest(directory, RULES, kinds=KINDS, markets=MARKETS)
    until = run_backtest(
        directory, RULES, kinds=KINDS, markets=MARKETS, end_ns=at(300_000) * 1_000_000
    )
    assert [f.alert.price_time_ms for f in until.alerts] == [at(120_000)]
    assert until.alerts[0] == full.alerts[0]  # its +15m outcome read past --to
    # ... and not to the end: at most 16 minutes past --to (1260 s of the 1600 s recorded).
    assert until.read.entries < full.read.entries * 1270 // 1600
    since = run_backtest(
        directory, RULES, kinds=KINDS, markets=MARKETS, start_ns=at(500_000) * 1_000_000
    )
    # Windows start empty at --from; this jump's window lies after it: the same alert.
    assert [f.alert.id for f in since.alerts] == [full.alerts[2].alert.id]
    assert since.read.entries < full.read.entries


@pytest.mark.parametrize("copies", [2])
def test_duplicate_trades_are_dropped_and_gaps_counted(scenario: Scenario, copies: int) -> None:
    for second in range(5):
        for _ in range(copies):  # the same trade on two connections (a handover's overlap)
            scenario.agg_trade("BTCUSDT", "100.00", second * 1000, agg_id=10 + second)
    scenario.agg_trade("BTCUSDT", "103.00", 6000, agg_id=20)  # ids 15..19 never came
    result = run_backtest(scenario.write(), (JUMP,), kinds=KINDS, markets=MARKETS)
    assert (result.ticks.duplicates, result.ticks.gaps, result.ticks.ticks) == (5, 1, 6)
    assert [(f.alert.base_price, f.alert.price) for f in result.alerts] == [("100.00", "103.00")]
