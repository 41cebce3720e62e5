"""The aenv backend: this project's AEnvironment env module (module/), the state it serves
(state.py), local aenv server processes (servers.py) and the client session (session.py)."""
