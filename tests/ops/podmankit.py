"""Podman for the container test (``test_podman.py``): what makes it work on these machines,
in one place.

* Debian's ``podman``, ``runc``, ``mmdebstrap`` and ``slirp4netns`` (``make test`` installs
  them with ``buildah``; as root, :func:`podman_or_reason` installs what is missing, so a
  plain ``pytest`` run works too).
* runc, not crun (crun fails here: ``setrlimit RLIMIT_NOFILE``, then "cgroups in hybrid mode
  not supported"), the cgroupfs manager (no systemd as PID 1), a file events logger, and
  default ulimits no higher than this machine's hard limits (Podman's own, 1048576 open
  files as root, are higher): an engine configuration of our own, ``CONTAINERS_CONF``.
* A private store: ``--root``/``--runroot`` and the engine's ``tmp_dir`` under
  ``build/podman/``, shared with nothing else on the machine. The layers stay there between
  runs, so a rerun rebuilds only what changed.
* No image registry is reachable: the base image is Debian bookworm with python3, made by
  mmdebstrap from Debian's packages (the tarball is cached) and ``podman import``-ed; the
  build takes it with ``--build-arg PYTHON_IMAGE=...`` (the Containerfile keeps its default).
  pip inside the build needs the machine's CA bundle and pip configuration, mounted read-only.
* ``--format docker``: in Podman's default OCI format the HEALTHCHECK is silently dropped.
* One user of the store at a time: :meth:`Podman.exclusive` holds a file lock.

Every command has a timeout; a failing one raises ``AssertionError`` with its stderr.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import resource
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).parents[2]
WORK = ROOT / "build" / "podman"

# Debian packages, and the commands that tell whether each is there.
PACKAGES = ("podman", "buildah", "runc", "mmdebstrap", "slirp4netns")
NEEDED_COMMANDS = ("podman", "runc", "mmdebstrap", "slirp4netns")
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"  # runc is in /usr/sbin

# The local base image: what the Containerfile uses of python:3.11-slim — `python` (3.11),
# `python -m venv` with pip, groupadd/useradd (passwd is in minbase) — without docs,
# manual pages and translations.
SUITE = "bookworm"
MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    "--include=python3-venv,python-is-python3",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/lintian/*",
)
IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
)
# Read-only into every RUN of the build, where the machine has them (pip's TLS and index).
BUILD_MOUNTS = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")
# Every container the test starts carries it; one left by a killed run is removed next time.
LABEL = "marketd.test=podman"

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _which(command: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + SBIN_PATH
    return shutil.which(command, path=path)


def _missing() -> list[str]:
    return [c for c in NEEDED_COMMANDS if _which(c) is None]


def _run(argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str | None:
    """None when ``argv`` succeeded, else why not (its exit and the end of its stderr)."""
    try:
        done = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(argv)}: {exc}"
    if done.returncode != 0:
        return f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()[-1500:]}"
    return None


def _install_missing() -> str | None:
    """apt-get install the packages, as root; None when all the commands are there after."""
    missing = _missing()
    if not missing:
        return None
    if os.geteuid() != 0:
        return f"{', '.join(missing)} not installed, and not root to apt-get install them"
    if shutil.which("apt-get") is None:
        return f"{', '.join(missing)} not installed, and no apt-get to install them"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", *PACKAGES],
    ):
        if why := _run(argv, timeout=900, env=env):
            return f"installing Podman failed: {why}"
    if missing := _missing():
        return f"still missing after apt-get install: {', '.join(missing)}"
    return None


def _hard_limit(which: int, cap: int) -> int:
    hard = resource.getrlimit(which)[1]
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


@attrs.frozen
class Podman:
    """``podman`` with the private store and engine configuration under ``work``."""

    work: Path = WORK

    @property
    def conf(self) -> Path:
        return self.work / "containers.conf"

    def prepare(self) -> None:
        """The engine configuration; the run-time state cleared if the machine restarted
        since it was written (it describes mounts and processes that are gone)."""
        self.work.mkdir(parents=True, exist_ok=True)
        run = self.work / "run"
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stamp = run / "boot_id"
        if run.exists() and (not stamp.exists() or stamp.read_text() != boot):
            shutil.rmtree(run)
        (run / "libpod").mkdir(parents=True, exist_ok=True)
        stamp.write_text(boot)
        nofile = _hard_limit(resource.RLIMIT_NOFILE, 1048576)
        nproc = _hard_limit(resource.RLIMIT_NPROC, 4096)
        self.conf.write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'tmp_dir = "{run / "libpod"}"\n'
        )

    def argv(self, *args: str) -> list[str]:
        root, runroot = self.work / "root", self.work / "run" / "storage"
        return ["podman", "--root", str(root), "--runroot", str(runroot), *args]

    def env(self) -> dict[str, str]:
        path = os.environ.get("PATH", "") + os.pathsep + SBIN_PATH
        return {**os.environ, "PATH": path, "CONTAINERS_CONF": str(self.conf)}

    def __call__(
        self, *args: str, timeout: float, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(*args),
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)}: exit {done.returncode}\n{done.stderr[-4000:]}"
            )
        return done

    @contextlib.contextmanager
    def exclusive(self, timeout: float = 900) -> Iterator[None]:
        """Hold the store's lock (another test run may use the same checkout)."""
        self.work.mkdir(parents=True, exist_ok=True)
        with (self.work / "lock").open("w") as lock:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise AssertionError(
                            f"{self.work / 'lock'}: still locked after {timeout} s"
                        ) from None
                    time.sleep(1)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def remove_stale_containers(self) -> None:
        """Containers a killed run left behind (only while holding the lock)."""
        ids = self("ps", "-a", "-q", "--filter", f"label={LABEL}", timeout=60).stdout.split()
        if ids:
            self("rm", "-f", "-v", "-t", "5", *ids, timeout=120)

    def base_image(self) -> str:
        """The local Debian + python3 image (built once per option set, then cached)."""
        key = hashlib.sha256(
            json.dumps([SUITE, MMDEBSTRAP_OPTIONS, IMPORT_CHANGES]).encode()
        ).hexdigest()[:12]
        name = f"localhost/marketd-test-base:{key}"
        if self("image", "exists", name, timeout=60, check=False).returncode == 0:
            return name
        tarball = self.work / f"base-{SUITE}-{key}.tar"
        if not tarball.exists():
            partial = tarball.with_suffix(".tar.part")
            partial.unlink(missing_ok=True)
            argv = ["mmdebstrap", "--quiet", "--format=tar", *MMDEBSTRAP_OPTIONS, SUITE]
            if why := _run([*argv, str(partial)], timeout=900, env=self.env()):
                partial.unlink(missing_ok=True)
                raise AssertionError(f"building the base image failed: {why}")
            partial.replace(tarball)
        changes = [arg for change in IMPORT_CHANGES for arg in ("--change", change)]
        self("import", "--quiet", *changes, str(tarball), name, timeout=300)
        return name

    def build(self, containerfile: Path, context: Path, base: str, tag: str) -> str:
        """``podman build`` in Docker format on ``base``; the new image's id."""
        iidfile = self.work / "image.iid"
        iidfile.unlink(missing_ok=True)
        mounts = [f"--volume={p}:{p}:ro" for p in BUILD_MOUNTS if Path(p).is_file()]
        self(
            "build", "--format", "docker", "--network", "host", "--pull=never",
            "--build-arg", f"PYTHON_IMAGE={base}", *mounts,
            "--iidfile", str(iidfile), "--tag", tag, "--file", str(containerfile), str(context),
            timeout=900,
        )  # fmt: skip
        image = iidfile.read_text().strip()
        # Earlier builds' images, untagged by this one (the layer cache stays).
        self("image", "prune", "--force", timeout=300)
        return image

    def inspect(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = json.loads(self(kind, "inspect", name, timeout=60).stdout)
        result: dict[str, Any] = found
        return result


def podman_or_reason() -> tuple[Podman | None, str | None]:
    """A ready :class:`Podman`, or why Podman cannot run on this machine."""
    if why := _install_missing():
        return None, why
    podman = Podman()
    podman.prepare()
    done = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=120, check=False)
    if done.returncode != 0:
        return None, f"podman info: exit {done.returncode}: {done.stderr.strip()[-1500:]}"
    if done.stdout.strip() != "runc":
        return None, f"podman uses the runtime {done.stdout.strip()!r}, not runc"
    return podman, None
