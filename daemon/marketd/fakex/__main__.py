"""``python -m marketd.fakex``: the fake exchange on its own (same as ``marketd fake-exchange``)."""

import sys

from marketd.fakex.cli import main

sys.exit(main())
