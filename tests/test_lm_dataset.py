"""dataset/lm_dataset.py, sources.py and token_cache.py: loss masks to the token, bad input,
collates, packing, the token cache."""
import json
import multiprocessing as mp
import os
import pickle

import numpy as np
import pytest
import torch

import dataset.token_cache as token_cache
from dataset.lm_dataset import (DPODataset, PackedPretrainDataset, PretrainDataset, SFTDataset, dpo_collate,
                                pad_collate)
from dataset.sources import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_DIRS = {
    "minimind": os.path.join(ROOT, "..", "shared", "minimind_tokenizer"),
    "project": os.path.join(ROOT, "model"),
}
_TOKS = {}


def _load(name):
    d = TOKENIZER_DIRS[name]
    if not os.path.exists(os.path.join(d, "tokenizer.json")):
        pytest.skip(f"tokenizer {d} not present")
    if name not in _TOKS:
        from transformers import AutoTokenizer
        _TOKS[name] = AutoTokenizer.from_pretrained(d)
    return _TOKS[name]


@pytest.fixture(params=sorted(TOKENIZER_DIRS))
def tok(request):
    return _load(request.param)


@pytest.fixture
def mm_tok():
    """One tokenizer for tests whose subject is not the tokenizer."""
    for name in ("minimind", "project"):
        if os.path.exists(os.path.join(TOKENIZER_DIRS[name], "tokenizer.json")):
            return _load(name)
    pytest.skip("no tokenizer present")


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return str(path)


def conv(*turns, system=None, roles=True):
    msgs = [{"role": "system", "content": system}] if system is not None else []
    for k, content in enumerate(turns):
        msgs.append({"role": "user" if k % 2 == 0 else "assistant", "content": content}
                    if roles else {"content": content})
    return msgs


def oracle(tok, turns, system=None, max_length=10 ** 9):
    """Expected (X, Y, mask) built by hand from ChatML pieces, independently of the chat template:
    targets = each answer's tokens + its <|im_end|>; ids after the last target are not kept."""
    ids, mask = [], []

    def add(text, target):
        t = tok(text, add_special_tokens=False)["input_ids"]
        ids.extend(t)
        mask.extend([target] * len(t))

    add(f"<|im_start|>system\n{'You are a helpful assistant' if system is None else system}"
        "<|im_end|>\n", 0)
    for k, content in enumerate(turns):
        if k % 2 == 0:
            add(f"<|im_start|>user\n{content}<|im_end|>\n", 0)
        else:
            add("<|im_start|>assistant\n", 0)
            add(content, 1)
            ids.append(tok.eos_token_id)
            mask.append(1)
            add("\n", 0)
    last = max(i for i, m in enumerate(mask) if m)
    ids, mask = ids[:last + 1][:max_length], mask[:last + 1][:max_length]
    return ids[:-1], ids[1:], mask[1:]


def assert_item(item, expected):
    for got, want in zip(item, expected):
        assert got.dtype == torch.long
        assert got.tolist() == list(want)


# ---------------------------------------------------------------------------------------------
# SFT masks, token by token

MASK_CASES = {
    "single_default_system": dict(turns=("你好，请介绍一下你自己。", "我是一个乐于助人的助手。")),
    "single_with_system": dict(turns=("What is 2+2?", "2+2 equals 4."), system="You are terse."),
    "multi_turn": dict(turns=("Hi!", "Hello, how can I help?", "讲个笑话", "好的：为什么程序员分不清万圣节和圣诞节？",
                              "Why?", "Because Oct 31 == Dec 25.")),
    "multi_turn_system": dict(turns=("q1", "a1", "q2", "a2"), system="系统提示"),
    "ends_with_user": dict(turns=("q1", "a1", "an unanswered question")),
    "whitespace_and_newlines": dict(turns=("  spaced\n\nquestion ", "\n\n  answer with\nlines  \n")),
    "empty_answer": dict(turns=("say nothing", "")),
}


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_sft_mask_matches_hand_built_chatml(tmp_path, tok, case):
    c = MASK_CASES[case]
    rows = [{"conversations": conv(*c["turns"], system=c.get("system"))}]
    ds = SFTDataset(write_jsonl(tmp_path / "sft.jsonl", rows), tok, max_length=4096)
    assert len(ds) == 1 and ds.num_truncated == 0 and ds.num_dropped == 0
    assert_item(ds[0], oracle(tok, c["turns"], c.get("system")))
    assert ds.lengths.tolist() == [len(ds[0][0])]


