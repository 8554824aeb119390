"""``python -m relier`` runs the ``rl`` command line."""

import sys

from .cli import main

sys.exit(main())
