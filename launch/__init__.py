"""Commands: sweep (local or in a Ray job), submit (ray job submit), and later export/bench tools."""
