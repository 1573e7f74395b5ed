"""The parent of the collector's shards: one worker process per shard, supervised, behind
one HTTP port.

``marketd run`` with ``collector.shards: N`` (N > 1) and no ``collector.shard`` starts N
times ``marketd run`` with the same configuration and ``MARKETD_COLLECTOR__SHARD=i``
(each worker derives its own streams, spool, Kafka identity and REST budget share from it:
:mod:`marketd.config.shards`), each serving its probes on a loopback port of its own.

* A worker that exits is started again after a capped, jittered backoff (reset after a
  healthy run) — except a configuration error (exit 2), which would only repeat: then the
  parent stops every shard and exits 2 with the worker's line in the log.
* SIGINT/SIGTERM: every worker gets SIGTERM and drains within ``shutdown.grace_s``; one
  still running ``KILL_AFTER_S`` past that is killed. The exit code is 0 when every worker
  exited 0, else 1 (each worker's code is logged).
* Workers get ``PR_SET_PDEATHSIG``: a parent killed outright takes them along rather than
  leaving orphans that hold the spool directories.
* ``/metrics`` is the parent's own samples (``marketd_shard_*``) and every worker's, each
  with ``shard="i"``, scraped when asked; ``/readyz`` is ready when every worker is (their
  detail under ``shards``); ``/healthz`` answers while the parent runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import orjson
import prometheus_client
import structlog
import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from marketd.config.checks import warnings as config_warnings
from marketd.config.settings import Settings
from marketd.errors import RestError
from marketd.obs.web import create_app, serve_http
from marketd.rest.client import http_get
from marketd.runtime.backoff import Backoff, policy_from_settings
from marketd.runtime.supervisor import wait_for_signal
from marketd.shards.exposition import merge_expositions

log = structlog.get_logger(__name__)

EXIT_CONFIG = 2  # marketd's exit code for a configuration error (marketd.cli)
KILL_AFTER_S = 15.0  # past the workers' own grace
POLL_EVERY_S = 1.0  # each worker's /readyz
PROBE_TIMEOUT_S = 2.0
# A worker not heard from for this long counts as not ready.
STALE_AFTER_S = 3 * POLL_EVERY_S + PROBE_TIMEOUT_S
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define
class Worker:
    """One shard's process, as the parent knows it."""

    index: int
    port: int = 0
    pid: int | None = None
    starts: int = 0
    last_exit: int | None = None
    ready: bool = False
    detail: dict[str, Any] = attrs.field(factory=dict)
    heard_at: float | None = None  # trio time of the last answer to /readyz

    def report(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "pid": self.pid,
            "port": self.port,
            "starts": self.starts,
            "restarts": max(0, self.starts - 1),
            "last_exit": self.last_exit,
            "detail": self.detail,
        }


