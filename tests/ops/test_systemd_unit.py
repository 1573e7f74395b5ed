"""conf/systemd/marketd.service: systemd accepts it, and it asks for what marketd does."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "conf" / "systemd" / "marketd.service"
SHIPPED_EXEC = "/usr/local/bin/marketd run --config /etc/marketd/marketd.yaml"


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_unit_declares_notify_watchdog_hardening_and_environment() -> None:
    unit = parse(UNIT.read_text())
    service = unit["Service"]
    one = {key: values[-1] for key, values in service.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert one["WatchdogSec"] == "30s"
    assert one["ExecStart"] == SHIPPED_EXEC
    assert one["EnvironmentFile"] == "-/etc/marketd/marketd.env"
    assert "MARKETD_ALERTS__STATE_DIR=/var/lib/marketd" in service["Environment"]
    assert one["StateDirectory"] == "marketd"
    assert one["RestartPreventExitStatus"] == "2"  # a configuration error
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }.items():
        assert one[key] == value, key
    assert "@system-service" in service["SystemCallFilter"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package: systemd)")
    # verify checks that ExecStart's binary exists: point it at this installation's one.
    marketd = Path(sys.executable).parent / "marketd"
    assert marketd.exists(), marketd
    text = UNIT.read_text()
    assert SHIPPED_EXEC in text
    unit = tmp_path / "marketd.service"
    unit.write_text(text.replace("/usr/local/bin/marketd", str(marketd)))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # Unknown or misspelt keys are only warnings: no output at all is required.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_systemd_analyze_flags_a_bad_key(tmp_path: Path) -> None:
    """The check above is not vacuous: verify reports what it does not understand."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package: systemd)")
    marketd = Path(sys.executable).parent / "marketd"
    unit = tmp_path / "marketd.service"
    text = UNIT.read_text().replace("/usr/local/bin/marketd", str(marketd))
    unit.write_text(text.replace("WatchdogSec=", "WatchDogSec="))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "WatchDogSec" in done.stdout + done.stderr
