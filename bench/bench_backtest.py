"""Backtest throughput: ticks/s of ``marketd backtest`` over a synthetic recording, and
where the time goes.

    .venv/bin/python bench/bench_backtest.py [--symbols N] [--frames N] [--repeat N] [--dir DIR]

Records ``--frames`` USD-M ``aggTrade`` frames of ``--symbols`` symbols (one a second per
symbol of event time, each a random walk of 0.05 % steps with a 3 % jump now and then) into
a temporary directory with the real :class:`~marketd.recorder.SegmentWriter`, then runs one
price rule (2 % in 60 s) over it:

* **end to end** — :func:`marketd.backtest.run.run_backtest`, as the command does without
  ``--html`` (outcomes and all, no chart paths); the headline figure, best of ``--repeat``;
* **split** — the same stages timed one at a time per block: read (the segments read,
  decompressed and their blocks decoded to columns), decode (frames → ticks,
  :class:`~marketd.backtest.ticks.FrameTicks` and the adapter's tick lanes), detect (the
  detector's ``observe_tick`` and its outcomes), and what ``--html`` adds: chart paths
  (:class:`~marketd.backtest.paths.PricePaths`); each the best of ``--repeat``, with the
  cyclic garbage collector paused as the driver pauses it.

One process, one core; times are the process's CPU time (a busy machine's other work
does not count; the wall clock is shown beside). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from marketd.alerts.detector import Detector
from marketd.backtest.paths import PricePaths, bucket_ms_for
from marketd.backtest.run import run_backtest
from marketd.backtest.ticks import FrameTicks
from marketd.config.alerts import RuleSettings
from marketd.data.events import Tick
from marketd.data.records import Market
from marketd.recorder import Columns, SegmentWriter, directory_summary, read_blocks

T0_MS = 1_714_521_600_000
RULE = RuleSettings(name="jump", window_s=60.0, threshold_pct=2.0, cooldown_s=30.0)
KINDS = ("aggTrade",)
MARKETS = ("usdm",)
CONNECTION = "usdm-market-0"


def record(directory: Path, symbols: int, frames: int, seed: int = 7) -> int:
    """Write the recording; the number of frames written."""
    rng = random.Random(seed)
    names = [f"S{i:03d}USDT" for i in range(symbols)]
    streams = [f"{n.lower()}@aggTrade" for n in names]
    prices = [rng.uniform(0.5, 50_000) for _ in names]
    agg_ids = [1_000_000 * (i + 1) for i in range(symbols)]
    written = 0
    with SegmentWriter(directory, max_segment_s=600) as writer:
        for second in itertools.count():
            if written >= frames:
                break
            batch, times, names_of = [], [], []
            for i in range(min(symbols, frames - written)):
                step = 1 + rng.gauss(0, 0.0005)
                if rng.random() < 0.0005:
                    step *= rng.choice((1.03, 0.97))
                prices[i] *= step
                agg_ids[i] += 1
                event_ms = T0_MS + second * 1000 + i
                q = f"{rng.uniform(0.001, 5):.3f}"
                a = agg_ids[i]
                batch.append(
                    f'{{"stream":"{streams[i]}","data":{{"e":"aggTrade","E":{event_ms},'
                    f'"s":"{names[i]}","a":{a},"p":"{prices[i]:.4f}","q":"{q}","nq":"{q}",'
                    f'"f":{3 * a},"l":{3 * a + 2},"T":{event_ms},"m":false}}}}'
                )
                times.append((event_ms + 3) * 1_000_000)
                names_of.append(streams[i])
            writer.append_frames(CONNECTION, batch, times, names_of)
            written += len(batch)
    return written


def end_to_end(directory: Path) -> tuple[float, float, int, int]:
    """CPU seconds, wall-clock seconds, ticks and alerts of one run of the command's
    driver."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = run_backtest(directory, (RULE,), kinds=KINDS, markets=MARKETS, charts=False)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu, wall, result.ticks.ticks, len(result.alerts)


def split(directory: Path) -> dict[str, float]:
    """CPU seconds spent reading, decoding, detecting and keeping chart paths, stage by
    stage, chunk by chunk."""
    reading = read_blocks(directory)
    decoder = FrameTicks(KINDS, [Market(m) for m in MARKETS])
    detector = Detector((RULE,), clock=lambda: 0)
    summary = directory_summary(directory)
    paths = PricePaths(bucket_ms_for(summary["first_ns"], summary["last_ns"]))
    spent = {"read": 0.0, "decode": 0.0, "detect": 0.0, "paths": 0.0}
    gc.disable()  # as run_backtest does
    try:
        _stages(reading, decoder, detector, paths, spent)
    finally:
        gc.enable()
    return spent


def _stages(
    reading: Iterator[list[Columns]],
    decoder: FrameTicks,
    detector: Detector,
    paths: PricePaths,
    spent: dict[str, float],
) -> None:
    observe = detector.observe_tick
    ticks: list[Tick] = []
    times: list[int] = []
    clock = time.process_time
    while True:
        t0 = clock()
        block = next(reading, None)
        t1 = clock()
        if block is None:
            break
        ticks.clear()
        times.clear()
        decoder.decode_columns(block, ticks, times)
        t2 = clock()
        list(map(observe, ticks))  # as run_backtest does
        detector.take_outcomes()
        t3 = clock()
        paths.add(ticks)
        t4 = clock()
        spent["read"] += t1 - t0
        spent["decode"] += t2 - t1
        spent["detect"] += t3 - t2
        spent["paths"] += t4 - t3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="where to record (default: a temporary one)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-backtest-", dir=args.dir))
    try:
        directory = root / "recording"
        start = time.perf_counter()
        frames = record(directory, args.symbols, args.frames)
        recorded_s = time.perf_counter() - start
        size = sum(p.stat().st_size for p in directory.glob("*.seg.zst"))
        runs = [end_to_end(directory) for _ in range(args.repeat)]
        seconds, wall, ticks, alerts = min(runs)
        splits = [split(directory) for _ in range(args.repeat)]
        spent = {stage: min(s[stage] for s in splits) for stage in splits[0]}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total = sum(spent.values())
    print(
        f"recording: {frames:,} aggTrade frames of {args.symbols} symbols, "
        f"{size / 1e6:.1f} MB compressed (written in {recorded_s:.1f} s)"
    )
    print(
        f"end to end: {ticks:,} ticks in {seconds:.2f} s of CPU = {ticks / seconds:,.0f} "
        f"ticks/s ({seconds / ticks * 1e6:.2f} µs/tick; {wall:.2f} s wall clock), "
        f"{alerts} alerts; best of {args.repeat}"
    )
    print(f"{'stage (CPU time)':<34}{'s':>8}{'µs/tick':>10}{'share':>8}")
    labels = {
        "read": "read (segments, zstd, blocks)",
        "decode": "decode (frames → ticks)",
        "detect": "detect (Detector.observe_tick)",
        "paths": "chart paths (--html only)",
    }
    for stage, s in spent.items():
        print(f"{labels[stage]:<34}{s:>8.2f}{s / ticks * 1e6:>10.2f}{s / total:>8.0%}")
    print(
        json.dumps(
            {
                "bench": "backtest",
                "python": sys.version.split()[0],
                "frames": frames,
                "symbols": args.symbols,
                "ticks": ticks,
                "alerts": alerts,
                "cpu_s": round(seconds, 3),
                "wall_s": round(wall, 3),
                "ticks_per_s": round(ticks / seconds),
                "split_s": {k: round(v, 3) for k, v in spent.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