class ShardMetrics(Collector):
    """``marketd_shard_*``: what the parent knows of each worker."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "marketd_shard_up", "1 while the shard's worker process runs", labels=["shard"]
        )
        ready = GaugeMetricFamily(
            "marketd_shard_ready", "1 while the shard's /readyz says ready", labels=["shard"]
        )
        restarts = CounterMetricFamily(
            "marketd_shard_restarts", "Times the shard's worker was started again",
            labels=["shard"],
        )  # fmt: skip
        for w in self.workers:
            shard = str(w.index)
            up.add_metric([shard], float(w.pid is not None))
            ready.add_metric([shard], float(w.ready))
            restarts.add_metric([shard], float(max(0, w.starts - 1)))
        yield from (up, ready, restarts)


class ShardParent:
    """Starts, watches and stops the workers of ``settings.collector.shards``."""

    def __init__(
        self,
        settings: Settings,
        config_path: Path | None,
        *,
        registry: prometheus_client.CollectorRegistry | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.environ = dict(os.environ if environ is None else environ)
        self.workers = [Worker(i) for i in range(settings.collector.shards)]
        self.registry = registry or prometheus_client.CollectorRegistry()
        self.registry.register(ShardMetrics(self.workers))
        self.app = create_app(self.readiness, self.registry, exposition=self.exposition)
        self.stopping = False
        self.fatal: int | None = None  # a worker's configuration error: stop everything
        self._done = trio.Event()  # stop asked, or a fatal worker exit
        self._backoff = policy_from_settings(settings.supervisor.restart)

    # -- probes ---------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        now = trio.current_time()
        for w in self.workers:
            if w.heard_at is None or now - w.heard_at > STALE_AFTER_S or w.pid is None:
                w.ready = False
        shards = {str(w.index): w.report() for w in self.workers}
        return all(w.ready for w in self.workers), {"shards": shards}

    async def exposition(self) -> bytes:
        """The parent's samples and every worker's, each labelled with its shard."""
        texts: list[tuple[str, str | None]] = [(str(w.index), None) for w in self.workers]

        async def scrape(i: int, worker: Worker) -> None:
            if worker.pid is None:
                return
            try:
                response = await http_get(
                    f"http://127.0.0.1:{worker.port}", "/metrics", time_limit=PROBE_TIMEOUT_S
                )
            except RestError:
                return
            if response.status == 200:
                texts[i] = (str(worker.index), response.body.decode())

        async with trio.open_nursery() as nursery:
            for i, worker in enumerate(self.workers):
                nursery.start_soon(scrape, i, worker)
        own = prometheus_client.generate_latest(self.registry).decode()
        return merge_expositions(texts, own).encode()

    # -- the workers ----------------------------------------------------------------------

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "marketd", "run"]
        if self.config_path is not None:
            command += ["--config", str(self.config_path)]
        return command

    async def _supervise(self, worker: Worker) -> None:
        backoff = Backoff(self._backoff)
        while not self.stopping:
            worker.port = _free_port()
            env = {
                **self.environ,
                "MARKETD_COLLECTOR__SHARD": str(worker.index),
                "MARKETD_HTTP__LISTEN": f"127.0.0.1:{worker.port}",
            }
            began = trio.current_time()
            process = await trio.lowlevel.open_process(
                self._command(), env=env, preexec_fn=_die_with_parent
            )
            worker.pid, worker.starts = process.pid, worker.starts + 1
            worker.heard_at, worker.ready = None, False
            log.info("shard started", shard=worker.index, pid=process.pid, port=worker.port)
            try:
                code = await process.wait()
            finally:
                if process.returncode is None:  # past the stop's deadline: killed
                    process.kill()
                    with trio.CancelScope(shield=True):
                        await process.wait()
                    worker.pid, worker.last_exit = None, process.returncode
            worker.pid, worker.ready, worker.last_exit = None, False, code
            if self.stopping:
                log.info("shard stopped", shard=worker.index, code=code)
                return
            if code == EXIT_CONFIG:
                log.error("shard refused its configuration; stopping", shard=worker.index)
                self.fatal = EXIT_CONFIG
                self._done.set()
                return
            backoff.ran_for(trio.current_time() - began)
            delay = backoff.next_delay()
            log.warning("shard exited; restarting", shard=worker.index, code=code, delay_s=delay)
            await trio.sleep(delay)

    async def _poll(self) -> None:
        """Each worker's readiness, once a second (``/readyz`` answers from memory)."""
        while True:
            async with trio.open_nursery() as nursery:
                for worker in self.workers:
                    nursery.start_soon(self._probe, worker)
            await trio.sleep(POLL_EVERY_S)

    async def _probe(self, worker: Worker) -> None:
        if worker.pid is None:
            return
        try:
            response = await http_get(
                f"http://127.0.0.1:{worker.port}", "/readyz", time_limit=PROBE_TIMEOUT_S
            )
            body = orjson.loads(response.body)
        except (RestError, orjson.JSONDecodeError):
            return  # starting, or too busy to answer: stale after STALE_AFTER_S
        worker.heard_at = trio.current_time()
        worker.ready = response.status == 200
        worker.detail = body if isinstance(body, dict) else {}

    def _signal_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    os.kill(worker.pid, signum)

    async def run(self, stop: trio.Event) -> int:
        """Run the workers until ``stop`` is set (or one refuses its configuration), then
        stop them. Return the exit code."""
        http_shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_http, self.app, self.settings.http.listen, http_shutdown)
            nursery.start_soon(_set_when, stop, self._done)
            async with trio.open_nursery() as supervised:
                for worker in self.workers:
                    supervised.start_soon(self._supervise, worker)
                nursery.start_soon(self._poll)
                await self._done.wait()
                self.stopping = True
                self._signal_all(signal.SIGTERM)
                deadline = self.settings.shutdown.grace_s + KILL_AFTER_S
                supervised.cancel_scope.deadline = trio.current_time() + deadline
            if supervised.cancel_scope.cancelled_caught:
                log.error("shards still running past the grace; killed")
            http_shutdown.set()
            nursery.cancel_scope.cancel()
        if self.fatal is not None:
            return self.fatal
        codes = {w.index: w.last_exit for w in self.workers}
        clean = all(code == 0 for code in codes.values())
        log.info("shards stopped", codes=codes, clean=clean)
        return 0 if clean else 1


async def _set_when(source: trio.Event, target: trio.Event) -> None:
    await source.wait()
    target.set()


async def run_parent(settings: Settings, config_path: Path | None) -> int:
    """``marketd run`` as the parent of ``collector.shards`` workers, until SIGINT/SIGTERM."""
    stop = trio.Event()
    for warning in config_warnings(settings):
        log.warning("configuration", problem=warning)
    parent = ShardParent(settings, config_path)
    log.info("starting shards", shards=settings.collector.shards, listen=settings.http.listen)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_for_signal, stop)
        code = await parent.run(stop)
        nursery.cancel_scope.cancel()
    return code
