"""Trainer adapters over the rollout pool: SkyRL's generator (skyrl.py) and verl's agent loop (verl.py).

Each module imports its trainer: install the matching extra (`.[skyrl]`, `.[verl]`).
"""
