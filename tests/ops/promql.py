"""PromQL helpers for the ops tests: metric names an expression uses; promtool runs."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
          "unless", "bool", "offset", "inf", "nan"}  # fmt: skip

# Series Prometheus makes itself (not exported by marketd).
PROMETHEUS_GENERATED = {"up"}

# PLANNED metrics: used by the dashboard/alerts before the daemon exports them. Remove each
# entry when its metric lands (the tests then check it against a live scrape).
PLANNED: dict[str, str] = {}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (not functions, keywords, labels or numbers)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    s = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?", "0", s)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        if s[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() not in _WORDS:
            names.add(match.group())
    return names


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package: prometheus)")
    return path


def run_promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def check_expressions(exprs: Iterable[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """``promtool check rules`` on a file with one recording rule per expression."""
    rules = [{"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp / "exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}))
    return run_promtool("check", "rules", str(path))


def sample_names(exposition: str) -> set[str]:
    """Series names in an exposition: samples, plus the families declared with no sample
    yet (a labelled counter before its first event), histograms with their suffixes."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names
