"""``python -m component``: the same as the ``courier`` command."""

import sys

from .main import main

sys.exit(main())
