"""The generated Protobuf code is reproducible from schemas/ and up to date."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_protos.py"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_committed_generated_code_is_up_to_date() -> None:
    proc = run("--check")
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout


def test_check_detects_stale_missing_and_orphaned_code(tmp_path: Path) -> None:
    out = tmp_path / "daemon"
    shutil.copytree(ROOT / "daemon" / "marketd" / "v1", out / "marketd" / "v1")
    assert run("--check", "--out", out).returncode == 0

    pb2 = out / "marketd" / "v1" / "market_data_pb2.py"
    pb2.write_bytes(pb2.read_bytes() + b"# edited by hand\n")
    (out / "marketd" / "v1" / "market_data_pb2.pyi").unlink()
    (out / "marketd" / "v1" / "gone_pb2.py").write_text("")
    proc = run("--check", "--out", out)
    assert proc.returncode == 1
    assert f"stale: {pb2}" in proc.stderr
    assert "missing: " in proc.stderr
    assert "orphaned" in proc.stderr

    # Regenerating repairs all of it, leaving the hand-written __init__.py alone.
    init = out / "marketd" / "v1" / "__init__.py"
    init.write_text('"""custom"""\n')
    assert run("--out", out).returncode == 0
    assert run("--check", "--out", out).returncode == 0
    assert not (out / "marketd" / "v1" / "gone_pb2.py").exists()
    assert init.read_text() == '"""custom"""\n'


def test_generated_code_is_deterministic(tmp_path: Path) -> None:
    out = tmp_path / "daemon"
    assert run("--out", out).returncode == 0
    for name in ("market_data_pb2.py", "market_data_pb2.pyi"):
        fresh = (out / "marketd" / "v1" / name).read_bytes()
        assert fresh == (ROOT / "daemon" / "marketd" / "v1" / name).read_bytes()
