"""Alert fan-out latency: publish into the gateway's hub → receipt at N WebSocket clients.

    .venv/bin/python bench/bench_fanout.py [--clients 500] [--alerts 200] [--interval-ms 20]
                                           [--batch 1] [--queue 256] [--cap 0]
                                           [--client-procs 1] [--client raw|trio-websocket]
                                           [--read-every-ms 5] [--profile PATH]

The gateway (create_app + install_gateway, Hypercorn's trio worker) runs in this
process on 127.0.0.1:0; the clients run in ``--client-procs`` separate processes so that
they do not share the server's CPU. Alerts are published on a fixed schedule (one
``publish()`` call every ``--interval-ms``, not an interval after the previous one).
Each alert's publish time and each client's receipt time are wall-clock nanoseconds (one
host, one clock). The gateway's cap on alerts pushed live is off (``--cap 0``): with the
daemon's default of 20 a second, most of 50 alerts/s would be held back and summarised.

The clients: ``raw`` (default) are plain sockets in one ``selectors`` loop per process,
which do the RFC 6455 handshake and check every frame the server sends (unmasked, no
reserved bits, lengths, UTF-8 text, fragments reassembled; a ping is answered);
``trio-websocket`` are trio-websocket connections, as a browser-independent library
sees the stream, but one process of those reads at most ~28,000 messages/s (1,000
clients at 50 alerts/s are 50,000), so at that scale they measure themselves.

What the raw clients measure is marketd, not themselves (they are browsers on other
machines, standing in on the gateway's own 2 cores):

* A receipt is when the bytes arrived in the client's socket, as the kernel stamps them
  (``SO_TIMESTAMPNS``), not when the client's process got round to reading them: one
  process reading 1,000 sockets, on 2 cores shared with the gateway (and whatever else
  runs), reads tens of ms late, at times over a hundred, and stamping on reading put
  that lateness into the figures (``client_read_lag_ms`` reports it: arrival → read).
  The stamp is an upper bound: bytes that arrive while earlier ones are unread can lend
  them their later stamp.
* They read in rounds, ``--read-every-ms`` apart (default 5; 0: as soon as anything
  arrives, which is how they read before): a write to a socket whose reader sleeps in
  ``epoll_wait`` wakes it from inside the gateway's system call, work that a browser on
  another machine does not cost the gateway (3-15% of the gateway's CPU per write in
  three paired runs on the loaded 2-core machine). Stamped by the kernel, an alert is
  not counted later for being read later (unless a second message for that client
  arrives within the same round, when the stamp can be up to a round late).
* They read every ready socket first and parse (frames, UTF-8, JSON) only once nothing
  is ready (or the round is read), so that a burst of parsing does not hold back reads.

Prints a table and one JSON line: latency p50/p90/p99/max over every (alert, client)
pair and, per alert, to the LAST client that received it (``last_client_ms``: what a
user of the slowest browser waits); per alert, publish → the end of the fan-out writer's
pass that wrote it to every socket (``server_written_ms``, ``srv``: the gateway's part,
whatever the clients' processes were doing); the cost of one ``publish()`` call;
deliveries and the clients the gateway dropped during the run (not those closed as the
bench ends); the writer's counters (``fanout``: direct writes, hand-overs to a client's
own task); the CPU the gateway process (this one) and the client processes used from
the first publish to the last receipt, as a share of one core, and the gateway's per
delivery; and the load average (1, 5, 15 min, at start and end), since the machine may
be shared. ``--profile PATH`` samples this process with py-spy (``pip install py-spy``)
during the publishes and writes its collapsed stacks to PATH.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import functools
import hashlib
import json
import os
import resource
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import time
from typing import Any

import attrs
import orjson
import prometheus_client
import trio
import trio_websocket

from marketd.alerts.model import Alert, Direction
from marketd.config.alerts import GatewaySettings
from marketd.gateway import AlertHub, install_gateway
from marketd.obs.web import create_app, serve_http

WAIT_S = 120.0  # how long a worker waits for its clients' alerts

# -- client worker (a separate process): trio-websocket clients ------------------------------


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
                    if message["type"] == "suppressed":  # held back by --cap: not coming
                        got += message["count"]
                    if message["type"] not in ("alert", "alerts"):
                        continue
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


async def _trio_worker(host: str, port: int, clients: int, expect: int) -> None:
    receipts: dict[str, list[int]] = {}
    ready = trio.Semaphore(0)
    done = trio.Semaphore(0)
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(_client, host, port, expect, receipts, ready, done)
        for _ in range(clients):
            await ready.acquire()
        print("ready", flush=True)
        cpu0 = time.process_time()
        with trio.move_on_after(WAIT_S):
            for _ in range(clients):
                await done.acquire()
        _report(receipts, time.process_time() - cpu0)
        nursery.cancel_scope.cancel()


def _report(receipts: dict[str, list[int]], cpu_s: float, lags: list[int] | None = None) -> None:
    report = {"receipts": receipts, "cpu_s": cpu_s, "read_lag_ns": lags or []}
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


# -- client worker (a separate process): raw-socket clients ----------------------------------

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FrameError(Exception):
    """The server sent what RFC 6455 does not allow a server to send."""


class RawClient:
    """One WebSocket client on a plain socket: parses the server's frames itself."""

    def __init__(self, sock: socket.socket, leftover: bytes) -> None:
        self.sock = sock
        self.buf = bytearray(leftover)
        self.fragments: list[bytes] | None = None
        self.replayed = False
        self.got = 0
        self.closed = False

    def frames(self) -> list[tuple[bool, int, bytes]]:
        """The complete frames in the buffer (removed from it): (fin, opcode, payload)."""
        buf, pos, end = self.buf, 0, len(self.buf)
        out = []
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b1 & 0x80:
                raise FrameError("a masked frame from the server")
            if b0 & 0x70:
                raise FrameError("reserved bits set (no extension was negotiated)")
            length, head = b1 & 0x7F, 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
                if length < 126:
                    raise FrameError("a 16-bit length under 126")
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
                if length < 65_536:
                    raise FrameError("a 64-bit length under 65536")
            if end - pos < head + length:
                break
            out.append((bool(b0 & 0x80), b0 & 0x0F, bytes(buf[pos + head : pos + head + length])))
            pos += head + length
        del buf[:pos]
        return out

    def messages(self) -> list[str]:
        """The complete text messages received (control frames handled here)."""
        texts = []
        for fin, opcode, payload in self.frames():
            if opcode in (0x1, 0x0):
                if (opcode == 0x1) != (self.fragments is None):
                    raise FrameError("a continuation without a start, or a new message inside one")
                if fin and self.fragments is None:
                    texts.append(payload.decode())  # UnicodeDecodeError: not UTF-8
                elif fin:
                    assert self.fragments is not None
                    texts.append(b"".join([*self.fragments, payload]).decode())
                    self.fragments = None
                else:
                    self.fragments = [*(self.fragments or []), payload]
            elif opcode == 0x8:
                self.closed = True
            elif opcode == 0x9:
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self.sock.sendall(bytes((0x8A, 0x80 | len(payload))) + mask + masked)
            elif opcode != 0xA:
                raise FrameError(f"opcode {opcode:#x} (binary or reserved)")
        return texts


