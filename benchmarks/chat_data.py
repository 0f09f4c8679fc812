"""Data for the epoch sections: generated chat-like JSONL (SFT conversations, DPO pairs) with a stated
length mix, read by the real data sets, and the statistics of the lengths."""
import json
import math
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Chat-like lengths in tokens (lognormal: median, sigma). Most conversations are far shorter than
# max_seq_len, with a long tail that gets truncated; the numbers are stated in the JSON.
SFT_LENGTHS = dict(turns=(0.7, 0.2, 0.1), user=(30, 0.8), assistant=(90, 0.9))
DPO_LENGTHS = dict(prompt=(40, 0.8), chosen=(150, 0.8), rejected=(120, 0.9))


def _lognormal_quantiles(n, median, sigma, rng):
    """n lengths whose empirical distribution is the lognormal's (stratified), shuffled."""
    from statistics import NormalDist
    q = [(i + 0.5) / n for i in range(n)]
    vals = np.array([median * math.exp(sigma * NormalDist().inv_cdf(p)) for p in q])
    rng.shuffle(vals)
    return np.maximum(1, vals.round().astype(int))


_PIECES = {}


def _pieces(tok):
    """Ids of vocabulary entries that decode to clean text (no special tokens, no broken UTF-8)."""
    key = (tok.name_or_path, len(tok))
    if key not in _PIECES:
        ids = [i for i in range(3, len(tok)) if (lambda s: s.strip() and "\ufffd" not in s and "<|" not in s)(
            tok.decode([i]))]
        _PIECES[key] = (tok, np.array(ids))
    return _PIECES[key]


def _text(pieces, n, rng):
    """Text of about n tokens: n random clean token ids, decoded (re-encoding merges a few: <= n)."""
    tok, ids = pieces
    return tok.decode(ids[rng.integers(0, len(ids), size=int(n))].tolist())


def write_sft_jsonl(path, tok, n, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    pieces = _pieces(tok)
    p_turns = SFT_LENGTHS["turns"]
    turns = rng.choice(np.arange(1, len(p_turns) + 1), size=n, p=p_turns)
    total = int(turns.sum())
    (um, us), (am, as_) = SFT_LENGTHS["user"], SFT_LENGTHS["assistant"]
    users = _lognormal_quantiles(total, um * scale, us, rng)
    answers = _lognormal_quantiles(total, am * scale, as_, rng)
    k = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            conv = []
            for _ in range(turns[i]):
                conv.append({"role": "user", "content": _text(pieces, users[k], rng)})
                conv.append({"role": "assistant", "content": _text(pieces, answers[k], rng)})
                k += 1
            f.write(json.dumps({"conversations": conv}, ensure_ascii=False) + "\n")


def write_dpo_jsonl(path, tok, n, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    pieces = _pieces(tok)
    P, C, R = (_lognormal_quantiles(n, DPO_LENGTHS[k][0] * scale, DPO_LENGTHS[k][1], rng)
               for k in ("prompt", "chosen", "rejected"))
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            prompt = {"role": "user", "content": _text(pieces, P[i], rng)}
            row = {"chosen": [prompt, {"role": "assistant", "content": _text(pieces, C[i], rng)}],
                   "rejected": [prompt, {"role": "assistant", "content": _text(pieces, R[i], rng)}]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def length_stats(lengths, max_len):
    a = np.asarray(lengths)
    return {"n": int(len(a)), "mean": float(a.mean()), "median": float(np.median(a)),
            "p90": float(np.percentile(a, 90)), "max": int(a.max()), "max_len": int(max_len),
            "mean_over_max": float(a.mean() / max_len)}


def _tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(os.path.join(ROOT, "model"))
