"""`python -m stress [--clients N] [--seconds S] [--users U]`."""

import sys

from stress.run import main

sys.exit(main())