def test_sft_targets_are_answers_and_im_end_only(tmp_path, tok):
    """Reads the mask back as text: nothing of the header, system or user turns is a target, the
    first answer token is (MiniMind skipped it), and each assistant turn's <|im_end|> is."""
    turns = ("Question one?", "Answer one.", "第二个问题？", "第二个回答。")
    ds = SFTDataset(write_jsonl(tmp_path / "s.jsonl", [{"conversations": conv(*turns, system="S")}]),
                    tok, 512)
    x, y, m = ds[0]
    spans, cur = [], []
    for tid, on in zip(y.tolist(), m.tolist()):
        if on:
            cur.append(tid)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    assert [tok.decode(s) for s in spans] == ["Answer one.<|im_end|>", "第二个回答。<|im_end|>"]
    header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    for k in range(len(y) - len(header) + 1):  # every header occurrence in Y is masked out
        if y[k:k + len(header)].tolist() == header:
            assert m[k:k + len(header)].sum() == 0
            assert m[k + len(header)] == 1  # ... and the answer's first token right after is a target


def test_roleless_turns_alternate_user_assistant(tmp_path, tok):
    turns = ("q1", "a1", "q2", "a2")
    rows = [{"conversations": conv(*turns, roles=False)},
            {"conversations": [{"role": "system", "content": "sys"}] + conv(*turns, roles=False)},
            # mixed: explicit roles where present, alternation elsewhere
            {"conversations": [{"role": "user", "content": "q1"}, {"content": "a1"},
                               {"content": "q2"}, {"role": "assistant", "content": "a2"}]}]
    ds = SFTDataset(write_jsonl(tmp_path / "s.jsonl", rows), tok, 512)
    assert len(ds) == 3
    assert_item(ds[0], oracle(tok, turns))
    assert_item(ds[1], oracle(tok, turns, system="sys"))
    assert_item(ds[2], oracle(tok, turns))


def test_sft_truncation_mid_answer_is_counted_and_exact(tmp_path, tok):
    turns = ("q1", "first answer", "q2", "a second, much longer answer that will be cut in the middle")
    full = oracle(tok, turns)
    # cut 5 tokens into the second answer
    second_answer_start = [i for i, m in enumerate(full[2]) if m][-1] - len(
        tok(turns[3], add_special_tokens=False)["input_ids"]) + 1
    L = second_answer_start + 1 + 5
    rows = [{"conversations": conv(*turns)}, {"conversations": conv("short q", "short a")}]
    ds = SFTDataset(write_jsonl(tmp_path / "s.jsonl", rows), tok, max_length=L)
    assert ds.num_truncated == 1 and ds.num_dropped == 0 and len(ds) == 2
    want = oracle(tok, turns, max_length=L)
    assert len(want[0]) == L - 1
    assert_item(ds[0], want)
    assert sum(want[2]) > len(tok("first answer", add_special_tokens=False)["input_ids"]) + 1
    assert ds.lengths[0] == L - 1
    assert "1 truncated to max_length" in ds.summary()


def test_sample_without_target_after_truncation_is_dropped_and_counted(tmp_path, mm_tok, capsys):
    long_prompt = "word " * 200
    rows = [{"conversations": conv("short", "kept answer")},
            {"conversations": conv(long_prompt, "answer beyond max_length")},
            {"conversations": conv("short again", "kept too")}]
    ds = SFTDataset(write_jsonl(tmp_path / "s.jsonl", rows), mm_tok, max_length=64)
    assert len(ds) == 2 and ds.num_dropped == 1 and ds.num_truncated == 1
    assert mm_tok.decode(ds[1][1][ds[1][2].bool()]) == "kept too<|im_end|>"
    assert "1 dropped" in capsys.readouterr().err  # the one summary line
    with pytest.raises(DataError, match="raise max_length"):
        SFTDataset(write_jsonl(tmp_path / "all.jsonl", rows[1:2]), mm_tok, max_length=64)


