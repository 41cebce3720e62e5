"""`python -m launch.report`: the repository's entry point for `rollout.sweep.report` (installed as `tau2-rollout`)."""

import sys

from rollout.sweep.report import main

if __name__ == "__main__":
    sys.exit(main())
