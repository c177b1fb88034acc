"""``python -m videosynth ...``: the same as the ``videosynth`` command."""

import sys

from videosynth.cli import main

sys.exit(main())
