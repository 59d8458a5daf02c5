"""``python -m frozenlake_ift.cli``: the console script."""

import sys

from . import main

sys.exit(main())
