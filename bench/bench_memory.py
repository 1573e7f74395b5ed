"""Memory of one ``marketd run``: N synced order books of L levels plus C browser clients.

    .venv/bin/python bench/bench_memory.py [--books 400] [--levels 1000] [--clients 100]
                                           [--hold 20] [--shallow-first]

The fake exchange serves ``--books`` symbols per market with ``--levels`` levels per side;
marketd (embedded bus, no Kafka: the books and the gateway are what is measured) keeps a
book for each — half on spot, half on USD-M, ``depth@100ms`` — plus the default alert
rule over ``!miniTicker@arr``. The REST weight limits of both the fake and marketd are
raised so the snapshots come at once (time to ready is ``bench_books_ready``'s subject, not
this one). The books sync straight from snapshots of ``--levels`` levels (at most 1000,
``books.sync_snapshot_limit``), so they are as deep as they get once synced; with
``--shallow-first`` they sync shallow as marketd does by default (spot 100, USD-M 50) and
the bench waits until they are deepened (no book left in ``marketd_book_shallow``). Once
every book is synced and deep, ``--clients`` WebSocket clients connect to ``/ws/alerts``
(in a separate process) and stay ``--hold`` seconds while the books take diffs. Prints a
table and one JSON line: RSS when synced, with the clients, and the peak (VmHWM) — the
issue's target is <= 250 MB per process; ``--clients 0`` gives the books' share alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from marketd.testing.processes import (
    DaemonProcess,
    FakeExchangeProcess,
    metric_value,
    peak_rss_bytes,
)

MIB = 1024 * 1024
WEIGHT = 10_000_000  # per minute: snapshots never wait for the budget here


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# -- the clients (a separate process) --------------------------------------------------------


async def _hold_clients(port: int, clients: int, hold_s: float) -> None:
    connected = 0

    async def one() -> None:
        nonlocal connected
        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/ws/alerts") as ws:
            await ws.get_message()  # the replay of recent alerts
            connected += 1
            with trio.move_on_after(hold_s):
                while True:
                    await ws.get_message()

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(one)
        with trio.fail_after(60):
            while connected < clients:  # noqa: ASYNC110 (a count, polled 20 times a second)
                await trio.sleep(0.05)
        print(json.dumps({"connected": connected}), flush=True)


def _clients_main(port: int, clients: int, hold_s: float) -> None:
    trio.run(_hold_clients, port, clients, hold_s)


# -- the run ---------------------------------------------------------------------------------


def config(fx: FakeExchangeProcess, books: int, sync_levels: int) -> dict[str, Any]:
    state = fx.state()["markets"]
    spot = sorted(state["spot"]["symbols"])[: books // 2]
    usdm = sorted(state["usdm"]["symbols"])[: books - books // 2]
    urls = {k: fx.urls[k] for k in ("spot_ws_url", "spot_rest_url", "futures_ws_url",
                                    "futures_rest_url")}  # fmt: skip
    return {
        "binance": {**urls, "max_streams_per_connection": 1024},
        "subscriptions": [
            {"market": "spot", "symbols": spot, "channels": ["depth@100ms"]},
            {
                "market": "usdm",
                "symbols": usdm,
                "channels": ["depth@100ms"],
                "streams": ["!miniTicker@arr"],
            },
        ],
        "books": {
            "spot_weight_limit": WEIGHT,
            "futures_weight_limit": WEIGHT,
            "max_concurrent_snapshots": 8,
            # 0: marketd's default (shallow first, deepened later).
            "sync_snapshot_limit": sync_levels,
        },
        "log": {"format": "json", "stats_interval_s": 5.0},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    # A book keeps at most 1000 levels a side (USD-M snapshots have no more).
    sync_levels = 0 if args.shallow_first else min(args.levels, 1000)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp_name:
        tmp = Path(tmp_name)
        fake = ["--symbols", str(args.books), "--book-levels", str(args.levels),
                "--rate", str(args.rate), "--spot-rest-weight", str(WEIGHT),
                "--usdm-rest-weight", str(WEIGHT)]  # fmt: skip
        with (
            FakeExchangeProcess(tmp, *fake) as fx,
            DaemonProcess(tmp, config(fx, args.books, sync_levels)) as daemon,
        ):
            pid, began = daemon.proc.pid, time.monotonic()
            while True:
                if daemon.proc.poll() is not None:
                    raise SystemExit("marketd exited:\n" + daemon.log_tail())
                try:
                    text = daemon.metrics()
                except OSError:  # not listening yet
                    time.sleep(0.5)
                    continue
                markets = ("spot", "usdm")
                synced = sum(
                    metric_value(text, "marketd_book_state", market=m, state="synced")
                    for m in markets
                )
                # Synced books still known to fewer levels than a deep snapshot shows.
                shallow = sum(metric_value(text, "marketd_book_shallow", market=m) for m in markets)
                if synced >= args.books and not shallow:
                    break
                if time.monotonic() - began > args.sync_limit:
                    raise SystemExit(
                        f"only {synced} of {args.books} books synced, {shallow} still shallow"
                    )
                time.sleep(0.5)
            synced_s = time.monotonic() - began
            time.sleep(5.0)  # a few diffs into every book
            rss_synced = rss_bytes(pid)
            clients = subprocess.Popen(
                    [sys.executable, __file__, "--clients-worker", str(daemon.port),
                     str(args.clients), str(args.hold)],
                    stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
            assert clients.stdout is not None
            line = clients.stdout.readline()
            connected = json.loads(line)["connected"] if line else 0
            samples = []
            deadline = time.monotonic() + args.hold - 1.0
            while time.monotonic() < deadline:
                samples.append(rss_bytes(pid))
                time.sleep(0.5)
            gateway_clients = metric_value(daemon.metrics(), "marketd_gateway_clients")
            clients.wait(timeout=args.hold + 30)
            peak = peak_rss_bytes(pid)
            code = daemon.stop(timeout=60)
    return {
        "bench": "memory",
        "books": args.books,
        "levels": args.levels,
        "clients": connected,
        "gateway_clients_seen": int(gateway_clients),
        "synced_after_s": round(synced_s, 1),
        "sync_levels": sync_levels,  # 0: shallow first, then deepened
        "rss_synced_mib": round(rss_synced / MIB, 1),
        "rss_with_clients_mib": round(max(samples, default=0) / MIB, 1),
        "peak_rss_mib": round(peak / MIB, 1),
        "target_mib": 250,
        "clean_exit": code == 0,
        "load_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--clients-worker":
        _clients_main(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--books", type=int, default=400)
    parser.add_argument("--levels", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds the clients stay")
    parser.add_argument("--rate", type=float, default=2000.0, help="fake events/s per market")
    parser.add_argument("--sync-limit", type=float, default=300.0, help="seconds to sync")
    parser.add_argument(
        "--shallow-first", action="store_true", help="sync shallow, wait for the deepening"
    )
    result = run(parser.parse_args())
    rows = [
        ("books x levels", f"{result['books']} x {result['levels']}"),
        ("clients", f"{result['clients']} (gateway saw {result['gateway_clients_seen']})"),
        ("all synced after", f"{result['synced_after_s']} s"),
        ("synced from", f"{result['sync_levels'] or 'shallow, deepened'} levels"),
        ("RSS synced", f"{result['rss_synced_mib']} MiB"),
        ("RSS with clients", f"{result['rss_with_clients_mib']} MiB"),
        ("peak RSS (VmHWM)", f"{result['peak_rss_mib']} MiB (target <= 250)"),
    ]
    for name, value in rows:
        print(f"{name:>20}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
