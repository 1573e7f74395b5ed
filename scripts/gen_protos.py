"""Regenerate the Python code for ``schemas/**/*.proto`` into ``daemon/``, or check it.

    python scripts/gen_protos.py           # (re)write daemon/marketd/v1/*_pb2.py[i]
    python scripts/gen_protos.py --check   # exit 1 if the committed code is stale (CI)

Uses the protoc bundled with the pinned grpcio-tools, so output is byte-identical for a
given ``.proto`` set; the generated header names the protobuf version it targets, which
must not be newer than the installed runtime. Generated files whose ``.proto`` is gone are
removed (or, with ``--check``, reported).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas"
OUT = ROOT / "daemon"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi")
INIT_TEXT = '"""Generated Protobuf code for the ``marketd.v1`` schema (see ``schemas/``)."""\n'


class GenerationError(Exception):
    """protoc could not run or failed; the message says why."""


def _protoc(schemas: Path, out: Path) -> None:
    # The bundled well-known types (google/protobuf/*.proto), in case a schema imports them.
    wkt = Path(protoc.__file__).parent / "_proto"
    protos = sorted(p.relative_to(schemas).as_posix() for p in schemas.rglob("*.proto"))
    if not protos:
        raise GenerationError(f"no .proto files under {schemas}")
    args = [
        "protoc",
        f"-I{schemas}",
        f"-I{wkt}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise GenerationError("protoc failed (its messages are above)")


def _generated(root: Path, packages: set[Path]) -> dict[Path, bytes]:
    """Generated files under ``root``: those in ``packages`` plus ``__init__.py`` of each."""
    found: dict[Path, bytes] = {}
    for pkg in packages:
        directory = root / pkg
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if path.name.endswith(GENERATED_SUFFIXES):
                found[path.relative_to(root)] = path.read_bytes()
    return found


def expected_files(schemas: Path = SCHEMAS) -> dict[Path, bytes]:
    """What protoc makes of ``schemas``, plus an ``__init__.py`` per package directory."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_root = Path(tmp)
        _protoc(schemas, tmp_root)
        files = {
            p.relative_to(tmp_root): p.read_bytes() for p in tmp_root.rglob("*") if p.is_file()
        }
    for pkg in {p.parent for p in files}:
        files[pkg / "__init__.py"] = INIT_TEXT.encode()
    return files


def compare(expected: dict[Path, bytes], out: Path) -> list[str]:
    """Problems that make the code under ``out`` differ from ``expected``."""
    problems = []
    for rel, content in sorted(expected.items()):
        path = out / rel
        if rel.name == "__init__.py":
            if not path.is_file():
                problems.append(f"missing: {path}")
            continue
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif path.read_bytes() != content:
            problems.append(f"stale: {path}")
    packages = {p.parent for p in expected}
    for rel in sorted(set(_generated(out, packages)) - set(expected)):
        problems.append(f"orphaned (its .proto is gone): {out / rel}")
    return problems


def write(expected: dict[Path, bytes], out: Path) -> list[str]:
    """Bring ``out`` up to date; return what changed. A hand-written ``__init__.py`` stays."""
    changed = []
    for rel, content in sorted(expected.items()):
        path = out / rel
        if rel.name == "__init__.py" and path.exists():
            continue
        if not path.is_file() or path.read_bytes() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            changed.append(f"wrote: {path}")
    packages = {p.parent for p in expected}
    for rel in sorted(set(_generated(out, packages)) - set(expected)):
        (out / rel).unlink()
        changed.append(f"removed: {out / rel}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the generated code is stale"
    )
    parser.add_argument("--schemas", type=Path, default=SCHEMAS, help="root of the .proto tree")
    parser.add_argument("--out", type=Path, default=OUT, help="root the packages are written to")
    args = parser.parse_args(argv)
    try:
        expected = expected_files(args.schemas)
    except GenerationError as exc:
        print(f"gen_protos: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = compare(expected, args.out)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print(
                "generated protobuf code is stale: run python scripts/gen_protos.py",
                file=sys.stderr,
            )
            return 1
        print(f"generated protobuf code is up to date ({len(expected)} files)")
        return 0
    for line in write(expected, args.out):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
