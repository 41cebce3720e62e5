"""`python -m launch.episode`: the repository's entry point for `rollout.episode_cli` (installed as `tau2-rollout`)."""

import sys

from rollout.episode_cli import main

if __name__ == "__main__":
    sys.exit(main())
