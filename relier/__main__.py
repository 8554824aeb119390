"""``python -m relier`` runs the ``rl`` command line."""

import sys

from relier.cli.main import main

sys.exit(main())
