"""Build the scripted server's model directories (rollout/scripted/models/qwen25, qwen3) from
`tau2-bpe.json` and the chat templates beside this file.

    python -m rollout.scripted.tokenizer.model_dirs            # write both directories
    python -m rollout.scripted.tokenizer.model_dirs --check    # exit 1 if a shipped file differs

Each directory holds what a Qwen model repository holds for its tokenizer, in Qwen's shape, with
no weights: `tokenizer.json`, `tokenizer_config.json` (`added_tokens_decoder`,
`additional_special_tokens`, `chat_template`, `eos_token` "<|im_end|>", `pad_token`
"<|endoftext|>", `tokenizer_class` "Qwen2Tokenizer", as Qwen ships them), `config.json` (model_type
qwen2 / qwen3, the vocabulary size, a tiny architecture so a trainer can instantiate it) and
`generation_config.json` (eos_token_id [<|im_end|>, <|endoftext|>] as Qwen ships it).

- qwen25: `tau2-bpe.json` as it is (4096 learned tokens + Qwen2.5's 22 added tokens) and
  `qwen25_chat_template.jinja` (build.py says where it comes from).
- qwen3: the same vocabulary plus Qwen3's four extra added tokens, in Qwen3's order and with its
  flags (Qwen3's tokenizer_config.json `added_tokens_decoder`, ids 151665-151668: `<tool_response>`,
  `</tool_response>`, `<think>`, `</think>`, added, not special), and `qwen3_chat_template.jinja`.

Provenance of qwen3_chat_template.jinja: the `chat_template` of Qwen/Qwen3-8B's tokenizer_config.json
(the version that reads `message.content is string` and `message.reasoning_content is string`, the
one SkyRL's templates README cites at Qwen3-8B commit 895c8d17), copied verbatim from a complete
public copy (llama.cpp's converter printing a Qwen3 tokenizer_config's template) and
cross-checked: its text up to the generation prompt is byte-identical to the JSON-decoded
`chat_template` of a second, independent public copy of a Qwen3 tokenizer_config.json (a Qwen3-4B
model card: same added_tokens_decoder, ids 151643-151668), and its generation prompt
(`<|im_start|>assistant\\n`, then `<think>\\n\\n</think>\\n\\n` when enable_thinking is false) is
byte-identical to llama.cpp's models/templates/Qwen-Qwen3-0.6B.jinja. The file has no final
newline, as the JSON string has none.

Deterministic: no training here; the files are the `tokenizers` library's serialisation and JSON
with sorted keys.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rollout.scripted.chat_template import SPECIAL_TOKENS_MAP
from rollout.scripted.models import MODELS, model_dir

HERE = Path(__file__).resolve().parent
BPE = HERE / "tau2-bpe.json"
TEMPLATES = {"qwen25": HERE / "qwen25_chat_template.jinja", "qwen3": HERE / "qwen3_chat_template.jinja"}
QWEN3_EXTRA_ADDED_TOKENS = (("<tool_response>", False), ("</tool_response>", False), ("<think>", False), ("</think>", False))
ADDITIONAL_SPECIAL_TOKENS = SPECIAL_TOKENS_MAP["additional_special_tokens"]  # Qwen2.5's, in its order
ARCH = {
    "qwen25": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "transformers_version": "4.43.1"},
    "qwen3": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": 8, "transformers_version": "4.51.0"},
}
SAMPLING = {  # generation_config.json's sampling defaults, as each family ships them
    "qwen25": {"repetition_penalty": 1.05, "temperature": 0.7, "top_k": 20, "top_p": 0.8, "transformers_version": "4.37.0"},
    "qwen3": {"temperature": 0.6, "top_k": 20, "top_p": 0.95, "transformers_version": "4.51.0"},
}


def tokenizer_json(name: str) -> str:
    if name == "qwen25":
        return BPE.read_text()
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(str(BPE))
    for content, special in QWEN3_EXTRA_ADDED_TOKENS:
        token = AddedToken(content, single_word=False, lstrip=False, rstrip=False, normalized=False, special=special)
        (tok.add_special_tokens if special else tok.add_tokens)([token])
    return tok.to_str(pretty=False)


def files(name: str) -> dict[str, str]:
    """file name -> text of model `name`'s directory."""
    from tokenizers import Tokenizer

    tok_text = tokenizer_json(name)
    tok = Tokenizer.from_str(tok_text)
    added = sorted(tok.get_added_tokens_decoder().items())
    ids = {t.content: i for i, t in added}
    decoder = {
        str(i): {
            "content": t.content,
            "lstrip": t.lstrip,
            "normalized": t.normalized,
            "rstrip": t.rstrip,
            "single_word": t.single_word,
            "special": t.special,
        }
        for i, t in added
    }
    vocab = tok.get_vocab_size(with_added_tokens=True)
    eos, pad = ids["<|im_end|>"], ids["<|endoftext|>"]
    config_tok = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": ADDITIONAL_SPECIAL_TOKENS,
        "bos_token": None,
        "chat_template": TEMPLATES[name].read_text(),
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    config = {
        **ARCH[name],
        "bos_token_id": pad,
        "eos_token_id": eos,
        "hidden_act": "silu",
        "hidden_size": 16,
        "intermediate_size": 32,
        "max_position_embeddings": 32768,
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "vocab_size": vocab,
    }
    generation = {"bos_token_id": pad, "do_sample": True, "eos_token_id": [eos, pad], "pad_token_id": pad, **SAMPLING[name]}

    def dump(obj) -> str:
        return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    return {
        "tokenizer.json": tok_text,
        "tokenizer_config.json": dump(config_tok),
        "config.json": dump(config),
        "generation_config.json": dump(generation),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rollout.scripted.tokenizer.model_dirs", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="compare with the shipped directories instead of writing them")
    args = p.parse_args(argv)
    stale = []
    for name in MODELS:
        out = model_dir(name)
        for fname, text in files(name).items():
            path = out / fname
            if args.check:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path))
            else:
                out.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if args.check:
        print("model directories up to date" if not stale else "DIFFER from a fresh build: " + ", ".join(stale))
        return 1 if stale else 0
    print(f"wrote {', '.join(str(model_dir(n)) for n in MODELS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
