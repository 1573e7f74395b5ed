"""A lean Binance-format feed: spot combined streams at a given rate, as cheaply as possible.

What it is for: benchmarks that need more messages per second than the fake exchange
(:mod:`marketd.fakex`, a whole market model in Python: ~5,000-10,000 msgs/s here) can
deliver, e.g. ``bench/bench_pipeline.py --feed lean`` measuring ``marketd run`` at 25,000
msgs/s offered. It is not a market: there are no books, no depth streams, no faults and no
futures; it serves what a spot ``trade`` (``aggTrade``, ``bookTicker``) subscription needs
and nothing else. Use the fake exchange for everything that is about behaviour.

    python -m marketd.testing.leanfeed --symbols 20 --rate 25000 [--channels trade]

prints one JSON line (``spot_ws_url``, ``spot_rest_url``, ``futures_*`` (the same server;
nothing is served under them), ``control_url``, ``symbols``) and serves on loopback until
SIGTERM/SIGINT. ``--rate`` is the total rate in messages/s offered over all
``symbols * channels`` streams (each stream gets an equal share, so the total holds however
a client splits the streams over connections); 0 = as fast as each client reads.

How it stays cheap: one plain thread writes each connection (blocking ``sendall`` of a
block of frames: ~10 ms worth, or 512 frames flat out) and sleeps between blocks on an
absolute schedule (a late block is caught up, at most ``MAX_LAG_S`` of it; a client slower
than that loses the debt, not ids); a second thread reads the client (pings are answered
with pongs, ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS`` are answered as Binance
does: ``{"result":null,"id":N}``, Close is answered and ends the connection). Frames are
rendered by one ``%`` format per message from a per-stream template, and their prices,
quantities and sides come from tables indexed by the id, framed by hand (server frames are
unmasked; no extension is negotiated).

Payloads (Binance's key order, 8-decimal prices and quantities as spot prints them):

* ``<sym>@trade`` — ``{"e":"trade","E":..,"s":..,"t":..,"p":..,"q":..,"T":..,"m":..,"M":true}``
  with consecutive trade ids per symbol (from 1): a client sees no gap, no duplicate;
* ``<sym>@aggTrade`` — one trade per aggregate, consecutive ``a`` (``f`` = ``l`` = ``a``);
* ``<sym>@bookTicker`` — spot's ``{"u":..,"s":..,"b":..,"B":..,"a":..,"A":..}``,
  consecutive ``u``.

Prices follow a smooth periodic walk (±0.4 % around a realistic start, a period of 4096
ids): plausible, never jumping, the same for the same id every time — so
``GET /api/v3/historicalTrades?symbol=&fromId=&limit=`` can answer a backfill with the very
trades the stream sent (only ``time`` differs: the time of the answer). Other REST answers:
``ping``, ``time``, ``exchangeInfo`` (symbols only); everything else is a 404 with a
Binance error body.

Limits: one server process, threads (its own GIL): a few connections, not hundreds. Ids are
drawn from one counter per stream shared by its connections, so two connections on the
same stream (marketd's make-before-break handover, every 24 h) each see part of it, and a
connection that breaks mid-block loses the unsent rest of that block: both are gaps that
marketd backfills from ``historicalTrades``. Event times are the block's wall-clock time.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import math
import random
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from marketd.testing.processes import Process, http_json

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BLOCK_S = 0.01  # a paced block: this much time's worth of frames
FLAT_OUT_BLOCK = 512  # frames per block at rate 0
MAX_BLOCK = 8192  # frames per block at most (catching up)
MAX_LAG_S = 1.0  # a writer further behind its schedule forgets the rest of the debt
PRICE_PERIOD = 4096  # ids per cycle of the price walk
CHANNELS = ("trade", "aggTrade", "bookTicker")
MAX_REQUEST = 16384  # bytes of an HTTP request head
MAX_CLIENT_MESSAGE = 1 << 20

# (symbol, start price, price decimals, typical quantity): the first symbols look real.
REAL_SYMBOLS = [
    ("BTCUSDT", 65000.0, 2, 0.02),
    ("ETHUSDT", 3400.0, 2, 0.4),
    ("BNBUSDT", 580.0, 2, 1.5),
    ("SOLUSDT", 150.0, 2, 5.0),
    ("XRPUSDT", 0.52, 4, 1500.0),
    ("DOGEUSDT", 0.12, 5, 8000.0),
    ("ADAUSDT", 0.45, 4, 2000.0),
    ("TRXUSDT", 0.12, 5, 6000.0),
    ("AVAXUSDT", 35.0, 2, 20.0),
    ("LINKUSDT", 15.0, 2, 40.0),
    ("DOTUSDT", 7.0, 3, 90.0),
    ("LTCUSDT", 80.0, 2, 6.0),
]


def symbol_names(count: int) -> list[str]:
    """The first ``count`` symbols: the real-looking ones, then ``LEAN0012USDT`` style."""
    names = [s for s, *_ in REAL_SYMBOLS[:count]]
    names += [f"LEAN{i:04d}USDT" for i in range(len(names), count)]
    return names


def _spec(index: int) -> tuple[str, float, int, float]:
    if index < len(REAL_SYMBOLS):
        return REAL_SYMBOLS[index]
    return (f"LEAN{index:04d}USDT", 10.0 + 7.0 * index, 3, 25.0)


def _fixed8(value: float, decimals: int) -> str:
    """``value`` rounded to ``decimals`` and printed with 8 decimals, as spot prints it."""
    return f"{value:.{decimals}f}" + "0" * (8 - decimals)


class SymbolTables:
    """A symbol's prices, quantities and sides as functions of an id (tables, cycled)."""

    def __init__(self, index: int) -> None:
        self.symbol, start, decimals, qty = _spec(index)
        rng = random.Random(7919 * (index + 1))
        tick = 10.0**-decimals
        self.prices = []
        for i in range(PRICE_PERIOD):
            phase = 2 * math.pi * i / PRICE_PERIOD
            walk = 0.003 * math.sin(phase) + 0.001 * math.sin(7 * phase + index)
            self.prices.append(_fixed8(max(tick, start * (1 + walk)), decimals))
        self.qtys = [_fixed8(qty * rng.lognormvariate(0, 0.8), 5) for _ in range(1021)]
        self.sides = ["true" if rng.random() < 0.5 else "false" for _ in range(13)]
        # bookTicker: the price as bid, a tick above as ask.
        self.asks = [_fixed8(float(p) + tick, decimals) for p in self.prices]

    def price(self, ident: int) -> str:
        return self.prices[ident % PRICE_PERIOD]

    def qty(self, ident: int) -> str:
        return self.qtys[ident % 1021]

    def side(self, ident: int) -> str:
        return self.sides[ident % 13]


