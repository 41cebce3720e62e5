"""`python -m rollout <command>`: the same as the `tau2-rollout` console script."""

import sys

from rollout.cli import main

sys.exit(main())
