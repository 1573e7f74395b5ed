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
  detail under ``shards``); ``/api/status`` merges the workers' (:mod:`marketd.shards.views`,
  polled once a second), so the UI's health view covers every shard; ``/healthz``
  answers while the parent runs.
* With the ``gateway`` role the parent runs it (the UI, ``/ws/alerts``, ``/api/*``), fed by
  ``kafka.topics.alerts`` where the workers' detectors publish; the workers run the other
  roles.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
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

from marketd.app import Daemon
from marketd.config.checks import warnings as config_warnings
from marketd.config.collector import CollectorSettings
from marketd.config.settings import Settings
from marketd.errors import RestError
from marketd.obs.status import install_status
from marketd.obs.web import Probes, create_app, serve_http
from marketd.rest.client import http_get
from marketd.roles import GATEWAY
from marketd.runtime.backoff import Backoff, policy_from_settings
from marketd.runtime.supervisor import wait_for_signal
from marketd.shards.exposition import merge_expositions
from marketd.shards.views import ShardView, merge_readiness, merge_status

log = structlog.get_logger(__name__)

EXIT_CONFIG = 2  # marketd's exit code for a configuration error (marketd.cli)
KILL_AFTER_S = 15.0  # past the workers' own grace
POLL_EVERY_S = 1.0  # each worker's /api/status
EXIT_POLL_S = 0.2  # how soon a worker's exit is noticed
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
    status: dict[str, Any] | None = None  # its last /api/status body
    heard_at: float | None = None  # trio time of that answer

    def view(self, now: float) -> ShardView:
        fresh = self.heard_at is not None and now - self.heard_at <= STALE_AFTER_S
        status = self.status if fresh and self.pid is not None else None
        return ShardView(self.index, self.pid, max(0, self.starts - 1), status)


class ShardMetrics(Collector):
    """``marketd_shard_*``: what the parent knows of each worker."""

    def __init__(self, parent: ShardParent) -> None:
        self.parent = parent

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
        for view in self.parent.views():
            shard = str(view.index)
            up.add_metric([shard], float(view.pid is not None))
            ready.add_metric([shard], float(view.ready))
            restarts.add_metric([shard], float(view.restarts))
        yield from (up, ready, restarts)


class ShardParent:
    """Starts, watches and stops the workers of ``settings.collector.shards``; serves
    their probes (and, with the gateway role, the UI fed by ``kafka.topics.alerts``)."""

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
        self.registry.register(ShardMetrics(self))
        probes = Probes(exposition=self.exposition, readiness=self.readiness_with,
                        status=self.status_with)  # fmt: skip
        # The parent's own process: the gateway when configured (the UI, its alerts read
        # from Kafka), else the probes alone.
        self.daemon: Daemon | None = None
        if GATEWAY in settings.roles:
            own = attrs.evolve(settings, roles=(GATEWAY,), collector=CollectorSettings())
            self.daemon = Daemon(own, self.registry, probes=probes)
            self.app = self.daemon.app
        else:
            alone: dict[str, Any] = {"roles": [], "components": [], "not_ready": []}
            self.app = create_app(
                lambda: self.readiness_with((True, dict(alone))), self.registry,
                exposition=self.exposition,
            )  # fmt: skip
            install_status(self.app, lambda: self.status_with({"ready": True, **alone}))
        self.stopping = False
        self.fatal: int | None = None  # a worker's configuration error: stop everything
        self._done = trio.Event()  # stop asked, or a fatal worker exit
        self._daemon_done = trio.Event()
        self._backoff = policy_from_settings(settings.supervisor.restart)

    # -- probes ---------------------------------------------------------------------------

    def views(self) -> list[ShardView]:
        now = trio.current_time()
        return [w.view(now) for w in self.workers]

    def readiness_with(self, own: tuple[bool, dict[str, Any]]) -> tuple[bool, dict[str, Any]]:
        return merge_readiness(own, self.views())

    def status_with(self, own: dict[str, Any]) -> dict[str, Any]:
        return merge_status(own, self.views())

    async def exposition(self, own: bytes) -> bytes:
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
        return merge_expositions(texts, own.decode()).encode()

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
                "MARKETD_ROLES": ",".join(r for r in self.settings.roles if r != GATEWAY),
            }
            began = trio.current_time()
            # Popen here, on the trio thread, not trio.lowlevel.open_process: that forks from
            # one of trio's worker threads, and PR_SET_PDEATHSIG fires when the *thread*
            # that forked exits — trio retires idle threads after 10 s, which SIGTERMed
            # every worker 10 s after its start. This thread lives as long as the parent.
            process = subprocess.Popen(  # noqa: ASYNC220 (a fork/exec: milliseconds)
                self._command(), env=env, preexec_fn=_die_with_parent
            )
            worker.pid, worker.starts = process.pid, worker.starts + 1
            worker.heard_at, worker.status = None, None
            log.info("shard started", shard=worker.index, pid=process.pid, port=worker.port)
            try:
                while (code := process.poll()) is None:  # noqa: ASYNC110 (no fd to wait on)
                    await trio.sleep(EXIT_POLL_S)
            finally:
                if process.returncode is None:  # past the stop's deadline: killed
                    process.kill()
                    code = process.wait()
            worker.pid, worker.status, worker.last_exit = None, None, code
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
        """Each worker's ``/api/status``, once a second (it answers from memory)."""
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
                f"http://127.0.0.1:{worker.port}", "/api/status", time_limit=PROBE_TIMEOUT_S
            )
            body = orjson.loads(response.body)
        except (RestError, orjson.JSONDecodeError):
            return  # starting, or too busy to answer: stale after STALE_AFTER_S
        if response.status == 200 and isinstance(body, dict) and "ready" in body:
            worker.status, worker.heard_at = body, trio.current_time()

    async def _run_daemon(
        self, daemon: Daemon, stop: trio.Event, *, task_status: trio.TaskStatus[Any]
    ) -> None:
        try:
            await daemon.run(stop, task_status=task_status)
        finally:
            self._daemon_done.set()

    def _signal_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    os.kill(worker.pid, signum)

    async def run(self, stop: trio.Event) -> int:
        """Run the workers until ``stop`` is set (or one refuses its configuration), then
        stop them; the parent's HTTP (and gateway) stays up until they are gone. Return the
        exit code."""
        own_stop, http_shutdown = trio.Event(), trio.Event()
        async with trio.open_nursery() as nursery:
            if self.daemon is not None:
                await nursery.start(self._run_daemon, self.daemon, own_stop)
            else:
                serve = functools.partial(serve_http, self.app, self.settings.http.listen)
                await nursery.start(serve, http_shutdown)
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
            own_stop.set()  # the gateway drains and stops its HTTP
            http_shutdown.set()
            if self.daemon is None:
                nursery.cancel_scope.cancel()
            else:  # only the poller is left besides the daemon's run
                with trio.move_on_after(self.settings.shutdown.grace_s + KILL_AFTER_S):
                    await self._daemon_done.wait()
                nursery.cancel_scope.cancel()
        if self.daemon is not None:
            self.daemon.close()
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
