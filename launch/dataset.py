"""`python -m launch.dataset`: the repository's entry point for `rollout.areal.dataset` (installed as `tau2-rollout`)."""

import sys

from rollout.areal.dataset import main

if __name__ == "__main__":
    sys.exit(main())
