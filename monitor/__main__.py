"""`python -m monitor` is the `qualimon` command."""

import sys

from monitor.cli import main

sys.exit(main())
