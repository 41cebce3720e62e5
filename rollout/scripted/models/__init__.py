"""The scripted server's model directories: Hugging Face-style directories (no weights) that
`transformers.AutoTokenizer.from_pretrained(model_dir(name))` and
`tokenizers.Tokenizer.from_file(model_dir(name) / "tokenizer.json")` load.

- `qwen25`: the tau2 BPE tokenizer with Qwen2.5's added tokens and Qwen2.5-Instruct's chat template;
- `qwen3`: the same vocabulary plus Qwen3's added tokens (`<tool_response>`, `</tool_response>`,
  `<think>`, `</think>`) and Qwen3's chat template.

Built by `python -m rollout.scripted.tokenizer.model_dirs` (its doc says how and from what).
"""

from __future__ import annotations

from pathlib import Path

MODELS = ("qwen25", "qwen3")
ROOT = Path(__file__).resolve().parent


def model_dir(name: str) -> Path:
    """The directory of model `name` (one of MODELS)."""
    if name not in MODELS:
        raise ValueError(f"unknown scripted model '{name}'; valid: {', '.join(MODELS)}")
    return ROOT / name
