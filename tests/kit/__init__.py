"""The test kit: helpers that several test directories need, defined once.

``tests/`` is on ``sys.path`` for every test (pytest's default "prepend" import mode puts
the directory of the top-level ``tests/conftest.py`` there, since ``tests/`` itself is not
a package), so any test module imports these as ``from kit.wait import poll_until``.

* :mod:`kit.wait` — poll a condition until it holds, with a deadline and a clear message.
* :mod:`kit.daemon` — the fake exchange's URL block and daemon settings / YAML configs
  pointing at it.
* :mod:`kit.net` — a free loopback port.
* :mod:`kit.browser` — a real headless Chromium (Playwright) for the UI tests.
* :mod:`kit.sinks` — a channel sink that ends an in-process daemon's pipeline in a test.

Shared things live here or in a directory's own support module (``feedserver.py``,
``e2ekit.py``, ``gateway/support.py``, ...), never in a ``test_*.py`` module: importing a
test module from another collects its tests twice and couples unrelated files
(``tests/test_kit_rules.py`` enforces that).
"""
