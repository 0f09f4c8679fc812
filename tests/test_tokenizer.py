"""The shipped tokenizer (model/), the script that trains it, and compatibility with MiniMind2's."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "model"
SCRIPT = ROOT / "scripts" / "train_tokenizer.py"
MINIMIND_DIR = ROOT.parent / "shared" / "minimind_tokenizer"

SYSTEM_DEFAULT = "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"


def _load(name):
    """Import scripts/<name>.py (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load_script():
    return _load("train_tokenizer")


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(str(MODEL_DIR))


@pytest.fixture(scope="module")
def minimind_tok():
    if not (MINIMIND_DIR / "tokenizer.json").is_file():
        pytest.skip("../shared/minimind_tokenizer is absent")
    return AutoTokenizer.from_pretrained(str(MINIMIND_DIR))


def render(tokenizer, messages, add_generation_prompt=False):
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


# --- special tokens ---------------------------------------------------------------------------

def test_special_token_ids(tok):
    assert len(tok) == 6400
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    assert (tok.pad_token, tok.pad_token_id) == ("<|endoftext|>", 0)
    assert (tok.unk_token, tok.unk_token_id) == ("<|endoftext|>", 0)
    assert (tok.bos_token, tok.bos_token_id) == ("<|im_start|>", 1)
    assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", 2)


def test_specials_are_atomic_and_not_added_to_plain_text(tok):
    # Datasets add bos/eos themselves; the tokenizer must not add them on its own.
    assert tok("hello")["input_ids"] == tok("hello", add_special_tokens=False)["input_ids"]
    assert 1 not in tok("hello")["input_ids"] and 2 not in tok("hello")["input_ids"]
    ids = tok("<|im_start|>user\nhi<|im_end|>\n")["input_ids"]
    assert ids[0] == 1 and ids.count(1) == 1 and ids.count(2) == 1
    # the special strings spelled out inside ordinary words still map to the single ids
    assert tok.decode(ids) == "<|im_start|>user\nhi<|im_end|>\n"
    assert tok.decode(ids, skip_special_tokens=True) == "user\nhi\n"


def test_shipped_files_are_what_the_script_writes():
    mod = _load_script()
    with open(MODEL_DIR / "tokenizer_config.json", encoding="utf-8") as f:
        assert json.load(f) == mod.tokenizer_config()
    with open(MODEL_DIR / "tokenizer.json", encoding="utf-8") as f:
        shipped = json.load(f)
    fresh = json.loads(mod.build_tokenizer().to_str())
    for key in ("normalizer", "pre_tokenizer", "decoder", "post_processor"):
        assert shipped[key] == fresh[key], key
    assert shipped["model"]["type"] == "BPE"
    assert [t["content"] for t in shipped["added_tokens"]] == mod.SPECIAL_TOKENS
    assert [t["id"] for t in shipped["added_tokens"]] == [0, 1, 2]


# --- chat template ----------------------------------------------------------------------------

def test_template_default_system_turn(tok):
    msgs = [{"role": "user", "content": "你好"}]
    assert render(tok, msgs) == SYSTEM_DEFAULT + "<|im_start|>user\n你好<|im_end|>\n"
    assert render(tok, msgs, add_generation_prompt=True) == (
        SYSTEM_DEFAULT + "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n")


def test_template_given_system_turn_replaces_default(tok):
    msgs = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"}]
    assert render(tok, msgs) == ("<|im_start|>system\nAnswer briefly.<|im_end|>\n"
                                 "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                                 "<|im_start|>assistant\n4<|im_end|>\n")


def test_template_multi_turn_with_generation_prompt(tok):
    msgs = [{"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!\nHow can I help?"},
            {"role": "user", "content": "讲个笑话"}]
    assert render(tok, msgs, add_generation_prompt=True) == (
        SYSTEM_DEFAULT
        + "<|im_start|>user\nHi<|im_end|>\n"
        + "<|im_start|>assistant\nHello!\nHow can I help?<|im_end|>\n"
        + "<|im_start|>user\n讲个笑话<|im_end|>\n"
        + "<|im_start|>assistant\n")


def test_template_tokenizes_specials_to_their_ids(tok):
    ids = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=True,
                                  add_generation_prompt=True, return_dict=True)["input_ids"]
    text = render(tok, [{"role": "user", "content": "x"}], add_generation_prompt=True)
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    assert ids.count(1) == 3 and ids.count(2) == 2  # system, user, assistant opened; two closed
    assert ids[0] == 1 and ids[-1] != 2


# --- round trip and compression ---------------------------------------------------------------

ROUND_TRIP = [
    "今天天气很好，我们去公园散步吧。",
    "The quick brown fox jumps over the lazy dog.",
    "混合 mixed 文本 text：数字 12345，符号 @#%&*()，表情 🙂👍，日本語 かな，한국어。",
    "  leading spaces, trailing spaces  \n\n\ttabs and\r\nnewlines\n",
    "def f(x):\n    return x ** 2  # code\n",
    "",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert all(0 <= i < 6400 for i in ids)
    assert tok.decode(ids) == text


# Short paragraphs written for this test (not in any training corpus): a floor against
# regressions in the shipped tokenizer's compression, and a comparison with MiniMind's.
ZH_PROSE = ("春天来了，山坡上的桃花一夜之间全开了。村里的孩子们放学后总爱跑到河边，看渔民把小船拉上岸，"
            "听老人讲过去的故事。研究人员指出，城市化的速度正在改变人们的生活方式，越来越多的年轻人选择"
            "在大城市工作，而把父母留在家乡。政府计划在未来五年内投资建设更多的学校和医院，以提高农村地区"
            "的公共服务水平。")
EN_PROSE = ("In the spring the orchards on the hillside bloomed overnight. After school the children ran down "
            "to the river to watch the fishermen drag their boats ashore and to hear the old men tell stories "
            "about the past. Researchers say that rapid urbanization is changing the way people live: more and "
            "more young people choose to work in large cities and leave their parents behind in their home "
            "towns. The government plans to build more schools and hospitals over the next five years.")


def _chars_per_token(tokenizer, text):
    return len(text) / len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_compression_floor(tok):
    assert _chars_per_token(tok, ZH_PROSE) >= 1.30
    assert _chars_per_token(tok, EN_PROSE) >= 3.8


def test_compresses_at_least_as_well_as_minimind(tok, minimind_tok):
    for text in (ZH_PROSE, EN_PROSE):
        assert _chars_per_token(tok, text) >= _chars_per_token(minimind_tok, text)


# --- the training script ----------------------------------------------------------------------

def _write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def test_train_script_end_to_end(tmp_path):
    rows = []
    for i in range(300):
        rows.append({"text": f"第{i}天，小明在图书馆读书，他觉得这本书非常有意思。Day {i}: the library was quiet "
                             f"and the reader enjoyed book number {i * 7 % 13}."})
    rows.insert(5, "")  # blank lines are skipped, not errors
    data = tmp_path / "pretrain.jsonl"
    _write_jsonl(data, rows)
    out = tmp_path / "tok"
    r = _run("--data_path", data, "--out_dir", out, "--vocab_size", 400, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "300 texts" in r.stdout
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "tokenizer.json").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    t = AutoTokenizer.from_pretrained(str(out))
    assert len(t) == 400
    assert (t.pad_token_id, t.bos_token_id, t.eos_token_id, t.unk_token_id) == (0, 1, 2, 0)
    text = "小明在图书馆读书 the library 🙂"
    assert t.decode(t(text)["input_ids"]) == text
    # learned merges: frequent training words become single tokens
    assert len(t(" library", add_special_tokens=False)["input_ids"]) == 1
    msgs = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "hi"}]
    assert render(t, msgs) == SYSTEM_DEFAULT + "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\nhi<|im_end|>\n"


