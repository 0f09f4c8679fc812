"""Compare tokenizers' compression (characters per token) on held-out Chinese and English text.

    python scripts/tokenizer_corpus.py --out_dir /tmp/tok_corpus      # writes heldout_{zh,en}_*.jsonl
    python scripts/tokenizer_compression.py --heldout_dir /tmp/tok_corpus \
        --zh dataset/demo/pretrain.jsonl --en dataset/demo/pretrain.jsonl --en botchan.txt

Inputs are {"text": ...} JSONL files or plain .txt files (cut into ~1000-character pieces at line
ends). A file given with --zh keeps only its texts that contain Chinese characters, one given with
--en only those that contain none, so a bilingual file can be passed to both. Characters per
token = total characters / total tokens, each text encoded on its own without special tokens;
higher is better: the model sees more text per token of context. Prints a Markdown table, one row
per held-out set plus a pooled row per language, one column per tokenizer (default ./model and,
when present, ../shared/minimind_tokenizer).
"""

import argparse
import glob
import json
import os
import re
import sys

_CJK = re.compile(r"[\u3400-\u9fff]")


def load_texts(path, lang):
    if path.endswith(".txt"):
        texts, piece = [], []
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                piece.append(line)
                if sum(map(len, piece)) >= 1000:
                    texts.append("".join(piece))
                    piece = []
        if piece:
            texts.append("".join(piece))
    else:
        with open(path, encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f if line.strip()]
    keep_zh = lang == "zh"
    return [t for t in texts if bool(_CJK.search(t)) == keep_zh]


def count(tokenizer, texts):
    """(characters, tokens) over the texts, each encoded alone without special tokens."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return sum(map(len, texts)), sum(map(len, ids))


def main(argv=None):
    p = argparse.ArgumentParser(description="Characters per token of tokenizers on held-out text.")
    p.add_argument("--heldout_dir", help="directory with heldout_zh_*.jsonl and heldout_en_*.jsonl")
    p.add_argument("--zh", action="append", default=[], help="Chinese text: .jsonl or .txt (repeatable)")
    p.add_argument("--en", action="append", default=[], help="English text: .jsonl or .txt (repeatable)")
    p.add_argument("--tokenizer", action="append", default=[],
                   help="tokenizer directory (repeatable; default ./model and ../shared/minimind_tokenizer)")
    args = p.parse_args(argv)

    from transformers import AutoTokenizer

    sets = []
    if args.heldout_dir:
        for path in sorted(glob.glob(os.path.join(args.heldout_dir, "heldout_*_*.jsonl"))):
            lang, name = os.path.basename(path)[len("heldout_"):-len(".jsonl")].split("_", 1)
            sets.append((lang, name, path))
    sets += [("zh", os.path.basename(f), f) for f in args.zh] + [("en", os.path.basename(f), f) for f in args.en]
    if not sets:
        p.error("give --heldout_dir or --zh/--en files")
    tok_dirs = args.tokenizer or [d for d in ("./model", "../shared/minimind_tokenizer") if os.path.isdir(d)]
    toks = [(d, AutoTokenizer.from_pretrained(d)) for d in tok_dirs]

    sets.sort(key=lambda s: s[0] != "zh")  # Chinese rows first, order otherwise kept
    data = [(lang, name, load_texts(path, lang)) for lang, name, path in sets]
    print("| held-out text | chars | " + " | ".join(f"`{d}`" for d, _ in toks) + " |")
    print("|---|---:|" + "---:|" * len(toks))
    pooled = {}
    for lang, name, texts in data:
        cells = []
        for d, tok in toks:
            c, n = count(tok, texts)
            pc, pn = pooled.setdefault((lang, d), [0, 0])
            pooled[(lang, d)] = [pc + c, pn + n]
            cells.append(f"{c / max(n, 1):.3f}")
        print(f"| {lang}: {name} ({len(texts)} texts) | {sum(map(len, texts))} | " + " | ".join(cells) + " |")
    for lang in ("zh", "en"):
        if (lang, toks[0][0]) in pooled:
            cells = [f"**{pooled[(lang, d)][0] / max(pooled[(lang, d)][1], 1):.3f}**" for d, _ in toks]
            print(f"| **{lang}: all of the above** | {pooled[(lang, toks[0][0])][0]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
