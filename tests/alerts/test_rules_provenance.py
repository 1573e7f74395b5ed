"""Which rules run, and from where, as an operator sees it: the start-up log of ``marketd
run`` and ``marketd check-config`` (subprocesses, loopback only)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from kit.net import free_port
from kit.wait import poll_until_blocking

SAVED = {"rules": [{"name": "tight", "window_s": 10, "threshold_pct": 0.5, "cooldown_s": 5}]}


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    dead = free_port()  # no exchange: the rules are read before any feed connects
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MARKETD_")},
        "MARKETD_ALERTS__STATE_DIR": str(tmp_path / "state"),
        "MARKETD_HTTP__LISTEN": f"127.0.0.1:{free_port()}",
        "MARKETD_LOG__FORMAT": "json",
        "MARKETD_BINANCE__SPOT_WS_URL": f"ws://127.0.0.1:{dead}",
        "MARKETD_BINANCE__FUTURES_WS_URL": f"ws://127.0.0.1:{dead}",
        **extra,
    }


def save_rules(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "rules.json"
    path.parent.mkdir()
    path.write_text(json.dumps(SAVED))
    return path


def check_config(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "marketd", "check-config"],
        capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith("# ")]


def startup_log(env: dict[str, str], log_path: Path) -> list[dict[str, object]]:
    """Start ``marketd run``, wait for its running line, stop it; its JSON log lines."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "marketd", "run"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        try:
            poll_until_blocking(
                lambda: "marketd running" in log_path.read_text(), timeout=30, what="start-up"
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]


def test_configured_rules_are_named_with_their_source(tmp_path: Path) -> None:
    env = environment(tmp_path)
    notes = check_config(env)
    assert "# rules in force (from alerts.rules): default: 2% in 60s, cooldown 30s" in notes
    assert not [n for n in notes if "overrides" in n]
    [line] = [
        x for x in startup_log(env, tmp_path / "run.log") if x["event"] == "alert rules in force"
    ]
    assert (line["source"], line["rules"]) == ("config", ["default: 2% in 60s, cooldown 30s"])


def test_a_saved_rules_file_is_named_and_said_to_override_the_configuration(
    tmp_path: Path,
) -> None:
    path = save_rules(tmp_path)
    env = environment(tmp_path)
    notes = check_config(env)
    assert (
        f"# rules in force (from the saved file {path}): tight: 0.5% in 10s, cooldown 5s" in notes
    )
    assert (
        f"# warning: the saved file {path} overrides alerts.rules (default: 2% in 60s, "
        "cooldown 30s); delete it to run the configured rules"
    ) in notes
    lines = startup_log(env, tmp_path / "run.log")
    [info] = [x for x in lines if x["event"] == "alert rules in force"]
    assert (info["source"], info["path"], info["rules"]) == (
        "saved",
        str(path),
        ["tight: 0.5% in 10s, cooldown 5s"],
    )
    [warning] = [x for x in lines if str(x["event"]).startswith("the saved rules override")]
    assert (warning["level"], warning["path"]) == ("warning", str(path))
    assert warning["configured"] == ["default: 2% in 60s, cooldown 30s"]


def test_check_config_says_when_no_detector_uses_the_rules(tmp_path: Path) -> None:
    save_rules(tmp_path)
    notes = check_config(environment(tmp_path, MARKETD_ROLES="collector"))
    assert "# no detector in this process: alerts.rules are not used here" in notes
    assert not [n for n in notes if "rules in force" in n]
