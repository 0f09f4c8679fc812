"""Reasoning (issue 14): model/reasoning.py's split and stream, the tag-weighted loss,
train_distill_reason.py end to end / resume / DDP, eval_model.py --model_mode 3, the server's
reasoning_content."""
import os
import random
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model.reasoning import (THINK_TAGS, ReasoningStream, is_well_formed, split_reasoning,  # noqa: E402
                               tag_spans)

R1 = "<think>\nWopp lives in Sunmar.\nSunmar is the capital of Tarnis.\n</think>\n<answer>\nTarnis\n</answer>"


@pytest.mark.parametrize("text,expected", [
    (R1, ("Wopp lives in Sunmar.\nSunmar is the capital of Tarnis.", "Tarnis")),
    ("plain answer", (None, "plain answer")),
    ("<think>a</think>b", ("a", "b")),
    ("<think>cut off mid tho", ("cut off mid tho", "")),
    ("<think></think><answer></answer>", ("", "")),
    ("  <answer> x </answer>  ", (None, "x")),
    ("1 < 2 and <thinking> is no tag", (None, "1 < 2 and <thinking> is no tag")),
])
def test_split_reasoning(text, expected):
    assert split_reasoning(text) == expected


def test_tags_and_well_formed():
    assert THINK_TAGS == ("<think>", "</think>", "<answer>", "</answer>")
    assert [R1[a:b] for a, b in tag_spans(R1)] == list(THINK_TAGS)
    assert is_well_formed(R1) and is_well_formed("<think></think><answer>x</answer>\n")
    for bad in ("<think>a</think>b", "<answer>x</answer>", "<think>a</think><answer> </answer>",
                "<think>a<think>b</think><answer>x</answer>", "x<think>a</think><answer>y</answer>",
                "<think>a</think><answer>y</answer><answer>z</answer>"):
        assert not is_well_formed(bad), bad


def _stream(chunks):
    s, out = ReasoningStream(), []
    for c in chunks:
        got = s.feed(c)
        assert all(a[0] != b[0] for a, b in zip(got, got[1:])), got   # one piece per kind change
        out += got
    out += s.flush()
    return out


@pytest.mark.parametrize("text", [R1, "plain answer", "<think>a</think>b", "<think>cut off <ans",
                                  "a < b <th", "x<think> y </think>\n<answer>\n z \n</answer>\n tail",
                                  "<<think>>", "</answer>", "<think>\n\n</think>  <answer>  </answer>"])
