"""`python -m launch.episode`: the repository's entry point for `rollout.agent.command` (installed as `tau2-rollout`)."""

import sys

from rollout.agent.command import main

if __name__ == "__main__":
    sys.exit(main())