def test_dpo_masks_and_index(tmp_path, tok):
    chosen = ("How do I greet someone?", "Say hello politely.")
    rejected = ("How do I greet someone?", "Whatever.")
    rows = [{"chosen": conv(*chosen), "rejected": conv(*rejected)},
            {"chosen": conv("q", "a", "q2", "good", system="s"),
             "rejected": conv("q", "a", "q2", "bad", system="s")}]
    ds = DPODataset(write_jsonl(tmp_path / "d.jsonl", rows), tok, max_length=1024)
    assert len(ds) == 2
    for i, (c, r, sys_) in enumerate([(chosen, rejected, None),
                                      (("q", "a", "q2", "good"), ("q", "a", "q2", "bad"), "s")]):
        item = ds[i]
        assert item["index"] == i
        assert_item((item["x_chosen"], item["y_chosen"], item["mask_chosen"]), oracle(tok, c, sys_))
        assert_item((item["x_rejected"], item["y_rejected"], item["mask_rejected"]),
                    oracle(tok, r, sys_))
    assert ds.lengths[0] == max(len(ds[0]["x_chosen"]), len(ds[0]["x_rejected"]))


def test_dpo_truncation_counts_pairs(tmp_path, mm_tok):
    rows = [{"chosen": conv("q", "long " * 100), "rejected": conv("q", "short")}]
    ds = DPODataset(write_jsonl(tmp_path / "d.jsonl", rows), mm_tok, max_length=40)
    assert ds.num_truncated == 1 and len(ds[0]["x_chosen"]) == 39
    assert len(ds[0]["x_rejected"]) < 39


# ---------------------------------------------------------------------------------------------
# Pretraining

def test_pretrain_items_and_truncation(tmp_path, tok):
    texts = ["short text", "中文的句子，用来测试。", "long " * 50]
    ds = PretrainDataset(write_jsonl(tmp_path / "p.jsonl", [{"text": t} for t in texts]), tok, 32)
    assert len(ds) == 3 and ds.num_truncated == 1
    for i, t in enumerate(texts):
        ids = ([tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"]
               + [tok.eos_token_id])[:32]
        assert_item(ds[i], (ids[:-1], ids[1:], [1] * (len(ids) - 1)))
        assert ds.lengths[i] == len(ids) - 1


@pytest.mark.parametrize("L", [3, 7, 16])
def test_packed_covers_every_target_exactly_once(tmp_path, mm_tok, L):
    texts = [f"document {i}: " + "词语 " * (i % 9) for i in range(40)]
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": t} for t in texts])
    plain = PretrainDataset(path, mm_tok, 10 ** 6)
    packed = PackedPretrainDataset(path, mm_tok, L)
    stream = np.concatenate([np.r_[plain[i][0].numpy(), plain[i][1][-1:].numpy()]
                             for i in range(len(plain))])
    assert len(packed) == -(-(len(stream) - 1) // L)
    assert packed.num_truncated == 0 and (packed.lengths == L).all()
    got_targets, rows = [], []
    for r in range(len(packed)):
        x, y, m = packed[r]
        assert x.shape == y.shape == m.shape == (L,)
        assert (x[1:] == y[:-1]).all()
        rows.append(y[m.bool()].numpy())
        got_targets.append(np.flatnonzero(m.numpy()) + r * L + 1)  # stream position of each target
    want = np.concatenate([plain[i][1].numpy() for i in range(len(plain))])  # unpacked targets
    assert np.array_equal(np.concatenate(rows), want)
    pos = np.concatenate(got_targets)
    assert len(np.unique(pos)) == len(pos)  # no stream token is a target twice
    x, y, m = packed[len(packed) - 1]
    tail = (len(stream) - 1) - (len(packed) - 1) * L
    assert (y[tail:] == packed.pad_id).all() and not m[tail:].any()
    assert torch.equal(packed[-1][0], x)
    with pytest.raises(IndexError):
        packed[len(packed)]


def test_packed_and_plain_share_one_token_file(tmp_path, mm_tok, monkeypatch):
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "abc"}] * 5)
    a = PretrainDataset(path, mm_tok, 8)
    monkeypatch.setattr(token_cache, "_encode_chunk", _must_not_tokenize)
    b = PackedPretrainDataset(path, mm_tok, 4)
    assert a.cache.built and not b.cache.built
    assert b.cache.stem == a.cache.stem


