"""`python -m launch.submit`: the repository's entry point for `rollout.sweep.submit` (installed as `tau2-rollout`)."""

import sys

from rollout.sweep.submit import main

if __name__ == "__main__":
    sys.exit(main())
