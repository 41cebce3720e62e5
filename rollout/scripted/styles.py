"""The shapes of the scripted agent's tool-call replies (policies.styled): plain calls, a sentence
before them, `""` content beside them, or a mix. A module of its own so that the server's command
line lists them without importing tau2."""

REPLY_STYLES = ("plain", "text_with_calls", "empty_content", "mixed")