# ---------------------------------------------------------------------------------------------
# Collates

def test_pad_collate_pads_to_longest(tmp_path, mm_tok):
    rows = [{"conversations": conv("q", "a" * k)} for k in (1, 7, 3)]
    ds = SFTDataset(write_jsonl(tmp_path / "s.jsonl", rows), mm_tok, 512)
    items = [ds[i] for i in range(3)]
    X, Y, M = pad_collate(0)(items)
    T = max(len(x) for x, _, _ in items)
    assert X.shape == Y.shape == M.shape == (3, T) and X.dtype == torch.long
    for b, (x, y, m) in enumerate(items):
        n = len(x)
        assert torch.equal(X[b, :n], x) and torch.equal(Y[b, :n], y) and torch.equal(M[b, :n], m)
        assert (X[b, n:] == 0).all() and (Y[b, n:] == 0).all() and (M[b, n:] == 0).all()
    assert M.sum() == sum(m.sum() for _, _, m in items)  # padding adds no target
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=pad_collate(0))
    assert [b[0].shape[0] for b in loader] == [2, 1]


def test_dpo_collate_common_length(tmp_path, mm_tok):
    rows = [{"chosen": conv("q", "long chosen answer " * 3), "rejected": conv("q", "no")},
            {"chosen": conv("q", "yes"), "rejected": conv("q", "a longer rejected answer " * 5)}]
    ds = DPODataset(write_jsonl(tmp_path / "d.jsonl", rows), mm_tok, 1024)
    items = [ds[0], ds[1]]
    batch = dpo_collate(7)(items)
    T = max(max(len(d["x_chosen"]), len(d["x_rejected"])) for d in items)
    assert set(batch) == {"x_chosen", "y_chosen", "mask_chosen", "x_rejected", "y_rejected",
                          "mask_rejected", "index"}
    assert batch["index"].tolist() == [0, 1] and batch["index"].dtype == torch.long
    for side in ("chosen", "rejected"):
        for key in ("x", "y", "mask"):
            assert batch[f"{key}_{side}"].shape == (2, T)
        for b, d in enumerate(items):
            n = len(d[f"x_{side}"])
            assert torch.equal(batch[f"x_{side}"][b, :n], d[f"x_{side}"])
            assert torch.equal(batch[f"mask_{side}"][b, :n], d[f"mask_{side}"])
            assert (batch[f"x_{side}"][b, n:] == 7).all() and (batch[f"y_{side}"][b, n:] == 7).all()
            assert not batch[f"mask_{side}"][b, n:].any()


# ---------------------------------------------------------------------------------------------
# Bad input: one DataError naming file, line and what was expected

U, A = {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}
GOOD = {"pretrain": {"text": "fine"}, "sft": {"conversations": [U, A]},
        "dpo": {"chosen": [U, A], "rejected": [U, A]}}
CLASSES = {"pretrain": PretrainDataset, "sft": SFTDataset, "dpo": DPODataset}
BAD = [
    ("pretrain", '{"text": "unterminated', "expected one JSON object per line, got invalid JSON"),
    ("pretrain", '["a", "list"]', "expected a JSON object per line, got a list"),
    ("pretrain", {"content": "x"}, 'expected a "text" field, got keys [\'content\']'),
    ("pretrain", {"text": 5}, 'expected "text" to be a string, got a number'),
    ("sft", {"messages": [U, A]}, 'expected a "conversations" field'),
    ("sft", {"conversations": []}, '"conversations" to be a non-empty list of messages'),
    ("sft", {"conversations": "hi"}, '"conversations" to be a non-empty list of messages'),
    ("sft", {"conversations": [U, "a"]}, "message 2 of \"conversations\" to be an object, got a string"),
    ("sft", {"conversations": [{"role": "user"}, A]}, 'message 1 of "conversations" to have a string '
                                                      '"content", got no content'),
    ("sft", {"conversations": [U, {"role": "assistant", "content": None}]},
     'message 2 of "conversations" to have a string "content", got null'),
    ("sft", {"conversations": [U, {"role": "bot", "content": "a"}]},
     'message 2 of "conversations" to have role system, user, assistant or tool, got role bot'),
    ("sft", {"conversations": [U, A, {"role": "system", "content": "s"}]},
     "expected a system message only as message 1"),
    ("sft", {"conversations": [U, U, A]}, "message 2 of \"conversations\" to have role assistant"),
    ("sft", {"conversations": [A]}, "message 1 of \"conversations\" to have role user"),
    ("sft", {"conversations": [{"role": "system", "content": "s"}, U]},
     'expected at least one assistant message in "conversations", got none'),
    ("dpo", {"chosen": [U, A]}, 'expected a "rejected" field'),
    ("dpo", {"chosen": [U, A], "rejected": [U, {"role": "assistant"}]},
     'message 2 of "rejected" to have a string "content"'),
]


