"""The CLI's commands, one module each (`rollout/core/command.py` has the convention they follow;
`rollout/cli.py` dispatches to them). The top floor: a command may import any layer, none
imports a command. Each turns its arguments into calls of the library below it and prints what
those return."""
