"""`python -m dockerpkg` runs the command line."""

import sys

from dockerpkg.cli import main

sys.exit(main())