def test_train_script_max_samples(tmp_path):
    data = tmp_path / "p.jsonl"
    _write_jsonl(data, [{"text": f"sample {i} text"} for i in range(50)])
    r = _run("--data_path", data, "--out_dir", tmp_path / "o", "--vocab_size", 300, "--max_samples", 10, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "10 texts" in r.stdout


@pytest.mark.parametrize("bad_line, expected", [
    ('{"text": "unterminated', "invalid JSON"),
    ('{"content": "no text field"}', '"text" field'),
    ('["a", "list"]', '"text" field'),
    ('{"text": 42}', '"text" to be a string'),
])
def test_train_script_bad_line_exits_2_naming_file_and_line(tmp_path, bad_line, expected):
    data = tmp_path / "bad.jsonl"
    _write_jsonl(data, [{"text": "fine"}, {"text": "also fine"}, bad_line, {"text": "never read"}])
    out = tmp_path / "out"
    out.mkdir()
    (out / "tokenizer.json").write_text("previous tokenizer")
    r = _run("--data_path", data, "--out_dir", out, "--vocab_size", 300, "--quiet")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"{data}:3:" in lines[0] and expected in lines[0]
    assert "Traceback" not in r.stderr
    assert (out / "tokenizer.json").read_text() == "previous tokenizer"  # nothing already written is lost


def test_train_script_bad_utf8_names_its_line(tmp_path):
    data = tmp_path / "latin1.jsonl"
    data.write_bytes('\ufeff{"text": "ok"}\n{"text": "fine"}\n'.encode("utf-8") + '{"text": "café"}\n'.encode("latin-1"))
    r = _run("--data_path", data, "--out_dir", tmp_path / "o", "--vocab_size", 300, "--quiet")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and f"{data}:3:" in r.stderr and "UTF-8" in r.stderr, r.stderr


@pytest.mark.parametrize("make, args, expected", [
    (lambda p: None, ("--vocab_size", 300), "no such file"),
    (lambda p: p.write_text("\n\n"), ("--vocab_size", 300), "at least one"),
    (lambda p: p.write_text('{"text": "x"}\n'), ("--vocab_size", 100), "--vocab_size"),
])
def test_train_script_user_errors(tmp_path, make, args, expected):
    data = tmp_path / "d.jsonl"
    make(data)
    r = _run("--data_path", data, "--out_dir", tmp_path / "o", "--quiet", *args)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and expected in r.stderr, r.stderr


# --- compatibility with MiniMind2's tokenizer -------------------------------------------------

def test_same_special_ids_as_minimind(tok, minimind_tok):
    for attr in ("bos_token", "eos_token", "pad_token", "unk_token"):
        assert getattr(tok, attr) == getattr(minimind_tok, attr), attr
        assert getattr(tok, attr + "_id") == getattr(minimind_tok, attr + "_id"), attr
    assert len(tok) == len(minimind_tok) == 6400
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert tok.convert_tokens_to_ids(specials) == minimind_tok.convert_tokens_to_ids(specials) == [0, 1, 2]


CONVERSATIONS = [
    # (messages, add_generation_prompt): every form the datasets and chat scripts render
    ([{"role": "user", "content": "你好"}], True),
    ([{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！有什么可以帮你？"}], False),
    ([{"role": "system", "content": "你是一个乐于助人的助手。"}, {"role": "user", "content": "1+1=?"}], True),
    ([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "Bye"},
      {"role": "assistant", "content": "Bye.\n"}], False),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
      {"role": "user", "content": "c"}], True),
]


@pytest.mark.parametrize("messages, gen", CONVERSATIONS)
def test_template_renders_like_minimind(tok, minimind_tok, messages, gen):
    ours = render(tok, messages, add_generation_prompt=gen)
    assert ours == render(minimind_tok, messages, add_generation_prompt=gen)


def test_script_output_renders_like_minimind(tmp_path, minimind_tok):
    # The template the script writes (not just the shipped copy) matches MiniMind2's.
    mod = _load_script()
    data = tmp_path / "p.jsonl"
    _write_jsonl(data, [{"text": "你好 hello"}] * 3)
    out = tmp_path / "tok"
    mod.save(mod.train(str(data), vocab_size=270, show_progress=False)[0], str(out))
    t = AutoTokenizer.from_pretrained(str(out))
    for messages, gen in CONVERSATIONS:
        assert render(t, messages, gen) == render(minimind_tok, messages, gen)


# --- corpus and measurement tooling -----------------------------------------------------------

def test_count_lines_keep_chinese_words_free_of_spaces(tok):
    corpus = _load("tokenizer_corpus")
    zh = list(corpus._count_lines([("我们", 30), ("中国", 10), ("罕见", 1)], "zh", millions=41 / 1e6))
    words = "\n".join(zh).split("\n")
    assert (words.count("我们"), words.count("中国"), words.count("罕见")) == (30, 10, 1) and " " not in "".join(zh)
    en = " ".join(corpus._count_lines([("the", 3), ("Cat", 1)], "en", millions=4 / 1e6))
    assert sorted(en.split(" ")) == ["Cat", "the", "the", "the"]
    # a Chinese word after a newline pre-tokenizes without the space marker, as in running text
    pieces = [p for p, _ in tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str("我们\n中国")]
    assert tok.backend_tokenizer.decoder.decode([pieces[-1]]) == "中国"


def test_split_is_stable_and_by_text():
    corpus = _load("tokenizer_corpus")
    texts = [f"paragraph {i}" for i in range(2000)]
    held = [t for t in texts if corpus.is_heldout(t, 0.05)]
    assert held == [t for t in texts if corpus.is_heldout(t, 0.05)]
    assert 50 <= len(held) <= 150
    assert [corpus.repeats(t, 1.5) for t in texts[:50]] == [corpus.repeats(t, 1.5) for t in texts[:50]]
    assert {corpus.repeats(t, 1.5) for t in texts} == {1, 2} and {corpus.repeats(t, 2) for t in texts} == {2}


def test_compression_script_filters_by_language(tmp_path):
    comp = _load("tokenizer_compression")
    f = tmp_path / "mixed.jsonl"
    _write_jsonl(f, [{"text": "纯中文句子。"}, {"text": "Plain English."}, {"text": "混合 mixed"}])
    assert comp.load_texts(str(f), "zh") == ["纯中文句子。", "混合 mixed"]
    assert comp.load_texts(str(f), "en") == ["Plain English."]
    txt = tmp_path / "book.txt"
    txt.write_text("line of a book\n" * 200, encoding="utf-8")
    pieces = comp.load_texts(str(txt), "en")
    assert "".join(pieces) == "line of a book\n" * 200 and all(len(p) <= 1100 for p in pieces)


def test_compression_script_table(tmp_path):
    f = tmp_path / "zh.jsonl"
    _write_jsonl(f, [{"text": ZH_PROSE}])
    g = tmp_path / "en.jsonl"
    _write_jsonl(g, [{"text": EN_PROSE}])
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "tokenizer_compression.py"), "--zh", str(f),
                        "--en", str(g), "--tokenizer", str(MODEL_DIR)], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = {line.split("|")[1].strip(): line for line in r.stdout.splitlines() if line.startswith("| ")}
    zh_row = next(v for k, v in rows.items() if k.startswith("zh: zh.jsonl"))
    assert f"{_chars_per_token(AutoTokenizer.from_pretrained(str(MODEL_DIR)), ZH_PROSE):.3f}" in zh_row
