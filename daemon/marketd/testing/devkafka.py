"""A real single-node Apache Kafka (KRaft) for tests, the benchmark and the demo.

The broker's jars are fetched once with Maven into a cache (``fetch_kafka``) and run
with the machine's Java as ``kafka.Kafka`` on free loopback ports. ``KafkaBroker`` is a
synchronous handle on that process (from trio, call its blocking methods through
``trio.to_thread.run_sync``); it can be stopped, killed and started again on the same
data directory and ports, which is what chaos tests need.

By hand::

    python -m marketd.testing.devkafka fetch
    python -m marketd.testing.devkafka start --port 9092          # foreground, Ctrl-C stops it
    python -m marketd.testing.devkafka create-topics --bootstrap 127.0.0.1:9092 marketdata.raw
    python -m marketd.testing.devkafka consume --bootstrap 127.0.0.1:9092 marketdata.raw
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import attrs
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
# Kafka logs through slf4j 1.x; this binding sends it to log4j2, configured to a file.
LOG4J_VERSION = "2.24.3"
DEFAULT_HEAP = "512m"
LOG_NAME = "broker.log"

_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>marketd.testing.devkafka</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class DevKafkaError(Exception):
    """The development broker could not be fetched or started; the message says why."""


def default_cache_dir() -> Path:
    """``$MARKETD_CACHE_DIR`` or ``~/.cache/marketd``."""
    env = os.environ.get("MARKETD_CACHE_DIR", "").strip()
    return Path(env) if env else Path.home() / ".cache" / "marketd"


def fetch_kafka(cache_dir: Path | None = None) -> Path:
    """Fetch Kafka's runtime jars once; return the ``libs`` directory holding them.

    The jars land in ``<cache_dir>/kafka-<version>/libs``; a marker file written after a
    complete copy makes later calls free. A file lock serialises concurrent fetches.
    """
    home = (cache_dir or default_cache_dir()) / f"kafka-{KAFKA_VERSION}"
    libs, marker = home / "libs", home / "complete"
    if marker.exists() and libs.is_dir():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and libs.is_dir():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise DevKafkaError("Maven (mvn) is not on PATH: install it to fetch Kafka")
        (home / "pom.xml").write_text(_POM)
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [mvn, "-q", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies"]
        cmd += [f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not any(staging.glob(f"kafka_{SCALA_VERSION}-*.jar")):
            raise DevKafkaError(f"fetching Kafka with Maven failed:\n{done.stdout}{done.stderr}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        marker.write_text("\n".join(sorted(p.name for p in libs.iterdir())) + "\n")
    return libs


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the usual small race is accepted)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise DevKafkaError("java is not on PATH: install a JRE (17+) to run Kafka")
    return java


_running: set[KafkaBroker] = set()


@atexit.register
def _kill_leftovers() -> None:  # a safety net: never leave a JVM behind
    for broker in list(_running):
        broker.kill()


@attrs.define(eq=False)
class KafkaBroker:
    """A single-node KRaft broker (broker + controller) on loopback ports.

    Create with :meth:`create`; :meth:`start` / :meth:`stop` / :meth:`kill` may be
    repeated: the data directory and ports stay the same.
    """

    libs: Path
    data_dir: Path
    port: int
    controller_port: int
    heap: str = DEFAULT_HEAP
    _proc: subprocess.Popen[bytes] | None = attrs.field(default=None, init=False)
    _out: IO[bytes] | None = attrs.field(default=None, init=False)

    @classmethod
    def create(
        cls,
        data_dir: Path,
        *,
        port: int = 0,
        controller_port: int = 0,
        libs: Path | None = None,
        heap: str = DEFAULT_HEAP,
    ) -> KafkaBroker:
        """Write the config into ``data_dir`` and format its storage if not done yet.

        Port 0 picks a free port, or reuses the one an existing config in ``data_dir`` has.
        """
        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        old = _read_properties(data_dir / "server.properties")
        if not port and "marketd.port" in old:
            port = int(old["marketd.port"])
        if not controller_port and "marketd.controller.port" in old:
            controller_port = int(old["marketd.controller.port"])
        broker = cls(
            libs=libs or fetch_kafka(),
            data_dir=data_dir,
            port=port or free_port(),
            controller_port=controller_port or free_port(),
            heap=heap,
        )
        broker._write_config()
        broker._format()
        return broker

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_NAME

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self) -> None:
        props = {
            "marketd.port": str(self.port),  # unknown keys are ignored by Kafka
            "marketd.controller.port": str(self.controller_port),
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.bootstrap},CONTROLLER://127.0.0.1:"
            f"{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "kafka-logs"),
            "num.partitions": "3",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        text = "".join(f"{k}={v}\n" for k, v in props.items())
        (self.data_dir / "server.properties").write_text(text)
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2.format(log=self.log_path))

    def _java_cmd(self, main: str, *args: str) -> list[str]:
        return [
            _java(),
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            str(self.libs / "*"),
            main,
            *args,
        ]

    def _format(self) -> None:
        if (self.data_dir / "kafka-logs" / "meta.properties").exists():
            return
        uuid = subprocess.run(
            self._java_cmd("kafka.tools.StorageTool", "random-uuid"),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        config = str(self.data_dir / "server.properties")
        done = subprocess.run(
            self._java_cmd("kafka.tools.StorageTool", "format", "-t", uuid, "-c", config),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise DevKafkaError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")

    def start(self, *, timeout: float = 60.0) -> None:
        """Start the JVM and wait until the broker answers metadata requests."""
        if self.running:
            return
        self._out = (self.data_dir / "broker.out").open("ab")
        self._proc = subprocess.Popen(
            self._java_cmd("kafka.Kafka", str(self.data_dir / "server.properties")),
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal goes to us, we stop it cleanly
        )
        _running.add(self)
        try:
            wait_until_ready(self.bootstrap, timeout=timeout, alive=lambda: self.running)
        except DevKafkaError as exc:
            self.kill()
            raise DevKafkaError(f"{exc}; the end of its log:\n{self.log_tail()}") from None
        except BaseException:
            self.kill()
            raise

    def stop(self, *, timeout: float = 30.0) -> None:
        """SIGTERM (a clean shutdown), wait; SIGKILL if it takes longer than ``timeout``."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, as far as clients and the data directory can tell."""
        self._end(signal.SIGKILL, 10.0)

    def freeze(self) -> None:
        """SIGSTOP: the broker holds its connections open and answers nothing (a long GC
        pause, a frozen VM) until :meth:`thaw`."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: the frozen broker goes on where it stopped."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        proc, self._proc = self._proc, None
        _running.discard(self)
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._out is not None:
            self._out.close()
            self._out = None

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.data_dir / "broker.out", self.log_path):
            if path.exists():
                text += "".join(path.read_text(errors="replace").splitlines(True)[-lines:])
        return text


@contextlib.contextmanager
def running_broker(
    data_dir: Path | None = None,
    *,
    port: int = 0,
    controller_port: int = 0,
    libs: Path | None = None,
    heap: str = DEFAULT_HEAP,
    timeout: float = 60.0,
) -> Iterator[KafkaBroker]:
    """A started broker, stopped on exit; a temporary data dir unless one is given."""
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kafka-")))
        broker = KafkaBroker.create(
            data_dir, port=port, controller_port=controller_port, libs=libs, heap=heap
        )
        stack.callback(broker.stop)
        broker.start(timeout=timeout)
        yield broker


def _read_properties(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (ln.split("=", 1) for ln in path.read_text().splitlines() if "=" in ln)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


def wait_until_ready(
    bootstrap: str, *, timeout: float = 60.0, alive: Callable[[], bool] | None = None
) -> None:
    """Block until the broker answers a metadata request with a controller and itself.

    A TCP connect is not enough: the listener opens before the broker is unfenced.
    ``alive`` (the process is still running) turns an early exit into an error at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None and not alive():
            raise DevKafkaError(f"the Kafka broker at {bootstrap} exited during start-up")
        with contextlib.suppress(KafkaError, OSError, asyncio.TimeoutError):
            # Connect first: aiokafka logs every refused connection at ERROR.
            host, _, port = bootstrap.rpartition(":")
            socket.create_connection((host, int(port)), timeout=1.0).close()
            if asyncio.run(_probe(bootstrap)):
                return
        if time.monotonic() > deadline:
            raise DevKafkaError(f"the Kafka broker at {bootstrap} not ready in {timeout} s")
        time.sleep(0.2)