def _header(length: int, opcode: int = 0x1) -> bytes:
    """An unmasked, final frame's header for a payload of ``length`` bytes."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big")
    return bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big")


_HEADERS = [_header(n) for n in range(4096)]


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked server frame."""
    return _header(len(payload), opcode) + payload


Render = Callable[[list[bytes], int, int, int], None]


def _renderer(channel: str, tables: SymbolTables) -> Render:
    """``render(out, first_id, count, now_ms)``: append ``count`` framed messages to ``out``."""
    s, sl = tables.symbol, tables.symbol.lower()
    price, qty, side, asks = tables.price, tables.qty, tables.side, tables.asks
    headers = _HEADERS
    if channel == "trade":
        tpl = (
            f'{{"stream":"{sl}@trade","data":{{"e":"trade","E":%d,"s":"{s}","t":%d,'
            '"p":"%s","q":"%s","T":%d,"m":%s,"M":true}}'
        )

        def render(out: list[bytes], first: int, count: int, now: int) -> None:
            for i in range(first, first + count):
                b = (tpl % (now, i, price(i), qty(i), now, side(i))).encode()
                out.append(headers[len(b)])
                out.append(b)

        return render
    if channel == "aggTrade":
        tpl = (
            f'{{"stream":"{sl}@aggTrade","data":{{"e":"aggTrade","E":%d,"s":"{s}","a":%d,'
            '"p":"%s","q":"%s","f":%d,"l":%d,"T":%d,"m":%s,"M":true}}'
        )

        def render(out: list[bytes], first: int, count: int, now: int) -> None:
            for i in range(first, first + count):
                b = (tpl % (now, i, price(i), qty(i), i, i, now, side(i))).encode()
                out.append(headers[len(b)])
                out.append(b)

        return render
    if channel == "bookTicker":
        tpl = (
            f'{{"stream":"{sl}@bookTicker","data":{{"u":%d,"s":"{s}",'
            '"b":"%s","B":"%s","a":"%s","A":"%s"}}'
        )

        def render(out: list[bytes], first: int, count: int, now: int) -> None:
            for i in range(first, first + count):
                j = i + 17
                p = i % PRICE_PERIOD
                b = (tpl % (i, tables.prices[p], qty(i), asks[p], qty(j))).encode()
                out.append(headers[len(b)])
                out.append(b)

        return render
    raise ValueError(f"unknown channel {channel!r}")


