"""Data and scoring hooks (`!function utils.X`) for the demo-world tasks of lm-evaluation-harness.

The data are the bundled JSONL files next to this one (written by scripts/make_demo_data.py) and
../heldout.jsonl: read from disk, never downloaded, so the tasks run with HF_DATASETS_OFFLINE=1.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def _rows(path, lang=None):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found; write it with python scripts/make_demo_data.py "
                                "--out_dir dataset/demo")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if lang is None or r["lang"] == lang]


def _dataset(splits):
    import datasets
    return datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})


def load_mc(lang=None, **_):
    """4-way multiple choice: train = the facts SFT teaches, test = the held-out facts."""
    return _dataset({split: _rows(os.path.join(HERE, f"demo_world_{split}.jsonl"), lang)
                     for split in ("train", "test")})


def load_heldout(lang=None, **_):
    """The demo's held-out questions with their answer keywords (dataset/demo/heldout.jsonl)."""
    return _dataset({"test": _rows(os.path.join(os.path.dirname(HERE), "heldout.jsonl"), lang)})


def keyword_correct(text, keywords, distractors):
    """The demo's rule: every keyword and none of the distractors, case-insensitively."""
    t = text.lower()
    return all(k.lower() in t for k in keywords) and not any(d.lower() in t for d in distractors)


def process_gen(doc, results):
    return {"acc": float(keyword_correct(results[0], doc["keywords"], doc["distractors"]))}
