"""The browser UI ships inside the package: a wheel built from the repository's files (as
the Containerfile's builder stage has them) holds ``marketd/ui``, and an installed copy
of marketd finds its UI there, with no ``gateway.ui_dir`` and no checkout around."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from marketd.gateway.routes import default_ui_dir

ROOT = Path(__file__).parents[2]
UI = ROOT / "ui"


def ui_files() -> set[str]:
    return {p.name for p in UI.iterdir() if p.is_file()}


def test_the_checkout_serves_the_repository_ui() -> None:
    found = default_ui_dir()
    assert (found / "index.html").is_file()
    assert found.resolve() == UI.resolve()


def test_an_installed_package_uses_its_own_ui(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "marketd"
    (package / "ui").mkdir(parents=True)
    (package / "ui" / "index.html").write_text("<!doctype html>")
    assert default_ui_dir(package) == package / "ui"
    # Without it (an old install): the repository's ui/ two levels up, if any.
    bare = tmp_path / "repo" / "daemon" / "marketd"
    bare.mkdir(parents=True)
    (tmp_path / "repo" / "ui").mkdir()
    (tmp_path / "repo" / "ui" / "index.html").write_text("<!doctype html>")
    assert default_ui_dir(bare) == tmp_path / "repo" / "ui"


@pytest.mark.slow
def test_the_wheel_contains_the_ui_and_its_package_serves_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    # As a container engine's COPY does: the daemon/marketd/ui link is kept as a link.
    shutil.copytree(ROOT / "daemon", src / "daemon", symlinks=True, ignore=ignore)
    shutil.copytree(UI, src / "ui", ignore=ignore)
    assert (src / "daemon" / "marketd" / "ui").is_symlink()
    dist = tmp_path / "dist"
    # Offline: the build backend (setuptools) is the one installed in this environment.
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
             "--no-build-isolation", "--disable-pip-version-check", "-w", str(dist),
             str(src)]  # fmt: skip
    done = subprocess.run(build, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = dist.glob("marketd-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = {n.removeprefix("marketd/ui/") for n in names if n.startswith("marketd/ui/")}
        assert shipped == ui_files()
        assert archive.read("marketd/ui/index.html") == (UI / "index.html").read_bytes()
        site = tmp_path / "site"
        archive.extractall(site)
    # The unpacked wheel is an installed marketd: it finds the UI in itself.
    probe = (
        "import marketd, marketd.gateway.routes as r;"
        "print(marketd.__file__); print(r.default_ui_dir())"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    ).stdout.split()
    assert shown == [str(site / "marketd" / "__init__.py"), str(site / "marketd" / "ui")]
