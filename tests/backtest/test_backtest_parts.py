"""The backtest's small parts: chart paths keep each bucket's extremes, the progress line
is throttled on a terminal and a single final line elsewhere."""

from __future__ import annotations

import io

import pytest
from conftest import Scenario

from marketd.alerts.model import Alert, AlertKind, Direction
from marketd.backtest.cli import ProgressLine
from marketd.backtest.paths import PricePaths, bucket_ms_for
from marketd.backtest.report import figure
from marketd.backtest.run import RunResult, run_backtest
from marketd.config.alerts import RuleSettings
from marketd.data.events import Tick


def tick(time_ms: int, price: str, symbol: str = "AUSDT", side: str = "") -> Tick:
    return Tick("usdm", symbol, time_ms, price, side=side)


def test_a_path_keeps_the_low_and_high_of_each_bucket_in_time_order() -> None:
    paths = PricePaths(1000)
    paths.add([tick(0, "10"), tick(100, "12"), tick(200, "9"), tick(300, "10")])
    paths.add([tick(1000, "11"), tick(1500, "11"), tick(2500, "13"), tick(2600, "8")])
    paths.add([tick(2700, "7", side="SELL"), tick(2800, "x"), tick(2900, "0")])
    paths.add([tick(5, "100", symbol="BUSDT")])
    found = paths.paths([("usdm", "AUSDT"), ("usdm", "BUSDT"), ("spot", "AUSDT")])
    assert found == {
        # A spike inside a bucket stays; liquidations and bad prices are no prices.
        ("usdm", "AUSDT"): ((100, "12"), (200, "9"), (1000, "11"), (2500, "13"), (2600, "8")),
        ("usdm", "BUSDT"): ((5, "100"),),
        ("spot", "AUSDT"): (),
    }


def test_buckets_cut_a_run_into_about_300_and_are_at_least_a_second() -> None:
    second = 1_000_000_000
    assert bucket_ms_for(0, 3000 * second) == 10_000
    assert bucket_ms_for(0, 10 * second) == 1000
    assert bucket_ms_for(None, None) == 1000


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def result_of(scenario: Scenario) -> RunResult:
    for second in range(3):
        scenario.agg_trade("AUSDT", "1.00", second * 1000)
    return run_backtest(scenario.write(), (RuleSettings(),), kinds=("aggTrade",), markets=("usdm",))


def test_progress_on_a_terminal_is_one_line_rewritten_at_most_twice_a_second(
    scenario: Scenario,
) -> None:
    stream, clock = Terminal(), Clock()
    progress = ProgressLine(stream, enabled=True, interval=0.5, clock=clock)
    progress(0.1, 10, 0)  # too soon
    clock.now += 0.5
    progress(0.25, 20, 1)
    clock.now += 0.2
    progress(0.3, 30, 1)  # too soon
    clock.now += 0.4
    progress(0.5, 40, 2)
    clock.now += 1.3
    progress.finish(result_of(scenario))
    assert stream.getvalue().split("\r")[1:] == [
        "backtest:  25.0% of the recording, 20 entries, 1 alerts\x1b[K",
        "backtest:  50.0% of the recording, 40 entries, 2 alerts\x1b[K",
        "backtest: 3 entries, 3 ticks, 0 alerts in 2.4 s (1 ticks/s)\x1b[K\n",
    ]


def test_progress_elsewhere_is_the_final_line_and_quiet_is_nothing(scenario: Scenario) -> None:
    result = result_of(scenario)
    for enabled, expected in ((True, 1), (False, 0)):
        stream, clock = io.StringIO(), Clock()
        progress = ProgressLine(stream, enabled=enabled, clock=clock)
        clock.now += 1
        progress(0.5, 10, 0)
        progress.finish(result)
        assert len(stream.getvalue().splitlines()) == expected
        assert "\r" not in stream.getvalue()


@pytest.mark.parametrize(
    ("kind", "figures", "change", "shown"),
    [
        (AlertKind.PRICE, {}, 2.5, "+2.50%"),
        (AlertKind.VOLUME, {"ratio": "7.31"}, 1.2, "x7.31 +1.20%"),
        (AlertKind.LIQUIDATION, {"side": "SELL", "notional": "1250000.5", "count": "3"}, -1.0,
         "longs 1250000.5 in 3"),
        (AlertKind.LIQUIDATION, {"side": "BUY", "notional": "9", "count": "1"}, 1.0,
         "shorts 9 in 1"),
        (AlertKind.PREMIUM, {}, 0.6, "premium +0.60%"),
        (AlertKind.FUNDING, {}, -0.25, "funding -0.2500%"),
    ],
)  # fmt: skip
def test_each_kind_of_alert_shows_its_own_figure(
    kind: AlertKind, figures: dict[str, str], change: float, shown: str
) -> None:
    alert = Alert(
        id="x", symbol="AUSDT", market="usdm", rule="r", direction=Direction.UP,
        change_pct=change, price="1", price_time_ms=0, base_price="1", base_time_ms=0,
        detected_at_ms=0, kind=kind, figures=figures,
    )  # fmt: skip
    assert figure(alert) == shown
