"""Every rule kind end to end: the fake exchange's aggTrades, mark prices (an index that lags
the mark, so a jump opens a premium and moves the funding rate) and liquidations →
``marketd run`` (a real process: feed, codec ticks, detector, gateway) → ``/api/alerts``
with each kind's exact figures → a real headless Chromium shows a card per kind in a
trader's words."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kit.browser import csp_violations, in_browser, new_page, requires_browser
from kit.daemon import alerts_of, binance_config
from kit.wait import poll_until_blocking

from marketd.testing.processes import DaemonProcess, FakeExchangeProcess, metric_value

pytestmark = [pytest.mark.slow, requires_browser]

RULES = [
    {"name": "jump", "window_s": 60, "threshold_pct": 2, "cooldown_s": 600},
    {"name": "premium", "kind": "premium", "threshold_pct": 1, "cooldown_s": 600},
    {"name": "funding", "kind": "funding", "threshold_pct": 0.5, "cooldown_s": 600},
    {"name": "liquidations", "kind": "liquidation", "window_s": 60, "min_notional": 1,
     "cooldown_s": 600},
    # A low bar: any second busier than the two before it.
    {"name": "volume", "kind": "volume", "window_s": 1, "baseline_s": 2, "multiple": 1.01,
     "cooldown_s": 600},
]  # fmt: skip


def config(fx: FakeExchangeProcess, state_dir: Path) -> dict[str, Any]:
    return {
        "binance": binance_config(fx),
        "subscriptions": [
            {
                "market": "usdm",
                "streams": ["btcusdt@aggTrade", "btcusdt@markPrice@1s", "btcusdt@forceOrder"],
            },
        ],
        "alerts": {
            "state_dir": str(state_dir),
            "kinds": ["aggTrade", "markPriceUpdate", "forceOrder"],
            "rules": RULES,
        },
        "log": {"format": "json"},
    }


def by_rule(base: str) -> dict[str, dict[str, Any]]:
    return {a["rule"]: a for a in reversed(alerts_of(base, "BTCUSDT"))}  # first of each


async def test_every_rule_kind_fires_from_the_fake_exchange_and_shows_in_the_browser(
    tmp_path: Path,
) -> None:
    def script(browser: Any) -> None:
        with (
            FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "5", "--rate", "80") as fx,
            DaemonProcess(tmp_path, config(fx, tmp_path / "state")) as daemon,
        ):
            daemon.wait_ready()
            page = new_page(browser, daemon.base + "/")
            # Liquidations (about one every two seconds) and, with a busy second now
            # and then, volume fire on the fake's own flow; a calm market has no
            # premium yet (the index equals the mark).
            poll_until_blocking(
                lambda: {"liquidations", "volume"} <= set(by_rule(daemon.base)),
                timeout=45,
                what="a liquidation and a volume alert",
            )
            assert "premium" not in by_rule(daemon.base)
            fx.control("jump", {"market": "usdm", "symbol": "BTCUSDT", "percent": 5.0})
            poll_until_blocking(
                lambda: set(by_rule(daemon.base)) == {r["name"] for r in RULES},
                timeout=30,
                what="an alert of every kind",
            )
            alerts = by_rule(daemon.base)
            kinds = {rule: a["kind"] for rule, a in alerts.items()}
            assert kinds == {"jump": "price", "premium": "premium", "funding": "funding",
                             "liquidations": "liquidation", "volume": "volume"}  # fmt: skip

            jump = alerts["jump"]
            assert jump["direction"] == "up"
            assert jump["change_pct"] > 2
            assert 2 <= len(jump["path"]) <= 60
            assert jump["path"][-1] == [jump["price_time_ms"], jump["price"]]

            premium = alerts["premium"]  # the mark jumped, the index lags
            mark, index = Decimal(premium["price"]), Decimal(premium["base_price"])
            assert premium["figures"] == {"mark_price": premium["price"],
                                          "index_price": premium["base_price"]}  # fmt: skip
            assert premium["direction"] == "up"
            assert premium["change_pct"] == pytest.approx(
                float((mark - index) / index * 100), abs=1e-4
            )
            assert premium["change_pct"] > 1

            funding = alerts["funding"]
            rate = Decimal(funding["figures"]["funding_rate"])
            assert funding["change_pct"] == pytest.approx(float(rate * 100), abs=1e-4)
            assert rate * 100 > Decimal("0.5")

            liq = alerts["liquidations"]
            side = liq["figures"]["side"]
            assert side in ("BUY", "SELL")
            assert liq["direction"] == ("down" if side == "SELL" else "up")
            assert Decimal(liq["figures"]["notional"]) > 1
            assert int(liq["figures"]["count"]) >= 1

            volume = alerts["volume"]
            f = volume["figures"]
            window, baseline = Decimal(f["window_notional"]), Decimal(f["baseline_notional"])
            # The window (1 s) traded faster than 1.01x the baseline's (2 s) rate.
            assert window * 2 > Decimal("1.01") * baseline
            assert f["baseline_s"] == "2"
            assert int(f["trades"]) >= 1

            # The browser: a card per kind, in a trader's words.
            page.wait_for_selector('#alerts > li.card[data-kind="premium"]', timeout=10_000)
            shown = page.eval_on_selector_all(
                "#alerts > li.card",
                "els => els.map(e => [e.dataset.kind, e.querySelector('.direction')"
                ".textContent, e.querySelector('.pct').textContent])",
            )
            labels = {kind: (label, headline) for kind, label, headline in shown}
            assert set(labels) == {"price", "premium", "funding", "liquidation", "volume"}
            assert labels["price"][0] == "▲ pump"
            assert labels["premium"][0] == "▲ premium"
            assert labels["funding"][0] == "▲ funding rate"
            assert labels["liquidation"][0] in ("▼ longs liquidated", "▲ shorts liquidated")
            assert labels["volume"][1].startswith("volume \u00d7")  # the times sign
            spark = page.eval_on_selector_all(
                '#alerts > li.card[data-kind="price"] svg polyline',
                "els => els.map(e => e.getAttribute('points').trim().split(/\\s+/).length)",
            )
            assert spark == [len(jump["path"])]
            assert csp_violations(page) == []
            # Every alert was counted under its rule.
            text = daemon.metrics()
            for rule in ("premium", "funding", "liquidations", "volume"):
                assert metric_value(text, "marketd_alerts_detected_total", rule=rule) >= 1, rule
            assert daemon.stop() == 0

    await in_browser(script, timeout_s=150)
