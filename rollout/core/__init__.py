"""The shared core every layer stands on: typed configuration (`config`), OpenAI-compatible
clients (`clients`) and the HTTP path under them (`fast_http`), failure classes and redaction
(`failures`), the episode result (`results`), token capture records (`tokens`), the episode
clock (`clock`), the process defaults (`process_env`) and the command-line convention
(`command`). It imports nothing else of the project."""
