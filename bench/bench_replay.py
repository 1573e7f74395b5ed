"""Replay rate at ``--speed max``: frames/s that ``marketd replay`` delivers to one client.

    .venv/bin/python bench/bench_replay.py [--symbols N] [--frames N] [--dir DIR]

Records ``--frames`` USD-M frames of ``--symbols`` symbols (aggTrade and depth@100ms diffs,
half each, as the combined-stream text marketd records) plus one REST depth snapshot per
symbol into a temporary directory with the real :class:`~marketd.recorder.SegmentWriter`,
then runs ``marketd replay DIR --speed max`` as a separate process (it starts once
every recorded stream has a subscriber) and reads every
stream with one trio-websocket client (one connection per route, combined streams). The
replay is limited only by that client: the figure is frames/s received, with the replay
process's CPU seconds (from /proc) beside it. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from trio_websocket import open_websocket_url

from marketd.recorder import Entry, SegmentWriter

T0_NS = 1_796_000_000_000_000_000


def record(directory: Path, symbols: int, frames: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    names = [f"sym{i:03d}usdt" for i in range(symbols)]
    writer = SegmentWriter(directory)
    bytes_in = 0
    try:
        for i, name in enumerate(names):
            body = json.dumps({"lastUpdateId": 1000, "E": 1, "T": 1,
                               "bids": [["100.0", "1"]], "asks": [["100.1", "1"]]})  # fmt: skip
            writer.append(Entry(T0_NS + i, "rest", "http://x/usdm",
                                f"/fapi/v1/depth?symbol={name.upper()}&limit=1000",
                                body.encode()))  # fmt: skip
        update = dict.fromkeys(names, 1000)
        agg = dict.fromkeys(names, 1)
        for n in range(frames):
            name = names[n % symbols]
            ns = T0_NS + 1_000_000 + n * 50_000  # 20,000 frames per recorded second
            ms = ns // 1_000_000
            price = f"{100 + rng.random():.4f}"
            if n % 2:
                u = update[name]
                data = {"e": "depthUpdate", "E": ms, "T": ms, "s": name.upper(), "U": u + 1,
                        "u": u + 3, "pu": u, "b": [[price, "1.5"]], "a": []}  # fmt: skip
                update[name] = u + 3
                stream, connection = f"{name}@depth@100ms", "usdm-public-0"
            else:
                a = agg[name]
                agg[name] = a + 1
                data = {"e": "aggTrade", "E": ms, "s": name.upper(), "a": a, "p": price,
                        "q": "0.010", "f": a, "l": a, "T": ms, "m": bool(n % 3)}  # fmt: skip
                stream, connection = f"{name}@aggTrade", "usdm-market-0"
            text = json.dumps({"stream": stream, "data": data}, separators=(",", ":"))
            bytes_in += len(text)
            writer.append(Entry(ns, "ws", connection, stream, text.encode()))
    finally:
        writer.close()
    return bytes_in


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def consume(urls: dict[str, str], symbols: int, frames: int, pid: int) -> dict[str, float]:
    names = [f"sym{i:03d}usdt" for i in range(symbols)]
    base = urls["futures_ws_url"]
    routes = {
        "public": [f"{n}@depth@100ms" for n in names],
        "market": [f"{n}@aggTrade" for n in names],
    }
    got = 0
    done = trio.Event()
    first_at: list[float] = []
    cpu0 = cpu_seconds(pid)

    async def read(route: str, streams: list[str]) -> None:
        nonlocal got
        url = f"{base}/{route}/stream?streams={'/'.join(streams)}"
        async with open_websocket_url(url, max_message_size=1 << 24) as ws:
            while got < frames:
                await ws.get_message()
                if not first_at:
                    first_at.append(time.perf_counter())
                got += 1
            done.set()

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            for route, streams in routes.items():
                nursery.start_soon(read, route, streams)
            await done.wait()
            nursery.cancel_scope.cancel()
    wall = time.perf_counter() - first_at[0]
    return {"frames": got, "wall_s": wall, "replay_cpu_s": cpu_seconds(pid) - cpu0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--dir", type=Path, default=None, help="keep the recording here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    directory = args.dir or tmp / "recording"
    try:
        started = time.perf_counter()
        raw = record(directory, args.symbols, args.frames)
        stored = sum(f.stat().st_size for f in directory.glob("*.seg.zst"))
        took = time.perf_counter() - started
        print(f"recorded {args.frames:,} frames ({raw / args.frames:.0f} B each as text, "
              f"{stored / args.frames:.1f} B stored) in {took:.1f} s")  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "marketd", "replay", str(directory), "--speed", "max",
             "--wait", "30", "--host", "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            urls = json.loads(proc.stdout.readline())
            result = trio.run(consume, urls, args.symbols, args.frames, proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
        rate = result["frames"] / result["wall_s"]
        print(f"{'frames':>10} {'wall s':>8} {'frames/s':>10} {'replay CPU s':>13} "
              f"{'µs CPU/frame':>13}")  # fmt: skip
        print(f"{result['frames']:>10,} {result['wall_s']:>8.2f} {rate:>10,.0f} "
              f"{result['replay_cpu_s']:>13.2f} "
              f"{result['replay_cpu_s'] / result['frames'] * 1e6:>13.1f}")  # fmt: skip
        print(json.dumps({"bench": "replay", "frames_per_s": round(rate),
                          "stored_bytes_per_frame": round(stored / args.frames, 1),
                          **{k: round(v, 3) for k, v in result.items()}}))  # fmt: skip
    finally:
        if args.dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
