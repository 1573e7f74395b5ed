"""Run alert rules over a recording (marketd's recorder directory) and report what they
would have raised, and what the price did 1, 5 and 15 minutes after each alert.

The frames are decoded as the live pipeline decodes them and fed to the real detector, so
every alert, and its id, is the one a live detector would have raised on those frames
(starting with empty windows at --from). The report goes to the terminal: per rule the
alerts by kind and direction with the mean and median move after each alert (+ the price
continued the alert's way, - it reversed), then the alerts. --json, --csv and --html also
write it to files; the same recording and rules always give the same bytes.

rules:
  A YAML or JSON file: a list of rules, {"rules": [...]} (the gateway's saved
  rules.json), or a marketd configuration file (its alerts.rules, and its alerts.kinds
  and alerts.markets unless --kinds / --markets are given). Without a configuration
  file the detector watches every price kind on both markets; give the daemon's
  alerts.kinds and alerts.markets to reproduce its alerts exactly.

times:
  --from and --to select the frames by the time they were received: ISO-8601 (UTC
  unless an offset is given), e.g. 2024-05-01T12:00:00Z, or epoch milliseconds. The
  alerts of frames received in [--from, --to) are reported; reading goes on up to 16
  minutes past --to for their outcomes.

example:
  marketd backtest var/recording --rules rules.yaml --from 2024-05-01T00:00:00Z \\
      --to 2024-05-02T00:00:00Z --html report.html --csv alerts.csv

exit codes:
  0  the report was made (damaged segments are counted in it, not fatal)
  1  the recording directory cannot be read, holds no segments, or a report file
     cannot be written
  2  invalid command line or rules file
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from marketd.backtest import inputs
from marketd.backtest.inputs import InputError
from marketd.backtest.page import render_page
from marketd.backtest.report import build_report, to_csv, to_json
from marketd.backtest.run import RunResult, run_backtest
from marketd.backtest.text import render_text
from marketd.config.alerts import ALERT_MARKETS, PRICE_KINDS
from marketd.recorder.format import SEGMENT_SUFFIX
from marketd.recorder.index import list_segments

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

PROGRESS_INTERVAL_S = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the backtest's arguments to ``parser``."""
    parser.add_argument("directory", metavar="DIR", help="the recording directory")
    parser.add_argument(
        "--rules", metavar="FILE", required=True, type=Path,
        help="YAML or JSON: a list of rules, {rules: [...]}, or a marketd configuration",
    )  # fmt: skip
    parser.add_argument(
        "--from", dest="start", metavar="T", type=inputs.time_ns,
        help="first receive time (ISO-8601 UTC or epoch ms; default: the recording's start)",
    )  # fmt: skip
    parser.add_argument(
        "--to", dest="end", metavar="T", type=inputs.time_ns,
        help="receive time to stop at, exclusive (default: the recording's end)",
    )  # fmt: skip
    parser.add_argument(
        "--kinds", metavar="K,K", type=inputs.kinds,
        help=f"event kinds the detector reads (default: all of {', '.join(PRICE_KINDS)})",
    )  # fmt: skip
    parser.add_argument(
        "--markets", metavar="M,M", type=inputs.markets,
        help=f"markets the detector watches (default: {', '.join(ALERT_MARKETS)})",
    )  # fmt: skip
    parser.add_argument("--json", metavar="FILE", type=Path, help="write the report as JSON")
    parser.add_argument("--csv", metavar="FILE", type=Path, help="write the alerts as CSV")
    parser.add_argument("--html", metavar="FILE", type=Path,
                        help="write the report as an HTML page with charts")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args: argparse.Namespace) -> int:
    """Run the backtest ``args`` describe; print the report; return the exit code."""
    try:
        rules_file = inputs.load_rules_file(args.rules)
    except InputError as exc:
        return _error(str(exc), EXIT_USAGE)
    if args.start is not None and args.end is not None and args.start >= args.end:
        return _error("--from must be before --to", EXIT_USAGE)
    kinds = args.kinds or rules_file.kinds or PRICE_KINDS
    markets = args.markets or rules_file.markets or ALERT_MARKETS
    directory = Path(args.directory)
    try:
        if not list_segments(directory):
            return _error(
                f"{str(directory)!r} holds no recording segments (*{SEGMENT_SUFFIX})",
                EXIT_FAILURE,
            )
    except OSError as exc:
        return _error(f"cannot read the recording {str(directory)!r}: {_reason(exc)}",
                      EXIT_FAILURE)  # fmt: skip
    progress = ProgressLine(sys.stderr, enabled=not args.quiet)
    try:
        result = run_backtest(
            args.directory, rules_file.rules, kinds=kinds, markets=markets,
            start_ns=args.start, end_ns=args.end, charts=args.html is not None,
            progress=progress,
        )  # fmt: skip
    except OSError as exc:
        progress.abandon()
        return _error(f"cannot read the recording {str(directory)!r}: {_reason(exc)}",
                      EXIT_FAILURE)  # fmt: skip
    progress.finish(result)
    report = build_report(result)
    outputs: list[tuple[Path, bytes]] = []
    if args.json is not None:
        outputs.append((args.json, to_json(report)))
    if args.csv is not None:
        outputs.append((args.csv, to_csv(report).encode()))
    if args.html is not None:
        outputs.append((args.html, render_page(report).encode()))
    sys.stdout.write(render_text(report))
    sys.stdout.flush()
    for path, data in outputs:
        try:
            path.write_bytes(data)
        except OSError as exc:
            return _error(f"cannot write {str(path)!r}: {_reason(exc)}", EXIT_FAILURE)
    return EXIT_OK


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class ProgressLine:
    """The run's progress on one line of ``stream``: rewritten at most every
    ``interval`` seconds when it is a terminal; else only the final line. Nothing when
    disabled (``--quiet``)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        enabled: bool,
        interval: float = PROGRESS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._enabled = enabled
        self._live = enabled and stream.isatty()
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._next = self._started + interval
        self._shown = False

    def __call__(self, fraction: float, entries: int, alerts: int) -> None:
        if not self._live:
            return
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval
        self._stream.write(
            f"\rbacktest: {fraction:6.1%} of the recording, {entries:,} entries, "
            f"{alerts:,} alerts\x1b[K"
        )
        self._stream.flush()
        self._shown = True

    def abandon(self) -> None:
        """End a progress line left on the terminal (the run failed)."""
        if self._shown:
            self._stream.write("\n")

    def finish(self, result: RunResult) -> None:
        if not self._enabled:
            return
        seconds = max(self._clock() - self._started, 1e-9)
        ticks = result.ticks.ticks
        line = (
            f"backtest: {result.read.entries:,} entries, {ticks:,} ticks, "
            f"{len(result.alerts):,} alerts in {seconds:.1f} s ({ticks / seconds:,.0f} ticks/s)"
        )
        # Over the progress line on a terminal, else a line of its own.
        self._stream.write(f"\r{line}\x1b[K\n" if self._shown else f"{line}\n")
        self._stream.flush()