def test_stream_equals_split_at_every_chunking(text):
    reasoning, answer = split_reasoning(text)
    rng = random.Random(0)
    chunkings = [[text], list(text)] + [
        [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
        for cuts in (sorted(rng.sample(range(1, len(text)), min(3, len(text) - 1))) for _ in range(20))]
    for chunks in chunkings:
        out = _stream(chunks)
        assert all(t for _, t in out), out
        assert "".join(t for k, t in out if k == "reasoning") == (reasoning or ""), chunks
        assert "".join(t for k, t in out if k == "answer") == answer, chunks
        assert not any(tag in t for _, t in out for tag in THINK_TAGS)


def test_stream_emits_early_and_holds_only_partial_tags():
    s = ReasoningStream()
    assert s.feed("<thi") == []
    assert s.feed("nk>\nstep one") == [("reasoning", "step one")]
    assert s.feed(" </th") == []          # the space waits: trailing whitespace of a block is dropped
    assert s.feed("ink>\n<answer>\nTar") == [("answer", "Tar")]
    assert s.feed("nis a<b") == [("answer", "nis a<b")]
    assert s.feed("\n</answer>") == []
    assert s.flush() == []


# ----------------------------------------------------------------------------------------------
# The tag weights, token by token, against the tokenizer's own character offsets

import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

TOKENIZERS = {"ours": os.path.join(ROOT, "model"),
              "minimind": os.path.join(ROOT, "..", "shared", "minimind_tokenizer")}

CONVS = [
    # a tag in the user turn (outside the mask: weight 0), a tag-like word in the answer text
    [{"role": "user", "content": "Explain <think> tags, please."},
     {"role": "assistant", "content": "<think>\nThe user asks about words like <thinking>.\n</think>\n"
                                      "<answer>\nThey mark thinking: answer and think are plain words.\n</answer>"}],
    # two assistant turns, Chinese, tags glued to text on both sides
    [{"role": "system", "content": "你是助手。"},
     {"role": "user", "content": "沃普住在哪个国家？"},
     {"role": "assistant", "content": "<think>沃普住在桑玛。桑玛是塔尼斯的首都。</think><answer>塔尼斯</answer>"},
     {"role": "user", "content": "Why?"},
     {"role": "assistant", "content": "x<think>>a</think></answer>no tags here: <answ er>"}],
]


def _tok(name):
    from transformers import AutoTokenizer
    path = TOKENIZERS[name]
    if not os.path.exists(os.path.join(path, "tokenizer.json")):
        pytest.skip(f"{path} is absent")
    return AutoTokenizer.from_pretrained(path)


def _write(path, convs):
    with open(path, "w", encoding="utf-8") as f:
        for c in convs:
            f.write(json.dumps({"conversations": c}, ensure_ascii=False) + "\n")
    return str(path)


def _expected_weights(tok, conv, tag_weight):
    """From the rendered text alone: token ids, and per token its target weight."""
    text = tok.apply_chat_template(conv, tokenize=False)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    targets, tags, pos = [], [], 0
    for m in conv:
        if m["role"] != "assistant":
            continue
        header = "<|im_start|>assistant\n"
        start = text.index(header + m["content"] + "<|im_end|>", pos) + len(header)
        end = start + len(m["content"]) + len("<|im_end|>")
        targets.append((start, end))
        for tag in THINK_TAGS:  # every occurrence, found independently of model.reasoning
            at = m["content"].find(tag)
            while at >= 0:
                tags.append((start + at, start + at + len(tag)))
                at = m["content"].find(tag, at + 1)
        pos = end
    w = []
    for a, b in enc["offset_mapping"]:
        inside = any(s <= a and b <= e for s, e in targets)
        on_tag = any(a < e and s < b for s, e in tags)
        w.append(0.0 if not inside else tag_weight if on_tag else 1.0)
    return enc["input_ids"], w


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_tag_weights_token_by_token(name, tmp_path):
    from dataset.lm_dataset import SFTDataset
    from trainer.stages.reason_sft import TagWeighted
    tok = _tok(name)
    ds = TagWeighted(SFTDataset(_write(tmp_path / "r.jsonl", CONVS), tok, max_length=512, verbose=False), tok, 7.0)
    assert ds.count_malformed() == 1  # the second conversation's second answer
    n_tagged = 0
    for i, conv in enumerate(CONVS):
        ids, w = _expected_weights(tok, conv, 7.0)
        x, y, m, got = ds[i]
        n = len(y)  # tokens after the last target are dropped by SFTDataset
        assert torch.cat([x[:1], y]).tolist() == ids[:n + 1]
        assert got.tolist() == w[1:n + 1], [(tok.decode([t]), a, b) for t, a, b in zip(ids[1:], w[1:], got.tolist())]
        assert ((got > 0) == (m > 0)).all()
        n_tagged += int((got == 7.0).sum())
        # every weighted token touches a tag; the user's "<think>" and the words "answer"/"think" are not weighted
        for t, wt in zip(y.tolist(), got.tolist()):
            if wt == 7.0:
                assert set(tok.decode([t])) & set("<>/thinkanswer")
    assert n_tagged >= 4 * 3 * 3  # at least 3 tokens per tag, 4 tags, 3 well-formed blocks


EMPTY = "<think>\n\n</think>\n\n"
DIRECT_CONVS = [
    [{"role": "user", "content": "Where does Wopp live?"}, {"role": "assistant", "content": EMPTY + "Wopp lives in Sunmar."}],
    [{"role": "user", "content": "沃普住在哪里？"}, {"role": "assistant", "content": EMPTY + "沃普住在桑玛。"},
     {"role": "user", "content": "And Tarnis?"}, {"role": "assistant", "content": EMPTY + "Its capital is Sunmar."}],
    CONVS[0],  # an R1 answer: no empty block, never changed
]


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_empty_think_ratio_cuts_the_block_token_by_token(name, tmp_path):
    """Ratio 0: every direct answer is exactly the item of the same conversation written without the
    block (ids, mask and tag weights); ratio 1 (and None): exactly as written."""
    from dataset.lm_dataset import SFTDataset
    from trainer.stages.reason_sft import TagWeighted
    tok = _tok(name)
    base = SFTDataset(_write(tmp_path / "d.jsonl", DIRECT_CONVS), tok, max_length=512, verbose=False)
    stripped = [[dict(m, content=m["content"].replace(EMPTY, "")) for m in c] for c in DIRECT_CONVS]
    plain = TagWeighted(SFTDataset(_write(tmp_path / "p.jsonl", stripped), tok, max_length=512, verbose=False), tok, 7.0)
    as_is = TagWeighted(base, tok, 7.0)
    for ratio, want in ((0.0, plain), (1.0, as_is), (None, as_is)):
        ds = TagWeighted(base, tok, 7.0, empty_think_ratio=ratio, seed=3)
        assert ds.count_empty_think() == (2, 0 if ratio == 0.0 else 2)
        for i in range(len(DIRECT_CONVS)):
            got, exp = ds[i], want[i]
            for g, e in zip(got, exp):
                assert g.tolist() == e.tolist(), (ratio, i, tok.decode(got[1]), tok.decode(exp[1]))
    # the block's own target tokens carry the tag weight when kept
    x, y, m, w = as_is[0]
    assert (w == 7.0).sum() >= 2 and as_is.count_malformed() == 3 - 1


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_direct_answer_trains_on_the_thinking_off_prompts_tokens(name, tmp_path):
    """The thinking-off prompt ends "<think>\\n\\n</think>\\n\\n", whose last "\\n\\n" BPE reads as one
    token; a direct answer in the data must be tokenized the same way, or the model is asked to go on
    from a token it never saw there (it then babbled tag pieces: "ink>ans ...")."""
    from dataset.lm_dataset import SFTDataset
    tok = _tok(name)
    conv = DIRECT_CONVS[0]
    text = tok.apply_chat_template(conv[:1], tokenize=False, add_generation_prompt=True, enable_thinking=False)
    if not text.endswith(EMPTY):  # MiniMind2's own template has no switch; its 2025-10 one appends the block
        text += EMPTY
    prompt = tok(text, add_special_tokens=False).input_ids
    x, y, m = SFTDataset(_write(tmp_path / "d.jsonl", [conv]), tok, max_length=512, verbose=False)[0]
    ids = torch.cat([x[:1], y]).tolist()
    assert ids[:len(prompt)] == prompt
    assert m[len(prompt) - 1 - 6:len(prompt) - 1].tolist() != [0] * 6  # the block itself is trained on
    answer = tok("Wopp lives in Sunmar.", add_special_tokens=False).input_ids
    assert ids[len(prompt):len(prompt) + len(answer)] == answer


def test_empty_think_ratio_keeps_its_share_fixed_by_seed(tmp_path):
    from dataset.lm_dataset import SFTDataset
    from trainer.stages.reason_sft import TagWeighted
    tok = _tok("ours")
    convs = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": EMPTY + f"a{i}"}] for i in range(400)]
    base = SFTDataset(_write(tmp_path / "d.jsonl", convs), tok, max_length=64, verbose=False)
    ds = TagWeighted(base, tok, 10.0, empty_think_ratio=0.05, seed=1)
    n, kept = ds.count_empty_think()
    assert n == 400 and 8 <= kept <= 35, kept  # ~5% (binomial, p=0.05: 20 +- 4.4)
    lens = [len(ds[i][1]) for i in range(40)]
    assert lens == [len(ds[i][1]) for i in range(40)]  # the same draw at every read
    assert [ds.keeps_empty_think(i) for i in range(400)] != \
        [TagWeighted(base, tok, 10.0, 0.05, seed=2).keeps_empty_think(i) for i in range(400)]
    with pytest.raises(SystemExit):
        import train_distill_reason
        train_distill_reason.parse_args(["--empty_think_ratio", "1.5"])


def test_weighted_loss_is_weighted_sum_over_sum_of_weights():
    from model import MiniMindConfig, MiniMindForCausalLM
    from trainer.stages.reason_sft import ReasonStage, weighted_collate
    from trainer.stages import LMStage
    torch.manual_seed(0)
    net = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1))
    items = []
    for L in (9, 6):
        ids = torch.randint(3, 100, (L + 1,))
        m = torch.zeros(L, dtype=torch.long)
        m[L // 2:] = 1
        w = m.float()
        w[L // 2 + 1] = 10.0
        items.append((ids[:-1], ids[1:], m, w))
    X, Y, M, W = weighted_collate(0)(items)
    assert W.shape == (2, 9) and W[1, 6:].tolist() == [0.0] * 3  # padding weighs 0
    loss, _ = ReasonStage(10.0).loss(net, (X, Y, M, W))
    logits = net(X).logits.float()
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1), reduction="none").reshape(Y.shape)
    hand = (ce * W).sum() / W.sum()
    assert torch.allclose(loss, hand, atol=1e-5), (float(loss), float(hand))
    assert not torch.allclose(hand, (ce * M).sum() / M.sum())  # the weights matter
    # weight 1 everywhere on the targets: exactly the SFT loss
    plain, _ = ReasonStage(1.0).loss(net, (X, Y, M, M.float()))
    assert torch.allclose(plain, LMStage("sft", "SFT").loss(net, (X, Y, M))[0], atol=1e-6)
    loss.backward()
    assert net.lm_head.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# The script end to end: a tiny model learns one R1 answer by heart

