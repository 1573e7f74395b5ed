"""The ``notifications:`` section and ``alerts.rules[].notify``: loading, every problem at
once, secrets masked (render, repr, problems, ``marketd check-config``), the environment
overlay, and rules changed at runtime."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from marketd.alerts.rules import RulesError, RulesStore, parse_rules, rule_text
from marketd.config.alerts import AlertSettings, RuleSettings
from marketd.config.load import load_settings, render_settings
from marketd.config.notify import NotifierSettings
from marketd.errors import ConfigError

HOOK_SECRET = "hook-secret-0xDEADBEEF"
BOT_TOKEN = "987654:bot-TOKEN_value"
DISCORD_URL = "https://discord.com/api/webhooks/42/discord-TOKEN-value"
SECRETS = (HOOK_SECRET, BOT_TOKEN, "discord-TOKEN-value")

GOOD = f"""
alerts:
  rules:
    - name: jump
      notify: [ops, chat]
    - name: big
      threshold_pct: 5
      notify: [desk]
notifications:
  - name: ops
    kind: webhook
    url: https://hooks.example.com/marketd
    secret: {HOOK_SECRET}
    max_queue: 10
  - name: chat
    kind: telegram
    bot_token: "{BOT_TOKEN}"
    chat_id: "-1001234567890"
    timeout_s: 5
  - name: desk
    kind: discord
    url: {DISCORD_URL}
    max_retries: 0
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "marketd.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ or {})
    return list(caught.value.problems)


def test_notifiers_load_and_rules_name_them(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), {})
    ops, chat, desk = settings.notifications
    assert ops == NotifierSettings(
        name="ops", kind="webhook", url="https://hooks.example.com/marketd", secret=HOOK_SECRET,
        max_queue=10,
    )  # fmt: skip
    assert (chat.kind, chat.bot_token, chat.chat_id, chat.api_base, chat.timeout_s) == (
        "telegram", BOT_TOKEN, "-1001234567890", "https://api.telegram.org", 5.0
    )  # fmt: skip
    assert (desk.kind, desk.url, desk.max_retries, desk.max_queue) == (
        "discord", DISCORD_URL, 0, 100
    )  # fmt: skip
    assert [(r.name, r.notify) for r in settings.alerts.rules] == [
        ("jump", ("ops", "chat")), ("big", ("desk",))
    ]  # fmt: skip
    assert [n.target() for n in settings.notifications] == [
        "https://hooks.example.com", "https://api.telegram.org", "https://discord.com"
    ]  # fmt: skip


def test_secrets_are_masked_in_the_rendering_and_repr(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), {})
    text = render_settings(settings)
    shown = yaml.safe_load(text)["notifications"]
    assert [(n["name"], n["url"], n["secret"], n["bot_token"]) for n in shown] == [
        ("ops", "***", "***", ""), ("chat", "", "", "***"), ("desk", "***", "", "")
    ]  # fmt: skip
    assert shown[1]["chat_id"] == "-1001234567890"
    for secret in SECRETS:
        assert secret not in text
        assert secret not in repr(settings)


def strip_source(problem: str) -> str:
    return re.sub(r" \((?:[^()]*\.yaml:\d+|from MARKETD_\w+)\)$", "", problem)


def test_every_problem_is_reported_at_once_without_quoting_a_secret(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
alerts:
  rules:
    - name: jump
      notify: [ops, nobody, ops, "bad name"]
notifications:
  - name: ops
    kind: webhook
  - name: chat
    kind: telegram
    url: https://example.com/
    bot_token: "not/a/token-{BOT_TOKEN}"
    chat_id: "someone"
  - name: desk
    kind: discord
    url: "ftp://discord.com/api/webhooks/42/discord-TOKEN-value"
    secret: {HOOK_SECRET}
  - name: desk
    kind: slack
  - kind: webhook
    url: https://x.example
    secret: s
""",
    )
    problems = problems_of(path)
    assert [strip_source(p) for p in problems] == [
        "alerts.rules[0].notify: 'bad name' is not a notifier name (1-40 of A-Z a-z 0-9 _ . -)",
        "alerts.rules[0].notify: 'ops' is given twice",
        "notifications[0].url: is needed for kind webhook (the URL to POST to)",
        "notifications[0].secret: is needed for kind webhook (the key that signs each request)",
        "notifications[1].url: is only for kind webhook or discord, not telegram",
        "notifications[1].bot_token: must look like 123456:ABC-DEF... "
        "(the value is secret and not shown)",
        "notifications[1].chat_id: must be a numeric chat id or @channelname, got 'someone'",
        "notifications[2].url: must be an http:// or https:// URL with a host "
        "(the value is secret and not shown)",
        "notifications[2].secret: is only for kind webhook, not discord",
        "notifications[3].kind: must be one of webhook, telegram, discord; got 'slack'",
        "notifications[4].name: required key is missing",
    ]
    for problem in problems:
        for secret in SECRETS:
            assert secret not in problem


def test_relations_across_sections_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
alerts:
  rules:
    - {name: a, notify: [ops, nobody]}
    - {name: b, notify: [gone]}
notifications:
  - {name: ops, kind: webhook, url: "http://127.0.0.1:9/", secret: s}
  - {name: ops, kind: discord, url: "http://127.0.0.1:9/d"}
""",
    )
    assert [strip_source(p) for p in problems_of(path)] == [
        "alerts: rules[0].notify: 'nobody' is not a notifier (notifications: ops)",
        "alerts: rules[1].notify: 'gone' is not a notifier (notifications: ops)",
        "notifications: notifier 'ops' is given twice (names must be unique)",
    ]
    none = write(tmp_path, "alerts:\n  rules:\n    - {name: a, notify: [ops]}\n")
    assert [strip_source(p) for p in problems_of(none)] == [
        "alerts: rules[0].notify: 'ops' is not a notifier (notifications: none are configured)"
    ]


