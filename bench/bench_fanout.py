"""Alert fan-out latency: publish into the gateway's hub → receipt at N WebSocket clients.

    .venv/bin/python bench/bench_fanout.py [--clients 500] [--alerts 200] [--interval-ms 20]
                                           [--batch 1] [--client-procs 1]

The gateway (create_app + install_gateway, Hypercorn's trio worker) runs in this
process on 127.0.0.1:0; the clients (trio-websocket) run in ``--client-procs`` separate
processes so that they do not share the server's CPU. Each alert's publish time and each
client's receipt time are wall-clock nanoseconds (one host, one clock). Prints a table
and one JSON line: latency p50/p90/p99/max over every (alert, client) pair, the cost of
one ``publish()`` call, deliveries and drops.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import orjson
import prometheus_client
import trio
import trio_websocket

from marketd.alerts.model import Alert, Direction
from marketd.config.alerts import GatewaySettings
from marketd.gateway import AlertHub, install_gateway
from marketd.obs.web import create_app, serve_http

# -- client worker (a separate process) ----------------------------------------------------


async def _client(
    host: str,
    port: int,
    expect: int,
    receipts: dict[str, list[int]],
    ready: trio.Semaphore,
    done: trio.Semaphore,
) -> None:
    stream = await trio.open_tcp_stream(host, port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, f"{host}:{port}", "/ws/alerts", message_queue_size=4096
            )
            try:
                first = orjson.loads(await ws.get_message())
                assert first["type"] == "replay"
                ready.release()
                got = 0
                while got < expect:
                    message = orjson.loads(await ws.get_message())
                    now = time.time_ns()
                    batch = [message["alert"]] if message["type"] == "alert" else message["alerts"]
                    for alert in batch:
                        receipts.setdefault(alert["id"], []).append(now)
                    got += len(batch)
                done.release()
                await trio.sleep_forever()
            finally:
                with trio.move_on_after(2) as scope:
                    scope.shield = True
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await stream.aclose()


async def _worker(host: str, port: int, clients: int, expect: int) -> None:
    receipts: dict[str, list[int]] = {}
    ready = trio.Semaphore(0)
    done = trio.Semaphore(0)
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(_client, host, port, expect, receipts, ready, done)
        for _ in range(clients):
            await ready.acquire()
        print("ready", flush=True)
        with trio.move_on_after(120):
            for _ in range(clients):
                await done.acquire()
        sys.stdout.write(json.dumps(receipts) + "\n")
        sys.stdout.flush()
        nursery.cancel_scope.cancel()


# -- server and publisher ---------------------------------------------------------------


def _alert(i: int) -> Alert:
    now = int(time.time() * 1000)
    return Alert(
        id=f"BENCH{i % 97}USDT-usdm-default-{i}",
        symbol=f"BENCH{i % 97}USDT",
        market="usdm",
        rule="default",
        direction=Direction.UP if i % 2 else Direction.DOWN,
        change_pct=2.5 if i % 2 else -2.5,
        price="65432.10",
        price_time_ms=now,
        base_price="63800.00",
        base_time_ms=now - 45_000,
        detected_at_ms=now,
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    settings = GatewaySettings(replay=0, client_queue=args.queue)
    hub = AlertHub(history=1000, replay=0, client_queue=args.queue)
    app = create_app(lambda: (True, {}), prometheus_client.CollectorRegistry())
    shutdown = trio.Event()
    install_gateway(app, hub, None, settings, shutdown)
    published: dict[str, int] = {}
    publish_cost: list[float] = []
    total = args.alerts * args.batch
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve_http, app, "127.0.0.1:0", shutdown)
        host, _, port = binds[0].removeprefix("http://").rpartition(":")
        share = [args.clients // args.client_procs] * args.client_procs
        share[0] += args.clients - sum(share)
        procs = []
        for n in share:
            command = [sys.executable, __file__, "--worker", host, port, str(n), str(total)]
            spawn = functools.partial(subprocess.Popen, command, stdout=subprocess.PIPE, text=True)
            procs.append(await trio.to_thread.run_sync(spawn))
        try:
            for proc in procs:
                assert proc.stdout is not None
                line = await trio.to_thread.run_sync(proc.stdout.readline)
                if line.strip() != "ready":
                    raise SystemExit("a client worker failed to start")
            while hub.statistics().clients < args.clients:  # noqa: ASYNC110 (polling a count)
                await trio.sleep(0.01)
            for i in range(args.alerts):
                alerts = [_alert(i * args.batch + j) for j in range(args.batch)]
                t0 = time.perf_counter()
                stamp = time.time_ns()
                hub.publish(alerts)
                publish_cost.append(time.perf_counter() - t0)
                for alert in alerts:
                    published[alert.id] = stamp
                await trio.sleep(args.interval_ms / 1000)
            latencies: list[float] = []
            received = 0
            for proc in procs:
                assert proc.stdout is not None
                line = await trio.to_thread.run_sync(proc.stdout.readline)
                for alert_id, stamps in json.loads(line).items():
                    received += len(stamps)
                    latencies += [(s - published[alert_id]) / 1e6 for s in stamps]
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
                if proc.stdout:
                    proc.stdout.close()
            shutdown.set()
    stats = hub.statistics()
    return {
        "bench": "fanout",
        "clients": args.clients,
        "alerts": total,
        "batch": args.batch,
        "interval_ms": args.interval_ms,
        "client_procs": args.client_procs,
        "expected": total * args.clients,
        "received": received,
        "dropped": dict(stats.dropped),
        "latency_ms": {
            "p50": round(_pct(latencies, 0.50), 3),
            "p90": round(_pct(latencies, 0.90), 3),
            "p99": round(_pct(latencies, 0.99), 3),
            "max": round(max(latencies), 3),
        },
        "publish_call_us": {
            "p50": round(_pct(publish_cost, 0.5) * 1e6, 1),
            "p99": round(_pct(publish_cost, 0.99) * 1e6, 1),
        },
        "cpus": os.cpu_count(),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        host, port, clients, expect = sys.argv[2], int(sys.argv[3]), *map(int, sys.argv[4:6])
        trio.run(_worker, host, port, clients, expect)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--alerts", type=int, default=200, help="publish() calls")
    parser.add_argument("--batch", type=int, default=1, help="alerts per publish() call")
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--queue", type=int, default=256, help="gateway.client_queue")
    parser.add_argument("--client-procs", type=int, default=1)
    args = parser.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.clients + 256)), hard))
    result = trio.run(_run, args)
    lat, cost = result["latency_ms"], result["publish_call_us"]
    print(f"{'clients':>8} {'alerts':>7} {'received':>9} {'p50 ms':>8} {'p90 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8} {'publish p50 µs':>15} {'dropped':>8}")  # fmt: skip
    print(f"{result['clients']:>8} {result['alerts']:>7} {result['received']:>9} "
          f"{lat['p50']:>8} {lat['p90']:>8} {lat['p99']:>8} {lat['max']:>8} "
          f"{cost['p50']:>15} {sum(result['dropped'].values()):>8}")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
