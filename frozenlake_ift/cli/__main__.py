"""``python -m frozenlake_ift.cli``: the console script."""

import sys

from . import console

sys.exit(console())
