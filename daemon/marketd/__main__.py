"""`python -m marketd` is the same as the `marketd` console script."""

import sys

from marketd.cli import main

sys.exit(main())
