"""Test data for the scripted server's token mode: the tau2 BPE tokenizer, Qwen2.5's and Qwen3's chat
templates, and the builders of the model directories (rollout/scripted/models)."""