@pytest.mark.parametrize("kind,bad,expected", BAD, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD)])
def test_bad_line_names_file_and_line(tmp_path, mm_tok, kind, bad, expected):
    path = write_jsonl(tmp_path / f"{kind}.jsonl", [GOOD[kind], "", GOOD[kind], bad, GOOD[kind]])
    with pytest.raises(DataError) as e:
        CLASSES[kind](path, mm_tok, 64)
    msg = str(e.value)
    assert msg.startswith(f"{path}:4: "), msg  # 1-based, blank line 2 counted
    assert expected in msg and "; " in msg, msg
    assert e.value.line == 4 and e.value.path == path
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("line,reason", [
    ('{"text": "unterminated', "invalid JSON (unterminated string starting at column 10)"),
    ('{"text": "ok"', "invalid JSON (the line ends before the JSON object does (column 14))"),
    ('{"text": "a" "b"}', "invalid JSON (expecting ',' delimiter at column 14)"),
    ('{"text": "tab\there"}', "invalid JSON (invalid control character at column 14)"),
])
def test_json_errors_say_what_is_wrong(tmp_path, mm_tok, line, reason):
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "fine"}, line])
    with pytest.raises(DataError) as e:
        PretrainDataset(path, mm_tok, 64)
    assert str(e.value) == f"{path}:2: expected one JSON object per line, got {reason}; fix or delete this line"


def test_invalid_utf8(tmp_path, mm_tok):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "\xff\xfe"}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:2: expected UTF-8 text"):
        PretrainDataset(str(path), mm_tok, 64)


@pytest.mark.parametrize("content,expected", [
    (None, "expected a JSONL file, got no such file"),
    ("", "expected at least one JSON line, got an empty file"),
    ("\n  \n\n", "expected at least one JSON line, got only blank lines"),
])
def test_whole_file_errors(tmp_path, mm_tok, content, expected):
    path = tmp_path / "x.jsonl"
    if content is not None:
        path.write_text(content)
    for cls in CLASSES.values():
        with pytest.raises(DataError) as e:
            cls(str(path), mm_tok, 64)
        assert str(e.value).startswith(f"{path}: {expected}; "), str(e.value)


def test_error_line_number_from_worker_processes(tmp_path, mm_tok):
    """The parallel path (several chunks, worker processes) reports the same line number."""
    rows = [GOOD["sft"]] * 5000
    rows[4321] = {"conversations": [U, {"role": "robot", "content": "x"}]}
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    with pytest.raises(DataError, match=r"s\.jsonl:4322: expected message 2"):
        SFTDataset(path, mm_tok, 64, num_proc=2)
    rows[4321] = GOOD["sft"]
    write_jsonl(tmp_path / "s.jsonl", rows)
    par = SFTDataset(path, mm_tok, 64, num_proc=2)
    seq = SFTDataset(path, mm_tok, 64, cache_dir=str(tmp_path / "seq"), num_proc=1)
    assert len(par) == len(seq) == 5000
    for i in (0, 2047, 2048, 4999):
        assert all(torch.equal(a, b) for a, b in zip(par[i], seq[i]))


