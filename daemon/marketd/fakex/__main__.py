"""``python -m marketd.fakex``: the fake exchange on its own, parsed and reported exactly as
``marketd fake-exchange`` (a port in use is one ``error:`` line, not a traceback)."""

import sys

from marketd.cli import main

sys.exit(main(["fake-exchange", *sys.argv[1:]]))
