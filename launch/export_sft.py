"""`python -m launch.export_sft`: the repository's entry point for `rollout.sweep.sft` (installed as `tau2-rollout`)."""

import sys

from rollout.sweep.sft import main

if __name__ == "__main__":
    sys.exit(main())