def _colon(line: str) -> tuple[str, str, str]:
    return line.partition(":")


def _raw_connect(host: str, port: int) -> RawClient:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET /ws/alerts HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(65536)
        if not chunk:
            raise FrameError("the server closed during the handshake")
        response += chunk
    head, _, leftover = response.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin1").split("\r\n")
    if status.split()[1] != "101":
        raise FrameError(f"handshake refused: {status}")
    headers = {name.strip().lower(): value.strip() for name, _, value in map(_colon, lines)}
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != accept or "sec-websocket-extensions" in headers:
        raise FrameError(f"a handshake response this client did not ask for: {headers}")
    sock.setblocking(False)
    return RawClient(sock, leftover)


# SO_TIMESTAMPNS and its control message (socket.h; Python 3.11 lacks the constants): the
# kernel stamps each received segment with the wall clock as it arrives, and recvmsg()
# returns the stamp of the last segment it read. A segment that arrives while earlier ones
# are unread may be merged into them and give them its (later) stamp, so a read that comes
# late can make the figures larger, never smaller.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESTAMP_SPACE = socket.CMSG_SPACE(16)


def _arrival_ns(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanos = struct.unpack_from("@qq", data)  # a 64-bit struct timespec
            return int(seconds) * 1_000_000_000 + int(nanos)
    return None


def _raw_worker(host: str, port: int, clients: int, expect: int, read_every_ms: float) -> None:
    selector = selectors.DefaultSelector()
    conns = [_raw_connect(host, port) for _ in range(clients)]
    for conn in conns:
        conn.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    receipts: dict[str, list[int]] = {}
    lags: list[int] = []  # per read: the kernel's arrival stamp → this process read it, ns
    waiting_replay, waiting_alerts = clients, clients
    cpu0 = 0.0
    deadline = time.monotonic() + WAIT_S
    # What was read and not yet parsed: (client, arrival ns, bytes). Reading comes first,
    # so that the sockets are read as promptly as this process can (a read that comes
    # late makes the stamps of what it reads late: see _arrival_ns); parsing waits until
    # nothing is ready (or the round is read).
    unparsed: list[tuple[RawClient, int, bytes]] = [(c, time.time_ns(), b"") for c in conns]
    every_s = read_every_ms / 1000
    next_round = time.monotonic()

    def parse() -> None:
        nonlocal waiting_replay, waiting_alerts, cpu0
        for conn, arrived, data in unparsed:
            conn.buf += data
            for text in conn.messages():
                message = orjson.loads(text)
                kind = message["type"]
                if kind == "replay":
                    if conn.replayed:
                        raise FrameError("a second replay")
                    conn.replayed = True
                    waiting_replay -= 1
                    if not waiting_replay:
                        print("ready", flush=True)
                        cpu0 = time.process_time()
                        lags.clear()
                elif kind in ("alert", "alerts", "suppressed"):
                    if kind == "suppressed":  # held back by --cap: not coming
                        batch, count = [], message["count"]
                    else:
                        batch = [message["alert"]] if kind == "alert" else message["alerts"]
                        count = len(batch)
                    for alert in batch:
                        receipts.setdefault(alert["id"], []).append(arrived)
                    was_short = conn.got < expect
                    conn.got += count
                    if was_short and conn.got >= expect:
                        waiting_alerts -= 1
            if conn.closed:
                raise FrameError("the server closed a connection (close frame)")
        unparsed.clear()

    while waiting_alerts and time.monotonic() < deadline:
        if every_s:  # read in rounds: one wake-up per round, not one per message
            next_round += every_s
            time.sleep(max(0.0, next_round - time.monotonic()))
        events = selector.select(0 if unparsed or every_s else 1.0)
        if not events or len(unparsed) > 20 * clients:
            parse()
            continue
        for key, _ in events:
            conn = key.data
            try:
                data, ancillary, _, _ = conn.sock.recvmsg(262_144, TIMESTAMP_SPACE)
            except BlockingIOError:
                continue
            read_ns = time.time_ns()
            if not data:
                raise FrameError("the server closed a connection")
            arrived = _arrival_ns(ancillary)
            if arrived is None:  # bytes that came before the stamps were asked for
                arrived = read_ns
            else:
                lags.append(read_ns - arrived)
            unparsed.append((conn, arrived, data))
        if every_s:
            parse()
    parse()
    _report(receipts, time.process_time() - cpu0, lags)
    time.sleep(3600)  # keep the connections open until the bench terminates this process


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


def _figures(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "p50": round(_pct(values, 0.50), 3),
        "p90": round(_pct(values, 0.90), 3),
        "p99": round(_pct(values, 0.99), 3),
        "max": round(max(values), 3),
    }


def _time_passes(gateway: Any) -> list[tuple[int, int]]:
    """(start, end) wall ns of each pass of the gateway's fan-out writer (none without
    one: a gateway from before it)."""
    passes: list[tuple[int, int]] = []
    fanout = getattr(gateway, "fanout", None)
    if fanout is None:
        return passes
    one_pass = fanout._pass

    async def timed() -> None:
        start = time.time_ns()
        await one_pass()
        passes.append((start, time.time_ns()))

    fanout._pass = timed
    return passes


def _written_by(published: dict[str, int], passes: list[tuple[int, int]]) -> list[float]:
    """Per alert, publish → the end of the first writer pass that began after it (by then
    it was written to every client's socket, or handed to the client's own task), ms."""
    starts = [start for start, _ in passes]
    out = []
    for stamp in published.values():
        i = bisect.bisect_left(starts, stamp)
        if i < len(passes):
            out.append((passes[i][1] - stamp) / 1e6)
    return out


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    settings = GatewaySettings(replay=0, client_queue=args.queue, max_alerts_per_s=args.cap)
    hub = AlertHub(history=1000, replay=0, client_queue=args.queue)
    app = create_app(lambda: (True, {}), prometheus_client.CollectorRegistry())
    shutdown = trio.Event()
    gateway = install_gateway(app, hub, None, settings, shutdown)
    passes = _time_passes(gateway)
    published: dict[str, int] = {}
    publish_cost: list[float] = []
    total = args.alerts * args.batch
    load_before = os.getloadavg()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve_http, app, "127.0.0.1:0", shutdown)
        host, _, port = binds[0].removeprefix("http://").rpartition(":")
        share = [args.clients // args.client_procs] * args.client_procs
        share[0] += args.clients - sum(share)
        procs = []
        for n in share:
            command = [sys.executable, __file__, "--worker", args.client, host, port, str(n)]
            command += [str(total), str(args.read_every_ms)]
            spawn = functools.partial(subprocess.Popen, command, stdout=subprocess.PIPE, text=True)
            procs.append(await trio.to_thread.run_sync(spawn))
        profiler = None
        try:
            for proc in procs:
                assert proc.stdout is not None
                line = await trio.to_thread.run_sync(proc.stdout.readline)
                if line.strip() != "ready":
                    raise SystemExit("a client worker failed to start")
            while hub.statistics().clients < args.clients:  # noqa: ASYNC110 (polling a count)
                await trio.sleep(0.01)
            if args.profile:
                duration = str(max(1, round(args.alerts * args.interval_ms / 1000)))
                # The venv's own py-spy when it is not on PATH (the venv not activated).
                beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
                spy = shutil.which("py-spy") or beside
                command = [spy, "record", "--pid", str(os.getpid()), "--duration", duration]
                command += ["--rate", "250", "--format", "raw", "--output", args.profile]
                command += ["--nonblocking"]
                spawn = functools.partial(subprocess.Popen, command, stdout=subprocess.DEVNULL)
                profiler = await trio.to_thread.run_sync(spawn)
                await trio.sleep(0.5)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            start = trio.current_time()
            for i in range(args.alerts):
                alerts = [_alert(i * args.batch + j) for j in range(args.batch)]
                t0 = time.perf_counter()
                stamp = time.time_ns()
                hub.publish(alerts)
                publish_cost.append(time.perf_counter() - t0)
                for alert in alerts:
                    published[alert.id] = stamp
                await trio.sleep_until(start + (i + 1) * args.interval_ms / 1000)
            publish_s = time.perf_counter() - wall0
            pairs: list[float] = []
            last: list[float] = []
            received, complete, client_cpu = 0, 0, 0.0
            read_lags: list[float] = []
            receipts: dict[str, list[int]] = {}
            for proc in procs:
                assert proc.stdout is not None
                line = await trio.to_thread.run_sync(proc.stdout.readline)
                report = json.loads(line)
                client_cpu += report["cpu_s"]
                read_lags += [lag / 1e6 for lag in report["read_lag_ns"]]
                for alert_id, stamps in report["receipts"].items():
                    receipts.setdefault(alert_id, []).extend(stamps)
            cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
            stats = hub.statistics()  # before the clients go (or the server shuts down)
            fanout = gateway.fanout.statistics() if hasattr(gateway, "fanout") else None
            for alert_id, stamps in receipts.items():
                received += len(stamps)
                pairs += [(s - published[alert_id]) / 1e6 for s in stamps]
                if len(stamps) == args.clients:
                    complete += 1
                    last.append((max(stamps) - published[alert_id]) / 1e6)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
                if proc.stdout:
                    proc.stdout.close()
            if profiler is not None:
                profiler.wait(30)
            shutdown.set()
    return {
        "bench": "fanout",
        "client": args.client,
        "clients": args.clients,
        "alerts": total,
        "batch": args.batch,
        "interval_ms": args.interval_ms,
        "cap": args.cap,
        "suppressed": stats.suppressed,
        "alerts_per_s": round(total / publish_s, 1),
        "client_procs": args.client_procs,
        "expected": total * args.clients,
        "received": received,
        "alerts_to_every_client": complete,
        "dropped": dict(stats.dropped),
        "fanout": None if fanout is None else attrs.asdict(fanout),
        "latency_ms": _figures(pairs),
        "last_client_ms": _figures(last),
        "client_read_lag_ms": _figures(read_lags) if read_lags else None,
        "server_written_ms": _figures(_written_by(published, passes)) if passes else None,
        "publish_call_us": {
            "p50": round(_pct(publish_cost, 0.5) * 1e6, 1),
            "p99": round(_pct(publish_cost, 0.99) * 1e6, 1),
        },
        "gateway_cpu": round(cpu_s / wall_s, 3),
        "gateway_cpu_us_per_delivery": round(cpu_s / max(1, received) * 1e6, 2),
        "clients_cpu": round(client_cpu / wall_s, 3),
        "wall_s": round(wall_s, 2),
        "loadavg": [round(x, 2) for x in (*load_before, *os.getloadavg())],
        "cpus": os.cpu_count(),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, host, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
        clients, expect, read_every_ms = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
        _raise_nofile(clients)
        if kind == "raw":
            _raw_worker(host, port, clients, expect, read_every_ms)
        else:
            trio.run(_trio_worker, host, port, clients, expect)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--alerts", type=int, default=200, help="publish() calls")
    parser.add_argument("--batch", type=int, default=1, help="alerts per publish() call")
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--queue", type=int, default=256, help="gateway.client_queue")
    parser.add_argument(
        "--cap",
        type=int,
        default=0,
        help="gateway.max_alerts_per_s (default 0: none; the daemon's default of 20 would hold "
        "back most of 50 alerts/s)",
    )
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument("--client", choices=("raw", "trio-websocket"), default="raw")
    parser.add_argument(
        "--read-every-ms",
        type=float,
        default=5.0,
        help="raw clients read in rounds this far apart (0: as soon as anything arrives)",
    )
    parser.add_argument("--profile", metavar="PATH", help="py-spy collapsed stacks of the gateway")
    args = parser.parse_args()
    _raise_nofile(args.clients)
    result = trio.run(_run, args)
    lat, last, cost = result["latency_ms"], result["last_client_ms"], result["publish_call_us"]
    written = (result["server_written_ms"] or {}).get("p99", "-")
    dropped = sum(result["dropped"].values())
    print(f"{'clients':>8} {'alerts/s':>8} {'received':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'last p50':>9} {'last p99':>9} {'last max':>9} {'srv p99':>8} "
          f"{'publish p50 µs':>15} {'dropped':>8} {'gw cpu':>7} {'cl cpu':>7}")  # fmt: skip
    print(f"{result['clients']:>8} {result['alerts_per_s']:>8} {result['received']:>9} "
          f"{lat['p50']:>8} {lat['p99']:>8} {lat['max']:>8} {last['p50']:>9} {last['p99']:>9} "
          f"{last['max']:>9} {written:>8} {cost['p50']:>15} {dropped:>8} "
          f"{result['gateway_cpu']:>7} {result['clients_cpu']:>7}")  # fmt: skip
    print(json.dumps(result))


def _raise_nofile(clients: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * clients + 256)), hard))


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