class Stream:
    """One stream's renderer and its next id (shared by the connections serving it)."""

    def __init__(self, name: str, render: Render) -> None:
        self.name = name
        self.render = render
        self.next_id = 1
        self.sent = 0
        self.lock = threading.Lock()

    def take(self, out: list[bytes], count: int, now_ms: int) -> None:
        with self.lock:
            first = self.next_id
            self.next_id += count
            self.sent += count
        self.render(out, first, count, now_ms)


class LeanFeed:
    """The server: streams, a listening socket, a thread per client direction."""

    def __init__(
        self,
        symbols: int,
        rate: float,
        channels: Sequence[str] = ("trade",),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if symbols < 1:
            raise ValueError("symbols must be at least 1")
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self.rate = rate
        self.channels = tuple(channels)
        self.tables = [SymbolTables(i) for i in range(symbols)]
        self.by_symbol = {t.symbol: t for t in self.tables}
        self.streams: dict[str, Stream] = {}
        for t in self.tables:
            for ch in CHANNELS:
                name = f"{t.symbol.lower()}@{ch}"
                self.streams[name] = Stream(name, _renderer(ch, t))
        # Each stream's share of the total rate.
        self.stream_rate = rate / (symbols * len(self.channels)) if rate else 0.0
        self.sock = socket.create_server((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.started = time.monotonic()
        self.connections_open = 0
        self.connections_total = 0
        self.pings = 0
        self._lock = threading.Lock()

    # -- URLs --------------------------------------------------------------------------------

    def urls(self) -> dict[str, Any]:
        base = f"{self.host}:{self.port}"
        return {
            "spot_ws_url": f"ws://{base}/spot",
            "spot_rest_url": f"http://{base}/spot",
            "futures_ws_url": f"ws://{base}/usdm",
            "futures_rest_url": f"http://{base}/usdm",
            "control_url": f"http://{base}/_lean",
            "symbols": [t.symbol for t in self.tables],
        }

    def state(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "channels": list(self.channels),
            "connections_open": self.connections_open,
            "connections_total": self.connections_total,
            "pings": self.pings,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "cpu_s": round(time.process_time(), 3),
            "frames_sent": sum(s.sent for s in self.streams.values()),
            "next_ids": {n: s.next_id for n, s in self.streams.items() if s.sent},
        }

    # -- serving -----------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept clients until :meth:`close`; each in its own (daemon) threads."""
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def start(self) -> None:
        """Serve in a background (daemon) thread; for tests in this process."""
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop accepting (connections already open go on until their client leaves)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept()
        self.sock.close()

    def _client(self, conn: socket.socket) -> None:
        try:
            with conn:
                head, rest = _read_head(conn)
                if head is None:
                    return
                method, target, headers = head
                url = urllib.parse.urlsplit(target)
                if headers.get("upgrade", "").lower() == "websocket":
                    self._websocket(conn, url, headers, rest)
                else:
                    status, body = self._rest(method, url)
                    conn.sendall(_http_response(status, body))
        except OSError:
            pass

    # -- REST --------------------------------------------------------------------------------

    def _rest(self, method: str, url: urllib.parse.SplitResult) -> tuple[int, Any]:
        path = url.path
        query = dict(urllib.parse.parse_qsl(url.query))
        if method != "GET":
            return 405, {"code": -1000, "msg": "GET only"}
        if path == "/_lean/state":
            return 200, self.state()
        if not path.startswith("/spot/api/v3/"):
            return 404, {"code": -1000, "msg": f"not served by the lean feed: {path}"}
        endpoint = path.removeprefix("/spot/api/v3/")
        if endpoint == "ping":
            return 200, {}
        if endpoint == "time":
            return 200, {"serverTime": time.time_ns() // 1_000_000}
        if endpoint == "exchangeInfo":
            symbols = [
                {"symbol": t.symbol, "status": "TRADING", "quoteAsset": "USDT"} for t in self.tables
            ]
            return 200, {"timezone": "UTC", "serverTime": time.time_ns() // 1_000_000,
                         "symbols": symbols}  # fmt: skip
        if endpoint == "historicalTrades":
            return self._historical_trades(query)
        return 404, {"code": -1000, "msg": f"not served by the lean feed: {path}"}

    def _historical_trades(self, query: dict[str, str]) -> tuple[int, Any]:
        tables = self.by_symbol.get(query.get("symbol", ""))
        if tables is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        stream = self.streams[f"{tables.symbol.lower()}@trade"]
        limit = max(1, min(1000, int(query.get("limit", "500"))))
        last = stream.next_id - 1
        first = int(query["fromId"]) if "fromId" in query else max(1, last - limit + 1)
        now = time.time_ns() // 1_000_000
        rows = []
        for i in range(max(1, first), min(last, first + limit - 1) + 1):
            p, q = tables.price(i), tables.qty(i)
            rows.append({
                "id": i, "price": p, "qty": q, "quoteQty": f"{float(p) * float(q):.8f}",
                "time": now, "isBuyerMaker": tables.side(i) == "true", "isBestMatch": True,
            })  # fmt: skip
        return 200, rows

    # -- WebSocket ---------------------------------------------------------------------------

    def _websocket(
        self,
        conn: socket.socket,
        url: urllib.parse.SplitResult,
        headers: dict[str, str],
        rest: bytes,
    ) -> None:
        key = headers.get("sec-websocket-key", "")
        path = url.path.removeprefix("/spot")
        if path != "/stream" or not key:
            conn.sendall(_http_response(404, {"code": -1000, "msg": "combined streams only"}))
            return
        query = urllib.parse.parse_qs(url.query).get("streams", [""])[0]
        names = [n for n in query.split("/") if n]
        unknown = [n for n in names if n not in self.streams]
        if unknown:
            conn.sendall(_http_response(400, {"code": -1121, "msg": f"unknown {unknown}"}))
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
        )
        client = _Client(self, conn, names)
        with self._lock:
            self.connections_open += 1
            self.connections_total += 1
        writer = threading.Thread(target=client.write, daemon=True)
        writer.start()
        try:
            client.read(rest)
        finally:
            client.stop.set()
            writer.join(timeout=5)
            with self._lock:
                self.connections_open -= 1


class _Client:
    """One WebSocket connection: its streams, a writer (this class's ``write``) and a reader."""

    def __init__(self, feed: LeanFeed, conn: socket.socket, names: list[str]) -> None:
        self.feed = feed
        self.conn = conn
        self.streams: list[Stream] = [feed.streams[n] for n in names]
        self.send_lock = threading.Lock()
        self.stop = threading.Event()

    def send(self, data: bytes) -> None:
        with self.send_lock:
            self.conn.sendall(data)

    def write(self) -> None:
        feed, stop = self.feed, self.stop
        start = time.monotonic()
        due = 0.0  # messages owed since ``start`` (paced)
        cursor = 0
        try:
            while not stop.is_set():
                streams = self.streams
                if not streams:
                    stop.wait(BLOCK_S)
                    continue
                now = time.monotonic()
                if feed.rate:
                    due += feed.stream_rate * len(streams) * (now - start)
                    start = now
                    due = min(due, feed.stream_rate * len(streams) * MAX_LAG_S)
                    n = min(int(due), MAX_BLOCK)
                    due -= n
                else:
                    n = FLAT_OUT_BLOCK
                if n:
                    cursor = self._block(n, cursor, streams)
                if feed.rate:
                    sleep = BLOCK_S - (time.monotonic() - now)
                    if sleep > 0:
                        stop.wait(sleep)
        except OSError:
            pass
        finally:
            stop.set()

    def _block(self, n: int, cursor: int, streams: list[Stream]) -> int:
        """Send ``n`` frames spread over ``streams`` (the remainder rotating); the cursor."""
        k = len(streams)
        each, extra = divmod(n, k)
        out: list[bytes] = []
        now_ms = time.time_ns() // 1_000_000
        for j, stream in enumerate(streams):
            count = each + (1 if (j - cursor) % k < extra else 0)
            if count:
                stream.take(out, count, now_ms)
        self.send(b"".join(out))
        return (cursor + extra) % k

    def read(self, buffered: bytes) -> None:
        buf = bytearray(buffered)
        fragments: list[bytes] = []
        while not self.stop.is_set():
            frame = _parse_client_frame(buf)
            if frame is None:
                chunk = self.conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                continue
            fin, opcode, payload = frame
            if opcode == 0x9:  # ping → pong
                self.feed.pings += 1
                self.send(ws_frame(payload, 0xA))
            elif opcode == 0x8:  # close → close back, and end
                self.stop.set()
                self.send(ws_frame(payload[:2], 0x8))
                with contextlib.suppress(OSError):
                    self.conn.shutdown(socket.SHUT_WR)
                return
            elif opcode in (0x0, 0x1, 0x2):
                fragments.append(payload)
                if sum(map(len, fragments)) > MAX_CLIENT_MESSAGE:
                    return
                if fin:
                    self._message(b"".join(fragments))
                    fragments.clear()

    def _message(self, data: bytes) -> None:
        try:
            request = json.loads(data)
            method, ident = request["method"], request["id"]
        except (ValueError, KeyError, TypeError):
            self.send(ws_frame(b'{"error":{"code":2,"msg":"Invalid request"},"id":null}'))
            return
        params = request.get("params") or []
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            unknown = [p for p in params if p not in self.feed.streams]
            if unknown:
                reply: dict[str, Any] = {
                    "error": {"code": 2, "msg": f"Invalid request: unknown {unknown}"},
                    "id": ident,
                }
            else:
                names = [s.name for s in self.streams]
                if method == "SUBSCRIBE":
                    names += [p for p in params if p not in names]
                else:
                    names = [n for n in names if n not in params]
                self.streams = [self.feed.streams[n] for n in names]  # the writer's next block
                reply = {"result": None, "id": ident}
        elif method == "LIST_SUBSCRIPTIONS":
            reply = {"result": [s.name for s in self.streams], "id": ident}
        else:
            reply = {"error": {"code": 2, "msg": "Invalid request"}, "id": ident}
        self.send(ws_frame(json.dumps(reply, separators=(",", ":")).encode()))


def _parse_client_frame(buf: bytearray) -> tuple[bool, int, bytes] | None:
    """Take one (masked) client frame off ``buf``: (fin, opcode, unmasked payload)."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    length = b1 & 0x7F
    pos = 2
    if length == 126:
        if len(buf) < 4:
            return None
        length = struct.unpack_from("!H", buf, 2)[0]
        pos = 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length = struct.unpack_from("!Q", buf, 2)[0]
        pos = 10
    masked = b1 & 0x80
    end = pos + (4 if masked else 0) + length
    if len(buf) < end:
        return None
    payload = bytes(buf[end - length : end])
    if masked and length:
        mask = bytes(buf[pos : pos + 4]) * (length // 4 + 1)
        value = int.from_bytes(payload, "big") ^ int.from_bytes(mask[:length], "big")
        payload = value.to_bytes(length, "big")
    del buf[:end]
    return bool(b0 & 0x80), b0 & 0x0F, payload


def _read_head(conn: socket.socket) -> tuple[tuple[str, str, dict[str, str]] | None, bytes]:
    """An HTTP request's method, target and headers (lower-case names); what followed."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_REQUEST:
            return None, b""
        chunk = conn.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None, b""
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return (parts[0], parts[1], headers), rest


def _http_response(status: int, body: Any) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
    return (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + payload


# -- the process --------------------------------------------------------------------------------


class LeanFeedProcess(Process):
    """``python -m marketd.testing.leanfeed ARGS`` on a free port; ``urls`` from its first
    stdout line (as :class:`~marketd.testing.processes.FakeExchangeProcess`)."""

    def __init__(self, tmp: Path, *args: str) -> None:
        super().__init__(
            [sys.executable, "-m", "marketd.testing.leanfeed", *args], tmp / "lean-feed.log"
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise AssertionError("lean feed did not start:\n" + self.log_tail())
        self.urls: dict[str, Any] = json.loads(line)

    def state(self) -> Any:
        status, payload = http_json(f"{self.urls['control_url']}/state")
        assert status == 200, (status, payload)
        return payload

    def __enter__(self) -> LeanFeedProcess:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.signal(signal.SIGTERM)
        with contextlib.suppress(Exception):
            self.wait(10)
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="total msgs/s over all streams; 0 = flat out"
    )
    parser.add_argument(
        "--channels",
        default="trade",
        help=f"channels the rate is spread over, comma-separated, of {', '.join(CHANNELS)}",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    if not channels or any(c not in CHANNELS for c in channels):
        parser.error(f"--channels: some of {', '.join(CHANNELS)}")
    feed = LeanFeed(args.symbols, args.rate, channels, args.host, args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps(feed.urls()), flush=True)
    try:
        feed.serve_forever()
    finally:
        feed.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