def test_template_without_chatml_is_a_clear_error(tmp_path, mm_tok):
    import copy
    tok = copy.deepcopy(mm_tok)
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    path = write_jsonl(tmp_path / "s.jsonl", [GOOD["sft"]])
    with pytest.raises(DataError, match=r"s\.jsonl:1: expected the chat template to render assistant"):
        SFTDataset(path, tok, 64)
    tok.chat_template = None
    with pytest.raises(DataError, match="expected a tokenizer with a chat template"):
        SFTDataset(path, tok, 64)


# ---------------------------------------------------------------------------------------------
# The cache

def _must_not_tokenize(*a, **k):
    raise AssertionError("tokenized again although a cache exists")


def test_cache_reused_then_invalidated_by_edit(tmp_path, mm_tok, monkeypatch):
    path = write_jsonl(tmp_path / "s.jsonl", [GOOD["sft"]] * 3)
    first = SFTDataset(path, mm_tok, 64)
    assert first.cache.built and first.cache.dir == str(tmp_path / ".minimind_cache")
    assert open(tmp_path / ".minimind_cache" / ".gitignore").read().strip().endswith("*")
    real = token_cache._encode_chunk
    monkeypatch.setattr(token_cache, "_encode_chunk", _must_not_tokenize)
    again = SFTDataset(path, mm_tok, 128)  # another max_length: same cache
    assert not again.cache.built and len(again) == 3
    assert all(torch.equal(a, b) for a, b in zip(first[2], again[2]))
    # an edit (new size and mtime) must rebuild; the stale cache is removed
    write_jsonl(path, [GOOD["sft"]] * 4)
    with pytest.raises(AssertionError, match="tokenized again"):
        SFTDataset(path, mm_tok, 64)
    monkeypatch.setattr(token_cache, "_encode_chunk", real)
    edited = SFTDataset(path, mm_tok, 64)
    assert edited.cache.built and len(edited) == 4 and edited.cache.stem != first.cache.stem
    left = os.listdir(tmp_path / ".minimind_cache")
    assert not any(n.startswith(first.cache.stem + ".") and not n.endswith(".lock") for n in left)


def test_same_size_edit_invalidates(tmp_path, mm_tok):
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "aaaa"}])
    a = PretrainDataset(path, mm_tok, 64)
    st = os.stat(path)
    write_jsonl(path, [{"text": "bbbb"}])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    b = PretrainDataset(path, mm_tok, 64)
    assert b.cache.built and not torch.equal(a[0][0], b[0][0])


def test_tokenizer_change_invalidates(tmp_path, mm_tok):
    import copy
    path = write_jsonl(tmp_path / "s.jsonl", [GOOD["sft"]])
    a = SFTDataset(path, mm_tok, 64)
    tok = copy.deepcopy(mm_tok)
    tok.chat_template = tok.chat_template.replace("You are a helpful assistant", "Be brief")
    b = SFTDataset(path, tok, 64)
    assert b.cache.built and b.cache.stem != a.cache.stem
    assert "Be brief" in tok.decode(b[0][0]) and "Be brief" not in mm_tok.decode(a[0][0])


def test_bad_file_leaves_no_cache_and_fails_the_same_way(tmp_path, mm_tok):
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "ok"}, "{oops"])
    with pytest.raises(DataError, match=":2: ") as first:
        PretrainDataset(path, mm_tok, 64)
    assert not any(n.endswith(".arrow") for n in os.listdir(tmp_path / ".minimind_cache"))
    with pytest.raises(DataError) as again:  # checked again, never loaded half-built
        PretrainDataset(path, mm_tok, 64)
    assert str(again.value) == str(first.value) and again.value.line == 2


def test_cache_dir_from_environment_when_data_dir_not_writable(tmp_path, mm_tok, monkeypatch):
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "x"}])
    beside = str(tmp_path / ".minimind_cache")
    real = token_cache._usable_dir
    monkeypatch.setattr(token_cache, "_usable_dir", lambda d: d != beside and real(d))
    monkeypatch.setenv("MINIMIND_DATA_CACHE", str(tmp_path / "home_cache"))
    ds = PretrainDataset(path, mm_tok, 64)
    assert ds.cache.dir == str(tmp_path / "home_cache") and len(ds) == 1
    assert not os.path.exists(beside)
    monkeypatch.delenv("MINIMIND_DATA_CACHE")
    with pytest.raises(DataError, match="expected a writable cache folder.*set MINIMIND_DATA_CACHE"):
        PretrainDataset(path, mm_tok, 64)


