"""`python -m lmlab.cli ...`: the `lmlab` command without its script (as `lmlab tune compare` starts each run)."""

import sys

from lmlab.cli import main

sys.exit(main())
