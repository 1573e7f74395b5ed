"""The rules store: validation with clear messages, atomic persistence, reloading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marketd.alerts.rules import RulesError, RulesStore, describe_rules, parse_rules
from marketd.config.alerts import AlertSettings, RuleSettings


def settings(tmp_path: Path) -> AlertSettings:
    return AlertSettings(state_dir=str(tmp_path / "state"), rules=(RuleSettings(name="cfg"),))


def test_rules_come_from_settings_without_a_file(tmp_path: Path) -> None:
    store = RulesStore(settings(tmp_path))
    assert store.rules() == (RuleSettings(name="cfg"),)
    assert not store.path.exists()


def test_replace_validates_persists_and_survives_a_restart(tmp_path: Path) -> None:
    store = RulesStore(settings(tmp_path))
    new = store.replace(
        {"rules": [{"name": "fast", "window_s": 10, "threshold_pct": "1.5", "cooldown_s": 5}]}
    )
    assert new == (RuleSettings(name="fast", window_s=10.0, threshold_pct=1.5, cooldown_s=5.0),)
    assert store.rules() == new
    assert store.version == 1
    saved = json.loads(store.path.read_text())
    assert saved == {
        "rules": [{"name": "fast", "window_s": 10.0, "threshold_pct": 1.5, "cooldown_s": 5.0}]
    }
    assert [p.name for p in store.path.parent.iterdir()] == ["rules.json"]  # no temp left
    assert RulesStore(settings(tmp_path)).rules() == new  # the file wins over settings


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "rules: at least one rule is needed"),
        ([{"name": "a"}, {"name": "a"}], "rule name 'a' is given twice"),
        ([{"name": "a", "window_s": 0}], r"rules\[0\].window_s: must be in \(0, 86400\], got 0.0"),
        ([{"name": "a", "threshold_pct": -1}], r"rules\[0\].threshold_pct: must be in \(0, 1000\]"),
        ([{"name": "a", "cooldown_s": "soon"}], r"rules\[0\].cooldown_s: expected a number"),
        ([{"window_s": 5}], r"rules\[0\].name: required"),
        ([{"name": "no spaces"}], r"rules\[0\].name: must be 1-40 of"),
        ([{"name": "a", "windows": 5}], r"rules\[0\].windows: unknown key"),
        ([{"name": f"r{i}"} for i in range(17)], "at most 16 rules"),
        ({"rulez": []}, "expected"),
        ("nope", "expected a list of rules"),
        ([5], r"rules\[0\]: expected an object"),
    ],
)
def test_bad_rules_are_refused_with_the_field_named(
    tmp_path: Path, raw: object, message: str
) -> None:
    store = RulesStore(settings(tmp_path))
    with pytest.raises(RulesError, match=message):
        store.replace(raw)
    assert store.rules() == (RuleSettings(name="cfg"),)
    assert store.version == 0
    assert not store.path.exists()


def test_every_problem_is_reported() -> None:
    with pytest.raises(RulesError) as info:
        parse_rules([{"name": "a", "window_s": -1, "cooldown_s": -1}])
    assert info.value.problems == [
        "rules[0].window_s: must be in (0, 86400], got -1.0",
        "rules[0].cooldown_s: must be in [0, 86400], got -1.0",
    ]


def test_refresh_picks_up_another_process_change_and_ignores_a_broken_file(
    tmp_path: Path,
) -> None:
    store = RulesStore(settings(tmp_path))
    other = RulesStore(settings(tmp_path))
    other.replace([{"name": "x", "threshold_pct": 3}])
    assert store.refresh() is True
    assert store.rules() == (RuleSettings(name="x", threshold_pct=3.0),)
    assert store.refresh() is False
    store.path.write_text('{"rules": [{"name": "x", "window_s": -5}]}')
    with pytest.raises(RulesError, match=r"window_s: must be in"):
        store.refresh()
    assert store.rules() == (RuleSettings(name="x", threshold_pct=3.0),)  # kept


def test_a_corrupt_file_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    s = settings(tmp_path)
    Path(s.state_dir).mkdir(parents=True)
    (Path(s.state_dir) / "rules.json").write_text("{not json")
    with pytest.raises(RulesError, match=r"cannot read the saved rules.*fix or delete"):
        RulesStore(s)


def test_settings_refuse_bad_rule_sets() -> None:
    from marketd.config.validators import InvalidValue

    with pytest.raises(InvalidValue, match="given twice"):
        AlertSettings(rules=(RuleSettings(name="a"), RuleSettings(name="a")))
    with pytest.raises(InvalidValue, match="carries no price"):
        AlertSettings(kinds=("depthUpdate",))
    with pytest.raises(InvalidValue, match="not a market"):
        AlertSettings(markets=("coinm",))


def test_provenance_says_where_the_rules_in_force_came_from(tmp_path: Path) -> None:
    store = RulesStore(settings(tmp_path))
    assert store.provenance() == {"rules": ["cfg: 2% in 60s, cooldown 30s"], "source": "config"}
    assert describe_rules(settings(tmp_path)) == [
        "rules in force (from alerts.rules): cfg: 2% in 60s, cooldown 30s"
    ]
    store.replace([{"name": "fast", "window_s": 10, "threshold_pct": 0.5, "cooldown_s": 5}])
    path = str(store.path)
    assert store.provenance() == {
        "rules": ["fast: 0.5% in 10s, cooldown 5s"],
        "source": "saved",
        "path": path,
        "overrides_config": True,
    }
    restarted = RulesStore(settings(tmp_path))
    assert restarted.provenance() == store.provenance()
    assert describe_rules(settings(tmp_path)) == [
        f"rules in force (from the saved file {path}): fast: 0.5% in 10s, cooldown 5s",
        f"warning: the saved file {path} overrides alerts.rules (cfg: 2% in 60s, cooldown 30s); "
        "delete it to run the configured rules",
    ]


def test_a_saved_file_equal_to_the_configuration_is_no_override(tmp_path: Path) -> None:
    RulesStore(settings(tmp_path)).replace([{"name": "cfg"}])
    store = RulesStore(settings(tmp_path))
    assert (store.source, store.provenance()["overrides_config"]) == ("saved", False)
    assert len(describe_rules(settings(tmp_path))) == 1


def test_a_broken_saved_file_is_described_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "state" / "rules.json"
    path.parent.mkdir()
    path.write_text('{"rules": [{"name": "x", "window_s": -1}]}')
    [line, fix] = describe_rules(settings(tmp_path))
    assert line.startswith(
        "warning: the saved rules cannot be used, so the detector will not start: "
        f"{path}: rules[0].window_s"
    )
    assert fix.endswith("fix or delete the file (rules then come from config)")


def test_a_saved_file_naming_an_unconfigured_notifier_is_described_as_run_refuses_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "rules.json"
    path.parent.mkdir()
    path.write_text('{"rules": [{"name": "x", "notify": ["gone"]}]}')
    [line, _fix] = describe_rules(settings(tmp_path), notifiers=["ops"])
    assert line.startswith(
        "warning: the saved rules cannot be used, so the detector will not start: "
    )
    assert "'gone'" in line
    # Without the names (a caller that does not know them) the file is taken as it is.
    assert describe_rules(settings(tmp_path))[0].startswith("rules in force (from the saved")
