"""`python -m launch.sweep`: the repository's entry point for `rollout.sweep.run` (installed as `tau2-rollout`)."""

import sys

from rollout.sweep.run import main

if __name__ == "__main__":
    sys.exit(main())
