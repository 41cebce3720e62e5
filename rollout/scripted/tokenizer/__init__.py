"""Test data for the scripted server's token mode: the tau2 BPE tokenizer and Qwen2.5's chat template."""
