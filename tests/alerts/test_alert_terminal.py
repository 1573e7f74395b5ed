"""What the terminal says about alerts: one line per alert (symbol, direction, move, rule),
bounded so that a careless rule cannot drown the log."""

from __future__ import annotations

from pathlib import Path

import structlog

from marketd.alerts.model import Alert, Direction
from marketd.alerts.rules import RulesStore
from marketd.alerts.service import ALERT_LINES_BURST, DetectorService
from marketd.config.alerts import AlertSettings
from marketd.obs.logs import LineBudget


def alert(n: int, change_pct: float, direction: Direction) -> Alert:
    return Alert(
        id=f"a{n}", symbol=f"SYM{n}USDT", market="usdm", rule="fast", direction=direction,
        change_pct=change_pct, price="101.5", price_time_ms=n, base_price="100",
        base_time_ms=0, detected_at_ms=n,
    )  # fmt: skip


def test_one_line_per_alert_with_symbol_direction_move_and_rule(tmp_path: Path) -> None:
    service = DetectorService(
        AlertSettings(state_dir=str(tmp_path)), RulesStore(AlertSettings(state_dir=str(tmp_path)))
    )
    with structlog.testing.capture_logs() as logs:
        service.deliver([alert(1, 2.5, Direction.UP), alert(2, -3.125, Direction.DOWN)])
    lines = [x for x in logs if x["event"] == "alert"]
    assert [(x["symbol"], x["direction"], x["move"], x["rule"], x["price"]) for x in lines] == [
        ("SYM1USDT", "up", "+2.50%", "fast", "101.5"),
        ("SYM2USDT", "down", "-3.12%", "fast", "101.5"),
    ]
    assert all("not_shown" not in x for x in lines)


def test_a_flood_of_alerts_is_cut_to_a_burst_and_the_next_line_counts_the_rest(
    tmp_path: Path,
) -> None:
    service = DetectorService(
        AlertSettings(state_dir=str(tmp_path)), RulesStore(AlertSettings(state_dir=str(tmp_path)))
    )
    now = [0.0]
    service._alert_lines = LineBudget(10, ALERT_LINES_BURST, clock=lambda: now[0])
    with structlog.testing.capture_logs() as logs:
        service.deliver([alert(n, 2.0, Direction.UP) for n in range(ALERT_LINES_BURST + 30)])
        now[0] = 0.25  # two and a half lines' worth of budget later
        service.deliver([alert(1000, 2.0, Direction.UP), alert(1001, 2.0, Direction.UP)])
    lines = [x for x in logs if x["event"] == "alert"]
    assert len(lines) == ALERT_LINES_BURST + 2
    assert [x.get("not_shown", 0) for x in lines[-2:]] == [30, 0]
    assert sum(service.statistics().alerts.values()) == ALERT_LINES_BURST + 32  # all counted


def test_line_budget_refills_at_its_rate_up_to_its_burst() -> None:
    now = [0.0]
    budget = LineBudget(per_s=2, burst=3, clock=lambda: now[0])
    assert [budget.ready() for _ in range(5)] == [0, 0, 0, None, None]
    now[0] = 0.5  # one line's worth
    assert [budget.ready(), budget.ready()] == [2, None]
    now[0] = 100.0  # long quiet: back to a full burst, not more
    assert [budget.ready() for _ in range(4)] == [1, 0, 0, None]