def test_unknown_names_are_not_reported_when_the_section_itself_failed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
alerts:
  rules:
    - {name: a, notify: [ops]}
notifications:
  - {name: ops, kind: webhook, url: "http://127.0.0.1:9/", secret: s, max_queue: many}
""",
    )
    assert [strip_source(p) for p in problems_of(path)] == [
        "notifications[0].max_queue: expected an integer, got 'many'"
    ]


def test_the_whole_list_can_come_from_the_environment(tmp_path: Path) -> None:
    listing = json.dumps(
        [{"name": "ops", "kind": "webhook", "url": "https://h.example/x", "secret": HOOK_SECRET}]
    )
    rules = write(tmp_path, "alerts:\n  rules:\n    - {name: a, notify: [ops]}\n")
    settings = load_settings(rules, {"MARKETD_NOTIFICATIONS": listing})
    assert settings.notifications[0].secret == HOOK_SECRET
    bad = json.dumps([{"name": "ops", "kind": "webhook", "secret": HOOK_SECRET}])
    assert problems_of(rules, {"MARKETD_NOTIFICATIONS": bad}) == [
        "notifications[0].url: is needed for kind webhook (the URL to POST to) "
        "(from MARKETD_NOTIFICATIONS)"
    ]


def marketd_cmd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "marketd", *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MARKETD_")} | env,
    )  # fmt: skip


def test_check_config_masks_the_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + f"  # {len(SECRETS)} secrets above\n")
    result = marketd_cmd(
        "check-config", "--config", str(path), env={"MARKETD_ALERTS__STATE_DIR": str(tmp_path)}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shown = yaml.safe_load(result.stdout)
    assert [n["url"] for n in shown["notifications"]] == ["***", "", "***"]
    assert [n["bot_token"] for n in shown["notifications"]] == ["", "***", ""]
    rules = "rules in force (from alerts.rules): jump: 2% in 60s, cooldown 30s, notify ops, chat"
    assert rules in result.stdout
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr


def test_check_config_problems_mask_the_secrets(tmp_path: Path) -> None:
    no_scheme = "url: discord.com/api/webhooks/42/discord-TOKEN-value"
    bad = GOOD.replace(f"url: {DISCORD_URL}", no_scheme)
    result = marketd_cmd("check-config", "--config", str(write(tmp_path, bad)), env={})
    assert result.returncode == 2
    assert "notifications[2].url: must be an http:// or https:// URL" in result.stdout
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr


# -- rules changed at runtime -------------------------------------------------------------


def test_runtime_rules_accept_notify_and_refuse_unknown_names(tmp_path: Path) -> None:
    assert parse_rules([{"name": "a", "notify": ["ops"]}], {"ops", "chat"}) == (
        RuleSettings(name="a", notify=("ops",)),
    )
    with pytest.raises(RulesError) as caught:
        parse_rules([{"name": "a", "notify": ["ops", "nobody"]}, {"name": "b"}], {"chat", "ops"})
    assert caught.value.problems == [
        "rules[0].notify: 'nobody' is not a notifier (notifications: chat, ops)"
    ]
    with pytest.raises(RulesError) as caught:
        parse_rules([{"name": "a", "notify": "ops"}, {"name": "b", "notify": [1]}], {"ops"})
    assert caught.value.problems == [
        "rules[0].notify: expected a list of notifier names",
        "rules[1].notify: expected a list of notifier names",
    ]
    # Without the configured names (a store that was not told them) names are not checked.
    assert parse_rules([{"name": "a", "notify": ["x"]}])[0].notify == ("x",)


def test_the_rules_store_checks_notify_on_replace_and_on_load(tmp_path: Path) -> None:
    settings = AlertSettings(state_dir=str(tmp_path / "state"), rules=(RuleSettings(name="c"),))
    store = RulesStore(settings, notifiers=["ops"])
    with pytest.raises(RulesError):
        store.replace([{"name": "a", "notify": ["nobody"]}])
    assert store.rules() == (RuleSettings(name="c"),)
    store.replace([{"name": "a", "notify": ["ops"]}])
    saved = json.loads(store.path.read_text(encoding="utf-8"))
    assert saved == {
        "rules": [{"name": "a", "window_s": 60.0, "threshold_pct": 2.0, "cooldown_s": 30.0,
                   "notify": ["ops"]}]
    }  # fmt: skip
    assert RulesStore(settings, notifiers=["ops"]).rules() == (
        RuleSettings(name="a", notify=("ops",)),
    )
    # The notifier was removed from the configuration: the saved file no longer fits.
    with pytest.raises(RulesError) as caught:
        RulesStore(settings, notifiers=[])
    assert caught.value.problems[0].endswith(
        "rules[0].notify: 'ops' is not a notifier (notifications: none are configured)"
    )


def test_rule_text_names_the_notifiers() -> None:
    assert rule_text(RuleSettings(name="a", notify=("ops", "chat"))) == (
        "a: 2% in 60s, cooldown 30s, notify ops, chat"
    )
    assert rule_text(RuleSettings(name="a")) == "a: 2% in 60s, cooldown 30s"


def test_a_secret_of_the_wrong_type_is_not_quoted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
notifications:
  - {name: ops, kind: webhook, url: "http://127.0.0.1:9/", secret: 987654321}
  - {name: chat, kind: telegram, bot_token: [55555, 66666], chat_id: "1"}
""",
    )
    problems = [strip_source(p) for p in problems_of(path)]
    assert problems == [
        "notifications[0].secret: must be a string (the value is secret, not shown)",
        "notifications[1].bot_token: must be a string (the value is secret, not shown)",
    ]
