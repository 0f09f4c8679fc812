"""dataset/lm_dataset.py: loss masks to the token, bad input, collates, packing, cache."""
import json
import os

import numpy as np
import pytest
import torch

from dataset.lm_dataset import (DataError, DPODataset, PackedPretrainDataset, PretrainDataset,
                                SFTDataset, dpo_collate, pad_collate)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_DIRS = {
    "minimind": os.path.join(ROOT, "..", "shared", "minimind_tokenizer"),
    "project": os.path.join(ROOT, "model"),
}


def _load(name):
    d = TOKENIZER_DIRS[name]
    if not os.path.exists(os.path.join(d, "tokenizer.json")):
        pytest.skip(f"tokenizer {d} not present")
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(d)


@pytest.fixture(scope="module", params=sorted(TOKENIZER_DIRS))
def tok(request):
    return _load(request.param)


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return str(path)


def test_smoke_all_classes(tmp_path, tok):
    p = write_jsonl(tmp_path / "p.jsonl", [{"text": "hello world"}, {"text": "你好世界"}])
    s = write_jsonl(tmp_path / "s.jsonl", [{"conversations": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}])
    d = write_jsonl(tmp_path / "d.jsonl", [{"chosen": [{"role": "user", "content": "hi"},
                                                       {"role": "assistant", "content": "hello"}],
                                            "rejected": [{"role": "user", "content": "hi"},
                                                         {"role": "assistant", "content": "no"}]}])
    ds = PretrainDataset(p, tok, 64)
    x, y, m = ds[0]
    assert x[0] == tok.bos_token_id and y[-1] == tok.eos_token_id and m.all()
    assert len(ds) == 2 and ds.num_truncated == 0
    assert len(PackedPretrainDataset(p, tok, 4)[0][0]) == 4
    x, y, m = SFTDataset(s, tok, 64)[0]
    assert tok.decode(y[m.bool()]) == "hello<|im_end|>"
    item = DPODataset(d, tok, 64)[0]
    assert tok.decode(item["y_rejected"][item["mask_rejected"].bool()]) == "no<|im_end|>"
