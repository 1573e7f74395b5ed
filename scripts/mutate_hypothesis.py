"""A pytest plugin for mutation runs only (scripts/mutate.py loads it): fewer Hypothesis examples.

A surviving mutant runs every property test that touches its function, with each test's full
example budget (up to 400). Across hundreds of mutants that is hours on two cores, so under
mutmut every Hypothesis test runs a quarter of its examples (at least 25). Before and after
figures are measured the same way. Hypothesis keeps a test's settings on the test function
as ``_hypothesis_internal_use_settings`` (6.x); that is the one attribute this touches.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

SHARE = 4
AT_LEAST = 25


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "obj", None)
        current = getattr(fn, "_hypothesis_internal_use_settings", None)
        if fn is None or current is None:
            continue
        fewer = max(AT_LEAST, current.max_examples // SHARE)
        fn._hypothesis_internal_use_settings = settings(current, max_examples=fewer)
