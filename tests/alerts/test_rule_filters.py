"""Rule filters (symbols, exclude, markets, min_quote_volume_24h): validation in the
configuration and in runtime rules, the saved file, and how ``rule_text`` shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marketd.alerts.rules import RulesError, RulesStore, parse_rules, rule_text, rules_to_json
from marketd.config.alerts import AlertSettings, RuleSettings
from marketd.config.load import load_settings
from marketd.config.validators import InvalidValue
from marketd.errors import ConfigError


def test_globs_are_normalised_to_upper_case() -> None:
    rule = RuleSettings(name="r", symbols=("btc*", "*Usdt"), exclude=("*down*",))
    assert rule.symbols == ("BTC*", "*USDT")
    assert rule.exclude == ("*DOWN*",)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"symbols": ("",)}, "'' is not a symbol glob"),
        ({"exclude": ("BTC USDT",)}, "'BTC USDT' is not a symbol glob"),
        ({"markets": ("coinm",)}, "'coinm' is not a market (spot, usdm)"),
        ({"markets": ("usdm", "usdm")}, "a market is given twice"),
        ({"min_quote_volume_24h": -1.0}, "must be a finite number >= 0"),
        ({"min_quote_volume_24h": float("inf")}, "must be a finite number >= 0"),
    ],
)
def test_bad_filters_are_refused_in_the_configuration(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidValue) as info:
        RuleSettings(name="r", **fields)  # type: ignore[arg-type]
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"symbols": [""]}, "rules[0].symbols: '' is not a symbol glob"),
        ({"symbols": "BTC*"}, "rules[0].symbols: expected a list of symbol globs"),
        ({"exclude": [5]}, "rules[0].exclude: expected a list of symbol globs"),
        ({"markets": ["futures"]}, "rules[0].markets: 'futures' is not a market (spot, usdm)"),
        ({"min_quote_volume_24h": -5}, "rules[0].min_quote_volume_24h: must be a finite"),
        ({"min_quote_volume_24h": "lots"}, "rules[0].min_quote_volume_24h: expected a number"),
    ],
)
def test_bad_filters_are_refused_at_runtime_with_the_field_named(
    item: dict[str, object], message: str
) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules([{"name": "r", **item}])
    assert any(message in p for p in info.value.problems), info.value.problems


def test_runtime_rules_take_filters_and_save_only_what_is_set(tmp_path: Path) -> None:
    store = RulesStore(AlertSettings(state_dir=str(tmp_path)))
    rules = store.replace(
        [
            {"name": "plain"},
            {
                "name": "big",
                "symbols": ["btc*", "ETH*"],
                "exclude": ["*DOWN*"],
                "markets": ["usdm"],
                "min_quote_volume_24h": "5e7",
            },
        ]
    )
    assert rules[1] == RuleSettings(
        name="big",
        symbols=("BTC*", "ETH*"),
        exclude=("*DOWN*",),
        markets=("usdm",),
        min_quote_volume_24h=5e7,
    )
    saved = json.loads(store.path.read_text())["rules"]
    assert saved[0] == {"name": "plain", "window_s": 60.0, "threshold_pct": 2.0, "cooldown_s": 30.0}
    assert saved[1]["symbols"] == ["BTC*", "ETH*"]
    assert saved[1]["min_quote_volume_24h"] == 5e7
    assert RulesStore(AlertSettings(state_dir=str(tmp_path))).rules() == rules
    assert list(rules_to_json(rules)[1]["markets"]) == ["usdm"]


def test_rule_text_shows_the_filters() -> None:
    rule = RuleSettings(
        name="big",
        symbols=("BTC*", "ETH*"),
        exclude=("*DOWN*",),
        markets=("usdm",),
        min_quote_volume_24h=5e7,
    )
    assert rule_text(rule) == (
        "big: 2% in 60s, cooldown 30s, symbols BTC*|ETH*, not *DOWN*, usdm only, "
        "min 24h quote vol 5e+07"
    )
    assert rule_text(RuleSettings(name="plain")) == "plain: 2% in 60s, cooldown 30s"


def test_the_yaml_configuration_takes_and_checks_filters(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "alerts:\n  rules:\n    - name: big\n      symbols: [btc*]\n      markets: [usdm]\n"
        "      min_quote_volume_24h: 5e7\n"
    )
    (rule,) = load_settings(good, {}).alerts.rules
    assert (rule.symbols, rule.markets, rule.min_quote_volume_24h) == (("BTC*",), ("usdm",), 5e7)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'alerts:\n  rules:\n    - name: big\n      exclude: [""]\n      markets: [coinm]\n'
        "      min_quote_volume_24h: -1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(bad, {})
    message = str(info.value)
    assert "alerts.rules[0].exclude: '' is not a symbol glob" in message
    assert "alerts.rules[0].markets: 'coinm' is not a market (spot, usdm)" in message
    assert "alerts.rules[0].min_quote_volume_24h: must be a finite number >= 0" in message
