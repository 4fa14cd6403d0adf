"""``python -m irsock.cli``: the ``irda`` command."""

import sys

from irsock.cli import main

sys.exit(main())