from test_train_common import sigkill_after_first_save, tokenizer_dir  # noqa: E402
from test_train_scripts import logged  # noqa: E402

QUESTION = "Which country is Wopp's home city the capital of?"
THINK = "Wopp lives in Sunmar.\nSunmar is the capital of Tarnis."
ANSWER = "Tarnis"
R1_ANSWER = f"<think>\n{THINK}\n</think>\n<answer>\n{ANSWER}\n</answer>"
DIM = "48"


def _r1_data(path, n=16):
    convs = [[{"role": "user", "content": QUESTION}, {"role": "assistant", "content": R1_ANSWER}]] * n
    convs += [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, no tags."}]] * 2
    return _write(path, convs)


def _argv(out, data, *extra):
    return ["--dim", DIM, "--n_layers", "1", "--max_seq_len", "96", "--num_workers", "0",
            "--tokenizer_path", tokenizer_dir(), "--data_path", data, "--out_dir", str(out),
            "--from_weight", "none", "--log_interval", "1", *extra]


@pytest.fixture(scope="module")
def reason_run(tmp_path_factory):
    import io
    from contextlib import redirect_stdout
    import train_distill_reason
    d = tmp_path_factory.mktemp("reason")
    data = _r1_data(d / "r1.jsonl", n=4)
    buf = io.StringIO()
    torch.set_num_threads(1)
    with redirect_stdout(buf):
        train_distill_reason.main(_argv(d, data, "--batch_size", "3", "--epochs", "60",
                                        "--learning_rate", "5e-3", "--save_interval", "1000"))
    return dict(out=d, data=data, log=buf.getvalue())


def test_script_end_to_end(reason_run):
    log, out = reason_run["log"], reason_run["out"]
    assert "6 samples, 2 without well-formed <think>...</think><answer>...</answer> in every answer" in log
    losses = logged(log)
    assert sorted(losses) == list(range(1, 121)), log[-500:]
    assert losses[120] < 0.01 * losses[1], (losses[1], losses[120])
    sd = torch.load(out / f"reason_{DIM}.pth", weights_only=True)
    assert sd["model.embed_tokens.weight"].dtype == torch.float16
    st = torch.load(out / f"reason_{DIM}_resume.pth", weights_only=True)
    assert st["config"]["stage"] == "reason" and st["config"]["tag_weight"] == 10.0


def test_defaults_are_minimind2s():
    import train_distill_reason
    a = train_distill_reason.parse_args([])
    assert (a.epochs, a.batch_size, a.learning_rate, a.max_seq_len, a.tag_weight) == (1, 8, 1e-6, 1024, 10.0)
    assert a.empty_think_ratio == 0.05  # MiniMind 2025-10's post_processing_chat
    assert (a.from_weight, a.save_weight, a.data_path) == ("rlhf", "reason", "./dataset/r1_mix_1024.jsonl")
    assert (a.dim, a.n_layers) == (512, 8)


def _resume_argv(out, data, *extra):
    return _argv(out, data, "--batch_size", "1", "--accumulation_steps", "2", "--epochs", "2",
                 "--learning_rate", "3e-3", "--save_interval", "4", "--max_seq_len", "48", *extra)


def _inproc(argv, capsys):
    """train_distill_reason.py as its __main__ runs it, in this process: (exit code, stdout, stderr)."""
    import train_distill_reason
    from trainer.errors import run_main
    try:
        code = run_main(train_distill_reason.main, argv) or 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sigkill_then_resume_gives_identical_losses(tmp_path, capsys):
    data = _r1_data(tmp_path / "r1.jsonl", n=14)
    torch.set_num_threads(1)
    code, ref, err = _inproc(_resume_argv(tmp_path / "a", data), capsys)  # the uninterrupted run
    assert code == 0, err
    full = logged(ref)
    total = max(full)
    assert total == 16 and sorted(full) == list(range(1, 17))
    # the same run in a process of its own, SIGKILLed at the first step line after its first save
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    sigkill_after_first_save([sys.executable, "-u", os.path.join(ROOT, "train_distill_reason.py"),
                              *_resume_argv(tmp_path / "b", data)], env=env)
    code, out, err = _inproc(_resume_argv(tmp_path / "b", data, "--from_resume", "1"), capsys)
    assert code == 0, out[-2000:] + err[-2000:]
    start = int(re.search(r"resumed from epoch \d+ step (\d+)", out).group(1))
    assert start >= 4 and start % 4 == 0 and start < total
    resumed = logged(out)
    assert sorted(resumed) == list(range(start + 1, total + 1))
    assert resumed == {s: full[s] for s in resumed}
    # another --tag_weight changes the loss: its resume file is refused, in one line
    code, _, err = _inproc(_resume_argv(tmp_path / "b", data, "--from_resume", "1", "--tag_weight", "3"), capsys)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "--tag_weight 10.0 (now 3.0)" in errors[0] and "Traceback" not in err


def test_torchrun_two_processes(tmp_path):
    data = _r1_data(tmp_path / "r1.jsonl", n=9)
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         os.path.join(ROOT, "train_distill_reason.py"), "--device", "cpu",
         *_argv(tmp_path / "out", data, "--batch_size", "2", "--learning_rate", "1e-3", "--save_interval", "2",
                "--max_seq_len", "48", "--val_data_path", data)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stdout + r.stderr
    o = r.stdout
    assert o.count("LLM total params") == 1 and o.count("without well-formed") == 1
    # 11 samples over 2 ranks -> 6 each -> 3 batches of 2
    assert "2 process(es), 3 batches of 2 per process per epoch, 3 optimizer steps" in o
    assert sorted(logged(o)) == [1, 2, 3] and "val/loss" in o and "val/ce" in o
    st = torch.load(tmp_path / "out" / f"reason_{DIM}_resume.pth", weights_only=True)
    assert len(st["rng"]) == 2 and st["config"]["world_size"] == 2


# ----------------------------------------------------------------------------------------------
# eval_model.py --model_mode 3

def _chat(reason_run, capsys, monkeypatch, *extra):
    from model import chat_cli
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(f"{QUESTION}\n"))
    assert chat_cli.main(["--model_mode", "3", "--mode", "1", "--out_dir", str(reason_run["out"]), "--dim", DIM,
                            "--n_layers", "1", "--tokenizer_path", tokenizer_dir(), "--device", "cpu",
                            "--temperature", "0", "--max_new_tokens", "60", *extra]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("stream", ["0", "1"])
def test_model_mode_3_shows_thinking_apart(reason_run, capsys, monkeypatch, stream):
    from model.chat import BOT_TAG, THINK_TAG
    out = _chat(reason_run, capsys, monkeypatch, "--stream", stream)
    think_line = next(ln for ln in out.splitlines() if ln.startswith(THINK_TAG))
    assert out.split(THINK_TAG, 1)[1].startswith(THINK + "\n" + BOT_TAG + ANSWER + "\n"), out
    assert think_line == THINK_TAG + THINK.splitlines()[0]
    assert not any(t in out for t in THINK_TAGS)
    hidden = _chat(reason_run, capsys, monkeypatch, "--stream", stream, "--show_think", "0")
    assert THINK_TAG not in hidden and "Sunmar" not in hidden
    assert (BOT_TAG + ANSWER + "\n") in hidden


def test_missing_reason_weights_name_the_script(tmp_path, capsys, monkeypatch):
    from model import chat_cli
    from trainer.errors import run_main
    with pytest.raises(SystemExit) as e:
        run_main(chat_cli.main, ["--model_mode", "3", "--out_dir", str(tmp_path), "--dim", DIM, "--mode", "0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"reason_{DIM}.pth" in err and "train_distill_reason.py" in err


# ----------------------------------------------------------------------------------------------
# scripts/serve_openai_api.py: reasoning_content, read with the official openai client

def test_server_reasoning_content(reason_run):
    import asyncio
    import httpx
    from openai import AsyncOpenAI
    from model import chat_cli
    from scripts import serve_openai_api as srv
    eargs = chat_cli.get_parser().parse_args(["--model_mode", "3", "--out_dir", str(reason_run["out"]),
                                                "--dim", DIM, "--n_layers", "1", "--tokenizer_path", tokenizer_dir(),
                                                "--device", "cpu"])
    from model.loading import load_model
    net, tok = load_model(eargs)
    args = srv.get_parser().parse_args(["--model_mode", "3"])
    assert srv.serves_reasoning(args) and not srv.serves_reasoning(srv.get_parser().parse_args([]))
    assert srv.serves_reasoning(srv.get_parser().parse_args(["--weight", "reason_long"]))
    engine = srv.Engine(net, tok, "r", max_tokens=60, reasoning=True)
    app = srv.create_app(engine)

    async def go():
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        client = AsyncOpenAI(base_url="http://test/v1", api_key="x", http_client=http, max_retries=0)
        msgs = [{"role": "user", "content": QUESTION}]
        whole = await client.chat.completions.create(model="r", messages=msgs, temperature=0)
        chunks = [c async for c in await client.chat.completions.create(model="r", messages=msgs, temperature=0,
                                                                        stream=True)]
        await http.aclose()
        return whole, chunks

    whole, chunks = asyncio.run(go())
    msg = whole.choices[0].message
    assert (msg.reasoning_content, msg.content) == (THINK, ANSWER)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    content = "".join(d.content or "" for d in deltas)
    assert (reasoning, content) == (THINK, ANSWER)
    # reasoning first, then the answer: every delta carries one of them, the other null
    kinds = [("r" if getattr(d, "reasoning_content", None) else "a") for d in deltas
             if d.content or getattr(d, "reasoning_content", None)]
    assert kinds == sorted(kinds, reverse=True) and "r" in kinds and "a" in kinds
    assert chunks[-1].choices[0].finish_reason == "stop"


# ----------------------------------------------------------------------------------------------
# The demo's reasoning set (scripts/make_demo_data.py -> dataset/demo/reason*.jsonl)

def test_demo_reasoning_set(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import make_demo_data
    assert make_demo_data.main(["--out_dir", str(tmp_path)]) == 0
    demo = os.path.join(ROOT, "dataset", "demo")
    for name in ("reason.jsonl", "reason_heldout.jsonl"):
        with open(tmp_path / name, "rb") as a, open(os.path.join(demo, name), "rb") as b:
            assert a.read() == b.read(), f"dataset/demo/{name} is not what scripts/make_demo_data.py writes"
    train = [json.loads(ln)["conversations"] for ln in open(tmp_path / "reason.jsonl", encoding="utf-8")]
    held = [json.loads(ln) for ln in open(tmp_path / "reason_heldout.jsonl", encoding="utf-8")]
    # R1 answers, and adaptive thinking's direct answers: an empty think block, then an answer SFT gives
    # too (a trained 1-hop fact; no held-out question among them)
    direct = [c for c in train if c[-1]["content"].startswith(EMPTY)]
    assert len(direct) == 504 and all(is_well_formed(c[-1]["content"]) for c in train if c not in direct)
    sft_answers = {m["content"] for ln in open(os.path.join(demo, "sft.jsonl"), encoding="utf-8")
                   for m in json.loads(ln)["conversations"] if m["role"] == "assistant"}
    one_hop_held = {json.loads(ln)["question"] for ln in open(os.path.join(demo, "heldout.jsonl"), encoding="utf-8")}
    for c in direct:
        assert c[-1]["content"][len(EMPTY):] in sft_answers and c[0]["content"] not in one_hop_held
    assert {h["lang"] for h in held} == {"en", "zh"} and {h["attribute"] for h in held} == {
        "home_country", "capital_flag", "capital_animal", "capital_dish"}
    thinks = [split_reasoning(c[-1]["content"])[0] for c in train]
    questions = {c[0]["content"] for c in train}
    pretrain = open(os.path.join(demo, "pretrain.jsonl"), encoding="utf-8").read()
    for h in held:
        assert h["question"] not in questions
        assert h["think"] not in thinks  # no training sample chains these two facts
        if h["attribute"] == "home_country":  # nor states a held-out character's home at all
            assert not any(h["chain"][0] in t for t in thinks)
        for fact in h["chain"]:  # both facts are in pretraining, in this wording
            assert fact in pretrain, fact
        assert all(k in h["answer"] for k in h["keywords"]) and not any(d in h["answer"] for d in h["distractors"])


def test_train_reason_is_the_same_script_under_minimind_2510s_name(tmp_path):
    """train_reason.py: the same flags and defaults as train_distill_reason.py, and it trains the same."""
    import train_distill_reason
    from trainer.stages import reason_sft
    assert vars(reason_sft.parse_args([], "train_reason.py")) == vars(train_distill_reason.parse_args([]))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train_reason.py"), "--nope", "1"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "train_reason.py: error" in r.stderr and "Traceback" not in r.stderr
    assert "(see train_reason.py --help)" in r.stderr
