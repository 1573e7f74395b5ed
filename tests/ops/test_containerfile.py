"""The Containerfile, checked without a container engine: its structure, that everything it
copies exists, that its builder stage installs from exactly those files, and that its
HEALTHCHECK command works against a running daemon."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

import attrs
import pytest
from kit.net import free_port
from kit.wait import poll_until_blocking

from marketd.testing.processes import Process

ROOT = Path(__file__).parents[2]
CONTAINERFILE = ROOT / "Containerfile"


@attrs.frozen
class Instruction:
    op: str
    args: str


@attrs.define
class Stage:
    image: str
    name: str
    steps: list[Instruction] = attrs.Factory(list)

    def all(self, op: str) -> list[str]:
        return [i.args for i in self.steps if i.op == op]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and stages; continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key] = value
        elif op == "FROM":
            parts = rest.split()
            image = parts[0]
            for key, value in args.items():
                image = image.replace("${" + key + "}", value)
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(image, name))
        else:
            stages[-1].steps.append(Instruction(op, rest))
    return args, stages


def copy_sources(args: str) -> tuple[str | None, list[str], str]:
    words = shlex.split(args)
    origin = None
    flags = [w for w in words if w.startswith("--")]
    for flag in flags:
        if flag.startswith("--from="):
            origin = flag.split("=", 1)[1]
    paths = [w for w in words if not w.startswith("--")]
    return origin, paths[:-1], paths[-1]


def env_of(stage: Stage) -> dict[str, str]:
    out: dict[str, str] = {}
    for args in stage.all("ENV"):
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            out[key] = value
    return out


def test_multi_stage_slim_non_root_with_healthcheck() -> None:
    _, stages = parse(CONTAINERFILE.read_text())
    builder, runtime = stages
    assert builder.name == "builder"
    assert runtime.image.endswith("python:3.11-slim")
    assert builder.image == runtime.image
    (user,) = runtime.all("USER")
    assert user.split(":")[0] not in ("0", "root")
    assert runtime.all("EXPOSE") == ["8080"]
    env = env_of(runtime)
    assert env["MARKETD_HTTP__LISTEN"] == "0.0.0.0:8080"
    assert env["MARKETD_CONFIG"] == "/etc/marketd/marketd.yaml"
    (health,) = runtime.all("HEALTHCHECK")
    assert "127.0.0.1:8080/healthz" in health
    assert "curl" not in health
    assert "wget" not in health
    assert json.loads(runtime.all("ENTRYPOINT")[0]) == ["marketd"]
    installs = " ".join(builder.all("RUN"))
    assert "-c constraints.txt" in installs


def test_everything_copied_exists() -> None:
    _, stages = parse(CONTAINERFILE.read_text())
    names = [s.name for s in stages]
    for index, stage in enumerate(stages):
        for args in stage.all("COPY"):
            origin, sources, _ = copy_sources(args)
            if origin is not None:
                assert origin in names[:index], f"COPY --from={origin}: no such earlier stage"
                continue
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_links_the_builder_copies_point_at_what_it_copies() -> None:
    """A container engine's COPY keeps links as links (daemon/marketd/ui → ui/): each must
    point into what the same stage copies, or the installed package lacks its target."""
    _, stages = parse(CONTAINERFILE.read_text())
    builder = stages[0]
    copied = [(ROOT / s).resolve() for a in builder.all("COPY") for s in copy_sources(a)[1]]
    links = [
        path
        for source in copied
        if source.is_dir()
        for path in source.rglob("*")
        if path.is_symlink()
    ]
    assert ROOT / "daemon" / "marketd" / "ui" in links
    for link in links:
        target = link.resolve()
        assert target.exists(), f"{link}: dangling link"
        assert any(target == c or c in target.parents for c in copied), (
            f"{link} → {target}: not copied by the builder stage"
        )


@pytest.mark.slow
def test_builder_stage_installs_from_what_it_copies(tmp_path: Path) -> None:
    """The builder's COPY + pip install, replayed in a fresh venv from only those files."""
    _, stages = parse(CONTAINERFILE.read_text())
    builder = stages[0]
    src = tmp_path / "src"
    src.mkdir()
    for args in builder.all("COPY"):
        _, sources, dest = copy_sources(args)
        for source in sources:
            target = src / dest if dest.endswith("/") and dest != "./" else src
            path = ROOT / source
            if path.is_dir():
                # symlinks=True: COPY keeps links (daemon/marketd/ui → ui/) as links.
                shutil.copytree(path, target if dest != "./" else src / source, symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
            else:
                shutil.copy2(path, src / Path(source).name)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    done = subprocess.run(
        [*pip, "--disable-pip-version-check", "-c", "constraints.txt", "."],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    version = subprocess.run(
        [str(env_dir / "bin" / "marketd"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert version.stdout.startswith("marketd ")
    # The UI is package data: the runtime stage copies only the venv.
    (index,) = env_dir.glob("lib/python3*/site-packages/marketd/ui/index.html")
    assert index.read_bytes() == (ROOT / "ui" / "index.html").read_bytes()


@pytest.mark.slow
def test_healthcheck_command_against_a_running_daemon(tmp_path: Path) -> None:
    _, stages = parse(CONTAINERFILE.read_text())
    (health,) = stages[-1].all("HEALTHCHECK")
    command = json.loads(health.split(" CMD ", 1)[1])
    assert command[0] == "python"
    port = free_port()
    command = [sys.executable, *(c.replace(":8080/", f":{port}/") for c in command[1:])]
    daemon = Process(
        [sys.executable, "-m", "marketd", "demo", "--symbols", "1", "--listen",
         f"127.0.0.1:{port}"],
        tmp_path / "demo.log",
    )  # fmt: skip
    try:
        assert subprocess.run(command, capture_output=True, timeout=30).returncode != 0
        started = time.monotonic()

        def healthy() -> bool:
            assert daemon.proc.poll() is None, daemon.log_tail()
            return subprocess.run(command, capture_output=True, timeout=30).returncode == 0

        poll_until_blocking(healthy, timeout=30, what="HEALTHCHECK passes")
        assert time.monotonic() - started < 30
    finally:
        daemon.signal(signal.SIGINT)
        daemon.wait(30)
        daemon.close()