def _build_in_child(args):
    path, tok, q = args
    ds = PackedPretrainDataset(path, tok, 16, verbose=False)
    q.put((ds.cache.built, len(ds), ds[len(ds) - 1][1].tolist()))


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")
def test_concurrent_ranks_build_once(tmp_path, mm_tok):
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": f"line {i} " * 20} for i in range(3000)])
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_build_in_child, args=((path, mm_tok, q),)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(built for built, _, _ in results) == 1
    assert len({(n, tuple(last)) for _, n, last in results}) == 1


def test_pickles_without_token_data(tmp_path, mm_tok):
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "x " * 1000}] * 200)
    ds = PretrainDataset(path, mm_tok, 512)
    ds[0]  # opens the memory maps
    blob = pickle.dumps(ds)
    assert len(blob) < 20000  # DataLoader workers get paths, not the tokens
    clone = pickle.loads(blob)
    assert all(torch.equal(a, b) for a, b in zip(ds[199], clone[199]))


def test_tokenizer_path_accepted(tmp_path, mm_tok):
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "hello"}])
    ds = PretrainDataset(path, mm_tok.name_or_path, 16)
    assert ds[0][0].tolist()[0] == mm_tok.bos_token_id
    with pytest.raises(ValueError, match="max_length"):
        PretrainDataset(path, mm_tok, 1)


