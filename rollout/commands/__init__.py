"""The CLI's commands (`tau2-rollout <command>`), each a module with its help and `run(argv) -> int`.

The top floor: a command may use every layer below it; no product layer imports a command.
Commands print; the library functions they call return values.
"""
