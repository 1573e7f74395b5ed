"""Mutation testing of the pure cores with mutmut (``make mutate``; not part of ``make test``).

mutmut 3 rewrites every function of a module into a trampoline plus one variant per mutant
(a flipped comparison, a constant ±1, ``and``/``or``, a dropped statement, ``None`` for a
value, ...), records which unit tests call which function, and runs only those tests per
mutant, forked from one warm process. A mutant no test notices *survives*.

mutmut expects the package under ``src/`` (it derives module names from the path with a
``src.`` prefix stripped); ours lives under ``daemon/``. So this script stages a small tree in
``build/mutate/`` — ``src`` and ``tests`` are links to the real ones, ``pyproject.toml`` is
ours plus a ``[tool.mutmut]`` section — and runs mutmut there. Nothing in the checkout is
modified; mutmut's copy lives in ``build/mutate/mutants/``.

    python scripts/mutate.py                  # every core in CORES, then the report
    python scripts/mutate.py books/sync.py    # one or more cores (paths under marketd/)
    python scripts/mutate.py --report         # the report of the last run only

The report is a table per module (mutants, killed, survived, score) and every survivor
with its file, line and the mutated line, so each can be killed by a test or listed as
equivalent in docs/TESTING.md. Exit status 0 whatever survives: this measures, never gates.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "build" / "mutate"  # --stage chooses another (two runs side by side)

# The pure cores (paths under daemon/marketd/) and the unit tests that exercise them. Only
# fast tests with no network peer belong here: mutmut runs each selected test per mutant.
CORES = (
    "books/sync.py",
    "books/book.py",
    "alerts/detector.py",
    "pipeline/sequence.py",
    "exchanges/binance/values.py",
    "exchanges/binance/codec.py",
    "exchanges/binance/handlers/common.py",
    "exchanges/binance/handlers/market.py",
    "exchanges/binance/handlers/trades.py",
    "exchanges/binance/handlers/depth.py",
    "exchanges/binance/handlers/tickers.py",
    "exchanges/binance/handlers/futures.py",
    "exchanges/binance/handlers/klines.py",
    "exchanges/binance/vocabulary.py",
    "runtime/backoff.py",
    "rest/weight.py",
    "exchanges/binance/endpoints.py",
    "spool/format.py",
    "feed/handover.py",
)
UNIT_TESTS = (
    "tests/books/test_sync_rules.py",
    "tests/books/test_sync_properties.py",
    "tests/books/test_book.py",
    "tests/books/test_books_take.py",
    "tests/alerts/test_alert_detector.py",
    "tests/alerts/test_alert_rules.py",
    "tests/pipeline/test_sequence.py",
    "tests/codec",
    "tests/exchanges",
    "tests/runtime/test_backoff.py",
    "tests/rest/test_rest_weight.py",
    "tests/spool/test_spool_format.py",
    "tests/spool/test_spool_recovery.py",
    "tests/feed/test_feed_overlap.py",
    "tests/feed/test_feed_streams.py",
)
# Test files that need a network peer or a broker, excluded even if they sit in a folder above.
SKIP_TESTS = ("tests/codec/test_gen_protos.py", "tests/codec/test_codec_fuzz.py")

# Fewer Hypothesis examples per mutant (scripts/mutate_hypothesis.py).
PLUGINS = ("-p", "mutate_hypothesis")

# mutmut's verdicts (mutmut.stats.status_by_exit_code) as this report counts them: a mutant
# that no selected test even calls ("no tests") survives, as it would in production.
KILLED = {"killed", "timeout", "caught by type check"}
SURVIVED = {"survived", "no tests"}


def stage(cores: tuple[str, ...]) -> None:
    """(Re)build build/mutate/: links to the code and tests, pyproject with [tool.mutmut]."""
    if STAGE.exists():
        shutil.rmtree(STAGE)
    STAGE.mkdir(parents=True)
    (STAGE / "src").symlink_to(ROOT / "daemon")
    (STAGE / "tests").symlink_to(ROOT / "tests")
    tests = [t for t in UNIT_TESTS if (ROOT / t).exists()]
    ignores = [f"--ignore={t}" for t in SKIP_TESTS]
    section = (
        "\n[tool.mutmut]\n"
        'source_paths = ["src/marketd"]\n'
        f"only_mutate = {json.dumps([f'src/marketd/{c}' for c in cores])}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        f"pytest_add_cli_args = {json.dumps(['-p', 'no:cacheprovider', *PLUGINS, *ignores])}\n"
        "timeout_multiplier = 5.0\n"
        "use_git_change_detection = false\n"
    )
    text = (ROOT / "pyproject.toml").read_text()
    # The coverage plugin's options are not wanted under mutmut (it measures differently).
    (STAGE / "pyproject.toml").write_text(text + section)


def run(cores: tuple[str, ...], jobs: int) -> int:
    stage(cores)
    mutmut = Path(sys.executable).with_name("mutmut")
    # scripts/ on the path for the pytest plugin; no .pyc files next to the mutants.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(ROOT / "scripts"))
    cmd = [str(mutmut), "run", f"--max-children={jobs}"]
    return subprocess.run(cmd, cwd=STAGE, env=env, check=False).returncode


def _meta_files() -> list[Path]:
    return sorted((STAGE / "mutants" / "src" / "marketd").rglob("*.py.meta"))


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every function and method of a module by name (methods once per class body)."""
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.setdefault(node.name, node)
    return found