def test_bundled_demo_data_loads(tmp_path, tok):
    """The demo corpus (dataset/demo) goes through every class; copied so no cache lands in the repo."""
    import shutil
    demo = os.path.join(ROOT, "dataset", "demo")
    names = ("pretrain.jsonl", "sft.jsonl", "dpo.jsonl")
    if not all(os.path.exists(os.path.join(demo, n)) for n in names):
        pytest.skip("dataset/demo not generated")
    for n in names:
        shutil.copy(os.path.join(demo, n), tmp_path / n)
    pre = PretrainDataset(str(tmp_path / "pretrain.jsonl"), tok, 10 ** 6)
    packed = PackedPretrainDataset(str(tmp_path / "pretrain.jsonl"), tok, 256)
    sft = SFTDataset(str(tmp_path / "sft.jsonl"), tok, 512)
    dpo = DPODataset(str(tmp_path / "dpo.jsonl"), tok, 1024)
    with open(tmp_path / "sft.jsonl", encoding="utf-8") as f:
        assert len(sft) + sft.num_dropped == sum(1 for line in f if line.strip())
    assert len(pre) > 0 and len(packed) > 0 and len(dpo) > 0
    assert pre.num_truncated == 0  # so its targets are every document token: packing keeps them all
    assert int(pre.lengths.sum()) == sum(int(packed[r][2].sum()) for r in range(len(packed)))
    for i in range(0, len(sft), max(1, len(sft) // 50)):
        x, y, m = sft[i]
        assert m.any()
        if len(x) < 511:  # not truncated: the last target closes the last answer
            assert y[m.bool()][-1] == tok.eos_token_id


# ---------------------------------------------------------------------------------------------
# More inputs: Parquet, save_to_disk folders, globs and folders of shards

def test_parquet_saved_dataset_and_shards_give_the_same_items(tmp_path, mm_tok):
    """The demo SFT and DPO files converted in the test: every form gives the JSONL file's items."""
    import shutil

    from dataset.token_cache import hf_datasets
    hf = hf_datasets()
    demo = os.path.join(ROOT, "dataset", "demo")
    for name, cls, L in (("sft.jsonl", SFTDataset, 512), ("dpo.jsonl", DPODataset, 1024)):
        if not os.path.exists(os.path.join(demo, name)):
            pytest.skip("dataset/demo not generated")
        stem = name.split(".")[0]
        d = tmp_path / stem
        os.makedirs(d / "shards")
        shutil.copy(os.path.join(demo, name), d / name)
        with open(d / name, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        table = hf.Dataset.from_list(rows)
        table.to_parquet(str(d / f"{stem}.parquet"))
        table.save_to_disk(str(d / "saved"))
        for k in range(3):  # shards of a third each, named so that sorting keeps the order
            write_jsonl(d / "shards" / f"{stem}_{k}.jsonl", rows[k * len(rows) // 3:(k + 1) * len(rows) // 3])
        ref = cls(str(d / name), mm_tok, L)
        for path in (d / f"{stem}.parquet", d / "saved", d / "shards", d / "shards" / f"{stem}_*.jsonl"):
            ds = cls(str(path), mm_tok, L, verbose=False)
            assert ds.cache.built == (not str(path).endswith("*.jsonl")), path  # the glob: same shards
            assert len(ds) == len(ref) and np.array_equal(ds.lengths, ref.lengths), path
            for i in (0, len(ref) // 2, len(ref) - 1):
                a, b = ref[i], ds[i]
                if isinstance(a, dict):
                    a, b = [a[k] for k in sorted(a)], [b[k] for k in sorted(b)]
                assert all(torch.equal(torch.as_tensor(x), torch.as_tensor(y)) for x, y in zip(a, b)), path
        assert not cls(str(d / f"{stem}.parquet"), mm_tok, L).cache.built  # cached like a JSONL file
    assert [f for f in os.listdir(tmp_path / "sft" / CACHE) if not f.endswith((".arrow", ".lock"))] == [".gitignore"]


def test_rlaif_prompts_from_parquet_and_globs_are_the_jsonl_files(tmp_path, mm_tok):
    """train_grpo.py's prompts (MiniMind's RLAIF lines, with the demo's "gt" field) read alike from JSONL,
    Parquet, a save_to_disk folder and a glob of shards."""
    from dataset.lm_dataset import PromptDataset
    from dataset.token_cache import hf_datasets
    src = os.path.join(ROOT, "dataset", "demo", "rlaif.jsonl")
    if not os.path.exists(src):
        pytest.skip("dataset/demo not generated")
    with open(src, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    os.makedirs(tmp_path / "shards")
    write_jsonl(tmp_path / "p.jsonl", rows)
    for k in range(2):
        write_jsonl(tmp_path / "shards" / f"p_{k}.jsonl", rows[k * len(rows) // 2:(k + 1) * len(rows) // 2])
    table = hf_datasets().Dataset.from_list(rows)
    table.to_parquet(str(tmp_path / "p.parquet"))
    table.save_to_disk(str(tmp_path / "saved"))
    ref = PromptDataset(str(tmp_path / "p.jsonl"), mm_tok, 66, verbose=False)
    assert len(ref) == len(rows) and ref[0]["fields"]["gt"] == rows[0]["gt"]
    for path in (tmp_path / "p.parquet", tmp_path / "saved", tmp_path / "shards" / "p_*.jsonl"):
        ds = PromptDataset(str(path), mm_tok, 66, verbose=False)
        assert len(ds) == len(ref), path
        for i in range(len(ref)):
            assert list(ds[i]["prompt_ids"]) == list(ref[i]["prompt_ids"]) and ds[i]["fields"] == ref[i]["fields"], path


CACHE = token_cache.CACHE_DIRNAME


def test_parquet_row_errors_and_patterns_without_files(tmp_path, mm_tok):
    from dataset.token_cache import hf_datasets
    rows = [{"conversations": [U, A]}, {"conversations": [U, {"role": "robot", "content": "x"}]}]
    path = str(tmp_path / "s.parquet")
    hf_datasets().Dataset.from_list(rows).to_parquet(path)
    with pytest.raises(DataError, match=r"s\.parquet:2: expected message 2 of \"conversations\" to have role"):
        SFTDataset(path, mm_tok, 64)
    with pytest.raises(DataError, match="expected files matching this pattern, got none"):
        SFTDataset(str(tmp_path / "nothing_*.jsonl"), mm_tok, 64)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DataError, match="a folder without them"):
        SFTDataset(str(tmp_path / "empty"), mm_tok, 64)


def test_datasets_runs_offline():
    from dataset.token_cache import hf_datasets
    hf = hf_datasets()
    assert os.environ["HF_DATASETS_OFFLINE"] == "1" and hf.config.HF_HUB_OFFLINE
