"""Token-in: the policy's context as token ids, rendered with the model's own chat template
(chat_format), sampled through the engine's token interface (engines) and parsed back into the
message a chat endpoint would have returned (parsers)."""