class _Locator:
    """Where a mutant is: mutmut keeps, per function, ``<fn>__mutmut_orig`` and one
    ``<fn>__mutmut_<n>`` per mutant side by side in its copy of the module. The first line
    where a variant differs from the original, offset by the original's ``def`` line in the
    checkout, is the mutated line."""

    def __init__(self, rel: str) -> None:
        mutated = (STAGE / "mutants" / "src" / "marketd" / rel).read_text()
        self._lines = mutated.splitlines()
        self._defs = _functions(ast.parse(mutated))
        original = (ROOT / "daemon" / "marketd" / rel).read_text()
        self._source = original.splitlines()
        self._originals = {}
        for node in ast.walk(ast.parse(original)):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        self._originals[f"x\u01c1{node.name}\u01c1{item.name}"] = item.lineno
        for name, fn in _functions(ast.parse(original)).items():
            self._originals.setdefault(f"x_{name}", fn.lineno)

    def _body(self, name: str) -> list[str]:
        fn = self._defs[name]
        # Without its own name, so the def lines of the original and a variant compare.
        return [ln.replace(name, "") for ln in self._lines[fn.lineno - 1 : fn.end_lineno]]

    def locate(self, mutant: str) -> tuple[int, str]:
        local = mutant.rpartition(".")[2]
        mangled = local.partition("__mutmut_")[0]
        orig, variant = self._body(mangled + "__mutmut_orig"), self._body(local)
        for op, i1, _i2, j1, j2 in difflib.SequenceMatcher(a=orig, b=variant).get_opcodes():
            if op != "equal":
                text = variant[j1].strip() if j2 > j1 else "(line removed)"
                return self._originals.get(mangled, 0) + i1, text
        return self._originals.get(mangled, 0), "(no textual change)"


def report(cores: tuple[str, ...]) -> None:
    from mutmut.stats import status_by_exit_code  # only where mutmut is installed

    rows = []
    survivors: list[tuple[str, int, str, str]] = []
    wanted = {f"{c}.meta" for c in cores}
    for meta in _meta_files():
        rel = meta.relative_to(STAGE / "mutants" / "src" / "marketd").as_posix()
        if rel not in wanted:
            continue
        locator = _Locator(rel[: -len(".meta")])
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        verdicts = {k: status_by_exit_code[c] for k, c in codes.items()}
        killed = sum(1 for v in verdicts.values() if v in KILLED)
        alive = [k for k, v in verdicts.items() if v in SURVIVED]
        other = len(codes) - killed - len(alive)
        timeouts = sum(1 for v in verdicts.values() if v == "timeout")
        rows.append((rel[: -len(".meta")], len(codes), killed, timeouts, len(alive), other))
        for name in sorted(alive):
            line, text = locator.locate(name)
            survivors.append((rel[: -len(".meta")], line, name.rpartition(".")[2], text))
    head = ("module", "mutants", "killed", "timeout", "survived", "other", "score")
    print("\n{:<24} {:>8} {:>7} {:>8} {:>9} {:>6} {:>7}".format(*head))
    for rel, total, killed, timeouts, alive, other in rows:
        tested = killed + alive
        score = 100.0 * killed / tested if tested else 0.0
        print(
            f"{rel:<24} {total:>8} {killed:>7} {timeouts:>8} {alive:>9} {other:>6} {score:>6.1f}%"
        )
    print("\n(killed includes timeout: the mutant ran past its time limit, e.g. a loop that")
    print(" never ends; survived includes mutants no selected test calls; other: not yet run)")
    if survivors:
        print("\nsurvivors (file:line  mutant  → mutated line):")
        for rel, line, name, text in sorted(survivors):
            print(f"  daemon/marketd/{rel}:{line}  {name}  → {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cores", nargs="*", help="paths under daemon/marketd/ (default: all)")
    parser.add_argument("--report", action="store_true", help="only report the last run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--stage", type=Path, help="work directory (default: build/mutate)")
    args = parser.parse_args()
    if args.stage:
        global STAGE  # one run, one work directory
        STAGE = args.stage.resolve()
    unknown = [c for c in args.cores if not (ROOT / "daemon" / "marketd" / c).is_file()]
    if unknown:
        parser.error(f"not a module under daemon/marketd/: {', '.join(unknown)}")
    cores = tuple(args.cores) or CORES
    if not args.report and run(cores, args.jobs) not in (0, 1):
        print("error: mutmut did not finish; see its output above", file=sys.stderr)
        return 1
    report(cores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
