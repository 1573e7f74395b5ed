"""Replay rate at ``--speed max``: frames/s that ``marketd replay`` delivers to one client.

    .venv/bin/python bench/bench_replay.py [--symbols N] [--frames N] [--dir DIR]

Records ``--frames`` USD-M frames of ``--symbols`` symbols (aggTrade and depth@100ms diffs,
half each, as the combined-stream text marketd records) plus one REST depth snapshot per
symbol into a temporary directory with the real :class:`~marketd.recorder.SegmentWriter`,
then runs ``marketd replay DIR --speed max`` as a separate process (it starts once
every recorded stream has a subscriber) and reads every stream (one connection per route,
combined streams) with each client of ``--clients``, a fresh replay for each:

* ``trio-websocket`` — what a Python client of this stack takes per frame (a full
  WebSocket client handing each message to the reader);
* ``raw`` — a minimal reader on a plain socket that only walks the frame headers (no
  masking, no UTF-8 check, no message objects): close to free, so the replay itself is
  what limits it.

The figures are frames/s received, with the CPU seconds of the replay process (from
/proc) and of the client (this process) beside them: the one near a whole core is the
limit. Prints a table and one JSON line per client.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio
from trio_websocket import open_websocket_url

from marketd.recorder import Entry, SegmentWriter

CLIENTS = ("trio-websocket", "raw")

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


async def consume(
    urls: dict[str, str], symbols: int, frames: int, pid: int, client: str
) -> dict[str, float]:
    names = [f"sym{i:03d}usdt" for i in range(symbols)]
    base = urls["futures_ws_url"]
    routes = {
        "public": [f"{n}@depth@100ms" for n in names],
        "market": [f"{n}@aggTrade" for n in names],
    }
    got = 0
    done = trio.Event()
    first_at: list[float] = []
    cpu0, own0 = cpu_seconds(pid), time.process_time()

    async def read(route: str, streams: list[str]) -> None:
        nonlocal got
        url = f"{base}/{route}/stream?streams={'/'.join(streams)}"
        if client == "raw":

            def count(n: int) -> bool:
                nonlocal got
                if not first_at:
                    first_at.append(time.perf_counter())
                got += n
                return got >= frames

            await raw_read(url, count)
            done.set()
            return
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
    return {
        "frames": got,
        "wall_s": wall,
        "replay_cpu_s": cpu_seconds(pid) - cpu0,
        "client_cpu_s": time.process_time() - own0,
    }


async def raw_read(url: str, count: Callable[[int], bool]) -> None:
    """Read ``url`` until ``count`` (given the data frames of each chunk read) says
    enough: an HTTP upgrade on a plain socket, then only the frame headers walked (server
    frames are unmasked)."""
    rest = url.removeprefix("ws://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    stream = await trio.open_tcp_stream(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send_all(
        f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += await stream.receive_some(65536)
    head, _, buf = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head[:80]
    async with stream:
        while True:
            n, at, end = 0, 0, len(buf)
            while at + 2 <= end:
                size = buf[at + 1] & 0x7F
                start = at + 2
                if size == 126:
                    if start + 2 > end:
                        break
                    size = int.from_bytes(buf[start : start + 2], "big")
                    start += 2
                elif size == 127:
                    if start + 8 > end:
                        break
                    size = int.from_bytes(buf[start : start + 8], "big")
                    start += 8
                if start + size > end:
                    break
                if buf[at] & 0x0F == 0x1:  # a text frame (no fragments here)
                    n += 1
                at = start + size
            if n and count(n):
                return
            buf = buf[at:]
            data = await stream.receive_some(1 << 20)
            if not data:
                return
            buf += data


def replay_to(directory: Path, symbols: int, frames: int, client: str) -> dict[str, float]:
    """A fresh ``marketd replay --speed max`` of ``directory`` read by ``client``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "marketd", "replay", str(directory), "--speed", "max",
         "--wait", "30", "--host", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())
        result: dict[str, float] = trio.run(consume, urls, symbols, frames, proc.pid, client)
        return result
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--dir", type=Path, default=None, help="keep the recording here")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated")
    args = parser.parse_args()
    clients = args.clients.split(",")
    if unknown := set(clients) - set(CLIENTS):
        parser.error(f"unknown clients {sorted(unknown)}; known: {', '.join(CLIENTS)}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    directory = args.dir or tmp / "recording"
    try:
        started = time.perf_counter()
        raw = record(directory, args.symbols, args.frames)
        stored = sum(f.stat().st_size for f in directory.glob("*.seg.zst"))
        took = time.perf_counter() - started
        print(f"recorded {args.frames:,} frames ({raw / args.frames:.0f} B each as text, "
              f"{stored / args.frames:.1f} B stored) in {took:.1f} s")  # fmt: skip
        print(f"{'client':>15} {'frames':>10} {'wall s':>8} {'frames/s':>10} "
              f"{'replay CPU s':>13} {'client CPU s':>13} {'replay µs/frame':>16}")  # fmt: skip
        for client in clients:
            result = replay_to(directory, args.symbols, args.frames, client)
            rate = result["frames"] / result["wall_s"]
            print(f"{client:>15} {result['frames']:>10,} {result['wall_s']:>8.2f} "
                  f"{rate:>10,.0f} {result['replay_cpu_s']:>13.2f} "
                  f"{result['client_cpu_s']:>13.2f} "
                  f"{result['replay_cpu_s'] / result['frames'] * 1e6:>16.1f}")  # fmt: skip
            print(json.dumps({"bench": "replay", "client": client, "frames_per_s": round(rate),
                              "stored_bytes_per_frame": round(stored / args.frames, 1),
                              **{k: round(v, 3) for k, v in result.items()}}))  # fmt: skip
    finally:
        if args.dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
