"""Compare tokenizers' compression (characters per token) on held-out Chinese and English text.

    python scripts/tokenizer_compression.py --heldout_dir /tmp/tok_corpus
    python scripts/tokenizer_compression.py --zh a.jsonl --en b.jsonl --tokenizer ./model --tokenizer ../shared/minimind_tokenizer

Inputs are {"text": ...} JSONL files (tokenizer_corpus.py writes heldout_zh.jsonl and
heldout_en.jsonl). Characters per token = total characters / total tokens, each text encoded on
its own without special tokens. Higher is better: the model sees more text per token of context.
Prints a Markdown table.
"""

import argparse
import json
import os
import sys


def load_texts(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def chars_per_token(tokenizer, texts):
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    n_tok = sum(len(x) for x in ids)
    return sum(len(t) for t in texts) / max(n_tok, 1), n_tok


def main(argv=None):
    p = argparse.ArgumentParser(description="Characters per token of tokenizers on held-out text.")
    p.add_argument("--heldout_dir", help="directory with heldout_zh.jsonl and heldout_en.jsonl")
    p.add_argument("--zh", action="append", default=[], help="Chinese {'text'} JSONL (repeatable)")
    p.add_argument("--en", action="append", default=[], help="English {'text'} JSONL (repeatable)")
    p.add_argument("--tokenizer", action="append", default=[],
                   help="tokenizer directory (repeatable; default ./model and ../shared/minimind_tokenizer)")
    args = p.parse_args(argv)

    from transformers import AutoTokenizer

    sets = [("zh", z) for z in args.zh] + [("en", e) for e in args.en]
    if args.heldout_dir:
        sets = [("zh", os.path.join(args.heldout_dir, "heldout_zh.jsonl")),
                ("en", os.path.join(args.heldout_dir, "heldout_en.jsonl"))] + sets
    if not sets:
        p.error("give --heldout_dir or --zh/--en files")
    tok_dirs = args.tokenizer or [d for d in ("./model", "../shared/minimind_tokenizer") if os.path.isdir(d)]

    data = [(lang, path, load_texts(path)) for lang, path in sets]
    header = "| tokenizer | " + " | ".join(f"{lang} `{os.path.basename(path)}` ({sum(map(len, t))} chars)"
                                           for lang, path, t in data) + " |"
    print(header)
    print("|" + "---|" * (len(data) + 1))
    for d in tok_dirs:
        tok = AutoTokenizer.from_pretrained(d)
        cells = [f"{chars_per_token(tok, texts)[0]:.3f}" for _, _, texts in data]
        print(f"| `{d}` (vocab {len(tok)}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
