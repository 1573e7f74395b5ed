"""Recorder cost: the CPU the recorder's write path spends per frame, in-process.

    .venv/bin/python bench/bench_recorder.py [--recording DIR] [--batch 50] [--round 125]

Runs the stage's write path (:meth:`marketd.recorder.stage.Recorder._write`: stream names,
groups, zstd, the file writes) over frame batches of ``--batch`` frames, ``--round``
batches per write round (the stage gathers a round for ``ROUND_S``: at 25,000 msgs/s in
batches of 50, about 125), into a temporary directory. The frames are those of a
recording (``--recording``, its WebSocket data frames, e.g. one ``marketd run`` wrote
against the fake exchange), or else made up: spot trades and small depth diffs of 20
symbols with prices on a random walk (they compress about like the fake's). It prints
µs of CPU per frame (best and median of ``--repeat`` runs, process time), what that is of
one core at 25,000 msgs/s, and the compressed bytes per frame, then one JSON line.
Figures only; for instruction counts run it under ``valgrind --tool=callgrind``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from marketd.config.recorder import RecorderSettings
from marketd.data.records import FrameBatch, Market
from marketd.recorder import SegmentWriter, read
from marketd.recorder.stage import Recorder

T0_NS = 1_700_000_000_000_000_000
RATE = 25_000  # msgs/s the "% of a core" column assumes


def made_up(count: int, seed: int = 7) -> list[tuple[str, int]]:
    """(frame, received_ns): trades and 1 to 3 level depth diffs of 20 symbols."""
    rng = random.Random(seed)
    symbols = [f"SYM{i:02d}USDT" for i in range(20)]
    prices = {s: rng.uniform(1, 50_000) for s in symbols}
    trade_id = dict.fromkeys(symbols, 700_000_000)
    update_id = dict.fromkeys(symbols, 2_000_000_000)
    out = []
    for i in range(count):
        symbol = rng.choice(symbols)
        prices[symbol] *= 1 + rng.gauss(0, 0.0002)
        price, event_ms = f"{prices[symbol]:.8f}", T0_NS // 1_000_000 + i // 25
        if rng.random() < 0.4:
            trade_id[symbol] += 1
            data = (f'{{"e":"trade","E":{event_ms},"s":"{symbol}","t":{trade_id[symbol]},'
                    f'"p":"{price}","q":"{rng.uniform(0, 2):.8f}","T":{event_ms},'
                    f'"m":{rng.choice(("true", "false"))},"M":true}}')  # fmt: skip
            stream = f"{symbol.lower()}@trade"
        else:
            first = update_id[symbol] + 1
            update_id[symbol] += rng.randint(1, 3)
            levels = ",".join(f'["{price}","{rng.uniform(0, 5):.8f}"]'
                              for _ in range(rng.randint(1, 3)))  # fmt: skip
            data = (f'{{"e":"depthUpdate","E":{event_ms},"s":"{symbol}","U":{first},'
                    f'"u":{update_id[symbol]},"b":[{levels}],"a":[]}}')  # fmt: skip
            stream = f"{symbol.lower()}@depth@100ms"
        out.append((f'{{"stream":"{stream}","data":{data}}}', T0_NS + i * 40_000))
    return out


def recorded(directory: Path, count: int) -> list[tuple[str, int]]:
    """The first ``count`` WebSocket data frames of a recording."""
    out = []
    for entry in read(directory):
        if entry.kind == "ws" and entry.stream:
            out.append((entry.payload.decode(), entry.received_ns))
            if len(out) == count:
                break
    return out


def run(rounds: list[list[FrameBatch | object]]) -> tuple[float, int]:
    """CPU seconds of writing ``rounds``, and the bytes the segments took."""
    with tempfile.TemporaryDirectory(prefix="marketd-bench-recorder-") as tmp:
        recorder = Recorder(RecorderSettings(directory=tmp))
        writer = SegmentWriter(tmp)
        start = time.process_time()
        for batches in rounds:
            recorder._write(writer, batches)  # type: ignore[arg-type]  # the stage's round
        writer.close()
        spent = time.process_time() - start
        size = sum(p.stat().st_size for p in Path(tmp).glob("*.seg.zst"))
    return spent, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", type=Path, help="take the frames of this recording")
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=50, help="frames per FrameBatch")
    parser.add_argument("--round", type=int, default=125, help="batches per write round")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    frames = recorded(args.recording, args.frames) if args.recording else made_up(args.frames)
    if not frames:
        raise SystemExit("no frames to record")
    b = args.batch
    batches = [
        FrameBatch(Market.SPOT, "spot-0", [f for f, _ in frames[i : i + b]],
                   [t for _, t in frames[i : i + b]])
        for i in range(0, len(frames), b)
    ]  # fmt: skip
    rounds: list[list[FrameBatch | object]] = [
        list(batches[i : i + args.round]) for i in range(0, len(batches), args.round)
    ]
    per_frame = []
    size = 0
    for _ in range(args.repeat):
        spent, size = run(rounds)
        per_frame.append(spent / len(frames) * 1e6)
    best, median = min(per_frame), statistics.median(per_frame)
    result = {
        "bench": "recorder",
        "frames": len(frames),
        "source": str(args.recording) if args.recording else "made up",
        "batch": b,
        "round": args.round,
        "us_per_frame_best": round(best, 2),
        "us_per_frame_median": round(median, 2),
        "core_at_25k_pct": round(best * RATE / 1e4, 1),
        "bytes_per_frame": round(size / len(frames), 1),
        "raw_bytes_per_frame": round(sum(len(f) for f, _ in frames) / len(frames), 1),
    }
    print(f"{'µs/frame (best / median)':28} {best:.2f} / {median:.2f}")
    print(f"{'% of a core at 25k msgs/s':28} {result['core_at_25k_pct']}")
    print(f"{'bytes/frame on disk (raw)':28} {result['bytes_per_frame']} "
          f"({result['raw_bytes_per_frame']})")  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
