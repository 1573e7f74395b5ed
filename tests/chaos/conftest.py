"""Fixtures of the chaos suite (issue 6): unique topics, and each scenario's report row.

Run it alone with ``pytest -m chaos tests/chaos``; ``scripts/chaos_report.py`` (``make
chaos``) runs it with ``CHAOS_REPORT_DIR`` set and renders docs/CHAOS.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chaoskit import REPORT_ENV, Measurement, Report, Topics, Window, write_row


@pytest.fixture
def topics(kafka_topic: Callable[[str], str]) -> Topics:
    return Topics.unique(kafka_topic)


@pytest.fixture
def report_dir() -> Path | None:
    """``$CHAOS_REPORT_DIR`` (not ``MARKETD_*``: marketd reads every such variable as
    configuration and refuses unknown keys)."""
    value = os.environ.get(REPORT_ENV, "").strip()
    return Path(value) if value else None


@pytest.fixture
def report(request: pytest.FixtureRequest, report_dir: Path | None) -> Report:
    """``report("a", "title", measurement, window)``: write the scenario's row (when the
    report directory is set) before the test asserts, so a failing scenario has its row."""

    def write(scenario: str, title: str, result: Measurement, window: Window) -> dict[str, Any]:
        return write_row(report_dir, request.node.name, scenario, title, result, window)

    return write
