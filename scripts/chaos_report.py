"""Run the chaos suite and write its table into docs/CHAOS.md (``make chaos``).

    python scripts/chaos_report.py                  # run, then update docs/CHAOS.md
    python scripts/chaos_report.py -- -k test_b     # extra arguments go to pytest
    python scripts/chaos_report.py --rows DIR       # keep the rows (JSON) and junit.xml in DIR
    python scripts/chaos_report.py --render-only --rows DIR   # re-render from a kept run

It runs ``pytest -m chaos tests/chaos`` with this interpreter and
``CHAOS_REPORT_DIR`` set: each scenario writes its measured row there as JSON
before it asserts. The table, with the machine's facts, replaces what is between the
``chaos-report`` markers of the output file; the text around them is kept. Exit status 0
when every scenario passed, 1 when one failed (its row says so; the table is written
anyway), 2 when the output file has no markers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "docs" / "CHAOS.md"
REPORT_ENV = "CHAOS_REPORT_DIR"
BEGIN = "<!-- chaos-report:begin -->"
END = "<!-- chaos-report:end -->"
JUNIT = "junit.xml"

# Notes shown in the table, in this order, with their labels; others are left out.
NOTE_LABELS = (
    ("frames_per_s", "load {} frames/s"),
    ("records_retried", "{} records sent again"),
    ("outage_s", "Kafka unavailable {} s (from the stop until ready again)"),
    ("spool_peak_pending", "spool peak {} records pending"),
    ("ready_again_s", "ready {} s after the broker"),
    ("catch_up_s", "caught up {} s later"),
    ("drops", "{} drops"),
    ("connections_cut", "{} connections cut"),
    ("bursts", "bursts {}"),
    ("announced", "{} announcements delivered"),
    ("handovers", "{} handovers"),
    ("pending_at_kill", "{} spooled records unacked at the kill"),
    ("generated_while_dead", "{} trades generated while dead"),
    ("dead_s", "dead {} s"),
    ("injected", "{} frames injected"),
    ("counted", "{} counted as malformed/unknown"),
    ("backfilled", "{} trades backfilled"),
    ("reconnects", "{} reconnects"),
    ("dropped_as_duplicates", "{} exchange duplicates dropped by marketd"),
    ("unfilled", "{} unfilled"),
    ("status", "status stream: {}"),
    ("problems", "{}"),
)


def run_suite(rows: Path, pytest_args: list[str]) -> int:
    """``pytest -m chaos tests/chaos`` writing rows and junit.xml into ``rows``."""
    env = {**os.environ, REPORT_ENV: str(rows)}
    cmd = [sys.executable, "-m", "pytest", "-m", "chaos", "tests/chaos"]
    cmd += [f"--junitxml={rows / JUNIT}", "-p", "no:cacheprovider", *pytest_args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


def outcomes(junit: Path) -> dict[str, tuple[str, str, float]]:
    """Test name -> (passed | failed | skipped, first line of the message, seconds)."""
    out: dict[str, tuple[str, str, float]] = {}
    if not junit.exists():
        return out
    for case in ET.parse(junit).getroot().iter("testcase"):
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            child = case.find(tag)
            if child is not None:
                status = "skipped" if tag == "skipped" else "failed"
                text = child.get("message") or child.text or tag
                message = text.strip().splitlines()[0] if text.strip() else tag
                break
        out[case.get("name", "?")] = (status, message, float(case.get("time", "0")))
    return out


def load_rows(rows: Path) -> list[dict[str, Any]]:
    found = [json.loads(p.read_text()) for p in sorted(rows.glob("*.json"))]
    return sorted(found, key=lambda r: str(r.get("scenario", "")))


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def notes_text(notes: dict[str, Any]) -> str:
    parts: list[str] = []
    for key, label in NOTE_LABELS:
        value = notes.get(key)
        if value in (None, "", []) or (key == "unfilled" and value == 0):
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        parts.append(label.format(value))
    if notes.get("out_of_order"):
        parts.append(f"first deliveries out of order: {notes['out_of_order']}")
    return "; ".join(parts)


def table(rows: list[dict[str, Any]], results: dict[str, tuple[str, str, float]]) -> str:
    head = (
        "| scenario | generated | distinct in Kafka | equal | duplicates | worst latency ms "
        "| peak RSS MiB | duration s | result | notes |\n"
        "|---|--:|--:|:-:|--:|--:|--:|--:|:-:|---|\n"
    )
    lines: list[str] = []
    named = {str(r.get("test")) for r in rows}
    for row in rows:
        status, message, _ = results.get(str(row.get("test")), ("not run", "", 0.0))
        notes = notes_text(row.get("notes", {}))
        if status == "failed" and message:
            notes = f"**{message}**; {notes}" if notes else f"**{message}**"
        cells = [
            f"({row['scenario']}) {row['title']}",
            f"{row['generated']:,}",
            f"{row['distinct']:,}",
            "yes" if row["equal"] else "**no**",
            f"{row['duplicates']:,}",
            f"{row['worst_latency_ms']:,}",
            f"{row['peak_rss_mib']:.1f}",
            f"{row['duration_s']:.1f}",
            status if status == "passed" else f"**{status}**",
            notes,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    for name, (status, message, seconds) in sorted(results.items()):
        if name not in named:  # failed before it could measure anything
            cells = [name, "-", "-", "-", "-", "-", "-", f"{seconds:.1f}", f"**{status}**"]
            lines.append("| " + " | ".join([*cells, _cell(message)]) + " |")
    return head + "\n".join(lines) + "\n"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine_facts(wall_s: float | None, exit_code: int | None) -> str:
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    try:
        from marketd import __version__ as version
        from marketd.testing.devkafka import KAFKA_VERSION as kafka
    except ImportError:
        version = kafka = "unknown"
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = [
        f"date: {now}",
        f"machine: {os.cpu_count()} CPUs ({_cpu_model()}), {_memory_gib()} RAM, "
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}, marketd {version}, Apache Kafka {kafka}",
        f"commit: {commit}",
        f"delivery: kafka.delivery {os.environ.get('CHAOS_DELIVERY', 'at_least_once')} "
        "(CHAOS_DELIVERY; exactly_once reads Kafka with read_committed)",
    ]
    if wall_s is not None:
        facts.append(f"suite wall time: {wall_s:.0f} s (pytest exit code {exit_code})")
    return "".join(f"* {f}\n" for f in facts)


def render(output: Path, body: str) -> bool:
    """Replace what is between the markers of ``output`` with ``body``; False: no markers."""
    text = output.read_text() if output.exists() else ""
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        return False
    output.write_text(text[: begin + len(BEGIN)] + "\n" + body + text[end:])
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the Markdown file")
    parser.add_argument("--rows", type=Path, help="keep rows and junit.xml here (else a temp dir)")
    parser.add_argument("--render-only", action="store_true", help="do not run, render --rows")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args(argv)
    if args.render_only and args.rows is None:
        parser.error("--render-only needs --rows")
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        rows = (args.rows or Path(tmp)).resolve()
        rows.mkdir(parents=True, exist_ok=True)
        wall_s: float | None = None
        code: int | None = None
        if not args.render_only:
            for stale in [*rows.glob("*.json"), rows / JUNIT]:
                stale.unlink(missing_ok=True)
            began = time.monotonic()
            code = run_suite(rows, args.pytest_args)
            wall_s = time.monotonic() - began
        results = outcomes(rows / JUNIT)
        found = load_rows(rows)
        body = table(found, results) + "\n" + machine_facts(wall_s, code)
        if not render(args.output, body):
            print(f"{body}\nerror: {args.output} has no {BEGIN} ... {END} markers", file=sys.stderr)
            return 2
    print(f"\n{body}\nwritten to {args.output}")
    failed = [n for n, (status, _, _) in results.items() if status != "passed"]
    ok = (code in (None, 0)) and bool(results) and not failed and all(r["equal"] for r in found)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