async def _probe(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        info = await admin.describe_cluster()
        return bool(info["brokers"]) and info["controller_id"] >= 0
    finally:
        await admin.close()


def create_topics(
    bootstrap: str,
    names: Sequence[str],
    partitions: int = 3,
    *,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> None:
    """Create topics that do not exist yet (blocking; uses its own asyncio loop).

    From trio, call it in a thread: ``await trio.to_thread.run_sync(create_topics, ...)``.
    """
    asyncio.run(
        _create_topics(bootstrap, names, partitions, replication_factor, int(timeout * 1000))
    )


async def _create_topics(
    bootstrap: str, names: Sequence[str], partitions: int, replication: int, timeout_ms: int
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        new = [
            NewTopic(n, num_partitions=partitions, replication_factor=replication) for n in names
        ]
        response = await admin.create_topics(new)
    finally:
        await admin.close()
    for topic, code, *rest in response.topic_errors:
        if code and code != TopicAlreadyExistsError.errno:
            raise DevKafkaError(f"creating topic {topic!r} failed: error {code} {rest}")


@attrs.frozen
class ConsumedRecord:
    """One record read back from Kafka; ``decoded`` is ``decode(value)`` when asked."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int
    decoded: object = None


def read_topics(
    bootstrap: str,
    topics: Sequence[str],
    *,
    until: Callable[[list[ConsumedRecord]], bool] | None = None,
    decode: Callable[[bytes], object] | None = None,
    timeout: float = 30.0,
    committed: bool = False,
) -> list[ConsumedRecord]:
    """Read every record of ``topics`` from the beginning with a fresh group-less consumer
    (``committed``: with ``isolation.level=read_committed``, else read_uncommitted).

    Without ``until``, stops at the end offsets seen when it starts; with it, stops as soon
    as ``until(records)`` is true. Returns what it has at ``timeout`` either way (the
    caller asserts). Order: per partition by offset. Blocking; from trio use a thread.
    """
    deadline = time.monotonic() + timeout
    return asyncio.run(_read_topics(bootstrap, topics, until, decode, deadline, committed))


async def _read_topics(
    bootstrap: str,
    topics: Sequence[str],
    until: Callable[[list[ConsumedRecord]], bool] | None,
    decode: Callable[[bytes], object] | None,
    deadline: float,
    committed: bool = False,
) -> list[ConsumedRecord]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed" if committed else "read_uncommitted",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        request_timeout_ms=10_000,
    )
    out: list[ConsumedRecord] = []
    try:
        await consumer.start()
        while True:  # metadata for every topic (with ``until``, wait for them to appear)
            cluster = await consumer._client.fetch_all_metadata()
            present = [t for t in topics if cluster.partitions_for_topic(t)]
            if len(present) == len(topics) or until is None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assigned = sorted(
            TopicPartition(t, p) for t in present for p in cluster.partitions_for_topic(t)
        )
        if not assigned:
            return out
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned) if until is None else {}
        while time.monotonic() < deadline:
            if until is not None and until(out):
                break
            if until is None and all(await _reached(consumer, ends)):
                break
            batch = await consumer.getmany(timeout_ms=200)
            for tp in sorted(batch):
                for m in batch[tp]:
                    value = m.value
                    out.append(
                        ConsumedRecord(
                            topic=m.topic,
                            partition=m.partition,
                            offset=m.offset,
                            key=m.key,
                            value=value,
                            headers=tuple(m.headers),
                            timestamp_ms=m.timestamp,
                            decoded=decode(value) if decode and value is not None else None,
                        )
                    )
    finally:
        await consumer.stop()
    return out


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> list[bool]:
    return [await consumer.position(tp) >= end for tp, end in ends.items()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m marketd.testing.devkafka",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="fetch the Kafka jars into the cache")
    fetch.add_argument("--cache-dir", type=Path)
    start = sub.add_parser("start", help="run a broker in the foreground until Ctrl-C")
    start.add_argument("--port", type=int, default=0)
    start.add_argument("--controller-port", type=int, default=0)
    start.add_argument("--data-dir", type=Path, help="kept; default: a temporary directory")
    start.add_argument("--heap", default=DEFAULT_HEAP)
    create = sub.add_parser("create-topics", help="create topics (existing ones are kept)")
    create.add_argument("--bootstrap", required=True)
    create.add_argument("--partitions", type=int, default=3)
    create.add_argument("names", nargs="+")
    consume = sub.add_parser("consume", help="print a summary of every record of topics")
    consume.add_argument("--bootstrap", required=True)
    consume.add_argument("--timeout", type=float, default=30.0)
    consume.add_argument("topics", nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch_kafka(args.cache_dir))
        elif args.command == "start":
            _serve_foreground(args.data_dir, args.port, args.controller_port, args.heap)
        elif args.command == "create-topics":
            create_topics(args.bootstrap, args.names, args.partitions)
        else:
            for r in read_topics(args.bootstrap, args.topics, timeout=args.timeout):
                size = len(r.value or b"")
                print(f"{r.topic}[{r.partition}]@{r.offset} key={r.key!r} {size} B {r.headers}")
    except DevKafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve_foreground(data_dir: Path | None, port: int, controller_port: int, heap: str) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with running_broker(data_dir, port=port, controller_port=controller_port, heap=heap) as b:
        print(f"Kafka {KAFKA_VERSION} ready: bootstrap {b.bootstrap}", flush=True)
        print(f"data {b.data_dir}, log {b.log_path}; Ctrl-C stops it", flush=True)
        while not stop.wait(0.5):
            if not b.running:
                raise DevKafkaError(f"the broker exited; see {b.log_path}")
        print("stopping", flush=True)


if __name__ == "__main__":
    sys.exit(main())
