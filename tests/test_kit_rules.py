"""Rules for the test tree itself, and the test kit's own behaviour.

No module under ``tests/`` imports a ``test_*`` module: a test module imported by another
is collected (and its tests and fixtures run) in the wrong places, and a helper that two
test files need belongs in the kit (``tests/kit/``) or a directory's support module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import trio
import trio.testing
from kit.wait import poll_until, poll_until_blocking

TESTS = Path(__file__).parent


def _is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split(".") if part)


def imported_test_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) for every import of a ``test_*`` module in ``source``: ``import``,
    ``from ... import`` (absolute or relative, the module or a name in a package) and
    ``importlib.import_module`` / ``__import__`` with a literal name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            if _is_test_module(node.module or ""):
                found.append((node.lineno, base))
            else:  # ``from . import test_x`` / ``from gateway import test_x``
                found += [
                    (node.lineno, f"{base}.{a.name}" if node.module else base + a.name)
                    for a in node.names
                    if a.name.startswith("test_")
                ]
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id == "__import__")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _is_test_module(node.args[0].value)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def test_no_module_under_tests_imports_a_test_module() -> None:
    offences = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, module in imported_test_modules(path.read_text())
    ]
    assert offences == [], "move what is shared into tests/kit/ or a support module:\n" + (
        "\n".join(offences)
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import test_x", [(1, "test_x")]),
        ("from test_collector_kafka import SYMBOLS", [(1, "test_collector_kafka")]),
        ("from .test_browser import cards", [(1, ".test_browser")]),
        ("from gateway.test_browser import cards", [(1, "gateway.test_browser")]),
        ("from . import test_browser", [(1, ".test_browser")]),
        ("from gateway import test_hub", [(1, "gateway.test_hub")]),
        ("importlib.import_module('test_cli')", [(1, "test_cli")]),
        ("from kit.wait import poll_until\nimport e2ekit\nfrom .support import open_ws", []),
        ("from marketd.testing.processes import DaemonProcess", []),
    ],
    ids=[
        "import",
        "from-module",
        "relative",
        "from-package-module",
        "relative-name",
        "package-name",
        "import_module",
        "support-modules",
        "product",
    ],
)
def test_the_rule_sees_every_form_of_import(source: str, expected: list[tuple[int, str]]) -> None:
    assert imported_test_modules(source) == expected


async def test_poll_until_returns_once_the_condition_holds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = 0

    def third_time() -> bool:
        nonlocal calls
        calls += 1
        return calls == 3

    took = await poll_until(third_time, timeout=10, what="the third call", interval=0.5)
    assert (calls, took) == (3, pytest.approx(1.0))


async def test_poll_until_names_what_it_waited_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    began = trio.current_time()
    with pytest.raises(AssertionError, match=r"timed out after 2 s waiting for the spool"):
        await poll_until(lambda: False, timeout=2, what="the spool")
    # Not a fixed number of polls: it gave up at the deadline, having checked once more.
    assert trio.current_time() - began == pytest.approx(2.0)


def test_poll_until_blocking_names_what_it_waited_for() -> None:
    assert poll_until_blocking(lambda: True, timeout=1, what="nothing") < 1
    with pytest.raises(AssertionError, match=r"timed out after 0.05 s waiting for a page"):
        poll_until_blocking(lambda: 0, timeout=0.05, what="a page", interval=0.01)
