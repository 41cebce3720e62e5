"""`python -m launch.bench`: the repository's entry point for `rollout.bench.bench` (installed as `tau2-rollout`)."""

import sys

from rollout.bench.bench import main

if __name__ == "__main__":
    sys.exit(main())
