"""lm-evaluation-harness on the project's models, offline: scripts/eval_benchmarks.py, both export
folders under lm-eval's `hf` model, the bundled demo-world tasks, and validation's val/bpb.

One tiny model (64 x 2) is trained once for the module (train_pretrain.py in-process, about 20 s of
CPU): the demo world's facts as short prose about each entity, plus question-and-answer pages about
the facts that are *not* held out -- the demo corpus's recipe, in small, with the demo's batch size
and learning rate. It has to answer the held-out facts' 4-way
questions well above chance (25%) to pass, which only a model that learnt the facts from the prose
and the question form from the other facts can. Its validation (with a stand-in wandb) gives val/bpb.

Nothing reaches the network: HF_DATASETS_OFFLINE / HF_HUB_OFFLINE are set before lm-eval loads, and
the tasks read dataset/demo/lm_eval/ from disk.
"""
import contextlib
import io
import json
import math
import os
import random
import sys
import types

import pytest
import torch

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -r requirements-eval.txt)")
pytest.importorskip("accelerate", reason="accelerate is not installed (pip install -r requirements-eval.txt)")

from demo import world as md  # noqa: E402
import train_pretrain  # noqa: E402
from scripts import convert_model as cm  # noqa: E402
from scripts import eval_benchmarks as eb  # noqa: E402
from test_train_common import tokenizer_dir  # noqa: E402
from test_train_scripts import logged  # noqa: E402
from trainer.errors import run_main  # noqa: E402

DIM, LAYERS = 64, 2
SIZE = ["--dim", str(DIM), "--n_layers", str(LAYERS)]
LM_EVAL_DIR = os.path.join(ROOT, "dataset", "demo", "lm_eval")


@pytest.fixture(scope="module", autouse=True)
def offline():
    """Offline for libraries imported before this module set the variables, too."""
    import datasets
    import huggingface_hub.constants as hub
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
        mp.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
        mp.setattr(hub, "HF_HUB_OFFLINE", True, raising=False)
        torch.set_num_threads(1)
        yield


# ------------------------------------------------------------------------------ the tiny model

def world_corpus(path, bios=4, pages=2, seed=0):
    """Prose about every fact (each entity's facts in shuffled order, the reference wording) and
    question-answer pages about the facts that are not held out."""
    facts = md.build_world(random.Random(md.SEED))
    held = md.choose_heldout(random.Random(md.SEED + 1), facts)
    rng = random.Random(seed)
    by_entity = {}
    for i, f in enumerate(facts):
        by_entity.setdefault(f["entity"], []).append((i, f))
    docs = []
    for items in by_entity.values():
        for lang in md.LANGS:
            sep = " " if lang == "en" else ""
            for _ in range(bios):
                order = [f for _, f in items]
                rng.shuffle(order)
                docs.append(sep.join(md.answer(f, lang) for f in order))
            taught = [f for i, f in items if i not in held]
            for _ in range(pages):
                order = taught[:]
                rng.shuffle(order)
                docs.append("\n".join(md.ask(f, lang, rng.randrange(3)) + sep + md.answer(f, lang) for f in order))
    rng.shuffle(docs)
    with open(path, "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
    return path


class FakeWandb(types.ModuleType):
    """What Trainer uses of wandb (init -> run.log / run.finish, teardown), recording the rows."""

    def __init__(self):
        super().__init__("wandb")
        self.rows = []

    def init(self, **kw):
        rows = self.rows
        return types.SimpleNamespace(log=lambda row, step=None, commit=None: rows.append(dict(row, _step=step)),
                                     finish=lambda exit_code=0: None)

    def teardown(self):
        pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    data = world_corpus(str(d / "world.jsonl"))
    val = str(d / "val.jsonl")
    with open(os.path.join(ROOT, "dataset", "demo", "pretrain.jsonl"), encoding="utf-8") as f:
        lines = f.readlines()
    with open(val, "w", encoding="utf-8") as f:
        f.writelines(lines[:12])  # English and Chinese prose
    out = d / "out"
    wandb = FakeWandb()
    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(buf):
        mp.setitem(sys.modules, "wandb", wandb)
        train_pretrain.main(SIZE + [
            "--max_seq_len", "128", "--packed", "0", "--batch_size", "8", "--accumulation_steps", "1",
            "--epochs", "12", "--learning_rate", "3e-3", "--warmup_iters", "10", "--num_workers", "0",
            "--data_path", data, "--val_data_path", val, "--eval_interval", "100", "--log_interval", "20",
            "--tokenizer_path", tokenizer_dir(), "--out_dir", str(out), "--device", "cpu", "--use_wandb"])
    return dict(out=str(out), pth=str(out / f"pretrain_{DIM}.pth"), val=val, stdout=buf.getvalue(),
                wandb=wandb.rows)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tokenizer_dir())


@pytest.fixture(scope="module")
def net(trained):
    from model import MiniMindConfig, MiniMindForCausalLM
    from trainer.checkpoint import load_weights
    m = MiniMindForCausalLM(MiniMindConfig(hidden_size=DIM, num_hidden_layers=LAYERS))
    load_weights(m, trained["pth"])
    return m.float().eval()


def loglik(net, context_ids, cont_ids):
    """sum log p(cont | context) with our own model, no harness involved."""
    ids = torch.tensor([context_ids + cont_ids])
    with torch.no_grad():
        logp = torch.log_softmax(net(ids).logits[0].float(), dim=-1)
    n = len(context_ids)
    return sum(logp[n - 1 + i, t].item() for i, t in enumerate(cont_ids))


# ------------------------------------------------------------------------------ val/bpb

def test_val_bpb_equals_hand_computation_and_reaches_stdout_and_wandb(trained, net, tokenizer):
    from dataset.lm_dataset import PretrainDataset, pad_collate
    from trainer.stages import LMStage
    printed = logged(trained["stdout"], "val/bpb")
    assert printed and logged(trained["stdout"], "val/loss").keys() == printed.keys(), trained["stdout"][-2000:]
    rows = [r for r in trained["wandb"] if "val/bpb" in r]
    assert [r["_step"] for r in rows] == sorted(printed)
    assert rows[-1]["val/bpb"] == pytest.approx(printed[max(printed)], abs=1e-4)
    assert {"val/loss", "val/ppl"} <= set(rows[-1])

    # the stage's validation sums on the trained weights ...
    stage = LMStage("pretrain", "Pretrain")
    stage.prepare(types.SimpleNamespace(tokenizer=tokenizer), net, None, [], None, None)
    ds = PretrainDataset(trained["val"], tokenizer, max_length=128)
    batch = pad_collate(tokenizer.pad_token_id)([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        sums = stage.eval_sums(net, batch)
    got = stage.eval_metrics({k: float(v) for k, v in sums.items()})["val/bpb"]

    # ... against a hand computation: every target's cross-entropy from the full logits, special
    # tokens (<|im_end|>) left out, over the UTF-8 bytes of the documents' text
    with open(trained["val"], encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    special = set(tokenizer.all_special_ids)
    nats, nbytes = 0.0, 0
    for (x, y, mask), text in zip((ds[i] for i in range(len(ds))), texts):
        with torch.no_grad():
            logp = torch.log_softmax(net(x[None]).logits[0].double(), dim=-1)
        targets = [(t, int(y[t])) for t in range(len(y)) if mask[t] and int(y[t]) not in special]
        nats -= sum(logp[t, tok].item() for t, tok in targets)
        decoded = tokenizer.decode([tok for _, tok in targets])
        assert decoded == text  # the byte table counts exactly the text the targets spell
        nbytes += len(text.encode("utf-8"))
    want = nats / math.log(2) / nbytes
    assert got == pytest.approx(want, rel=1e-5)
    # the last logged value came from the same weights in float32 (the file holds float16)
    assert printed[max(printed)] == pytest.approx(want, rel=2e-2)
    assert 0 < want < 8


def test_token_byte_table_matches_decoding(tokenizer):
    from trainer.bpb import token_byte_lengths
    table = token_byte_lengths(tokenizer)
    assert table.shape == (len(tokenizer),)
    assert all(table[i] == 0 for i in tokenizer.all_special_ids)
    with open(os.path.join(ROOT, "dataset", "demo", "sft.jsonl"), encoding="utf-8") as f:
        texts = [m["content"] for line in list(f)[:40] for m in json.loads(line)["conversations"]]
    for text in texts:  # Chinese characters split over several byte-level tokens sum up exactly
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert int(table[ids].sum()) == len(text.encode("utf-8")) == len(tokenizer.decode(ids).encode("utf-8"))


# ------------------------------------------------------------------------------ the bundled task

def _jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_demo_world_files_hold_the_held_out_facts_as_test_split():
    test = _jsonl(os.path.join(LM_EVAL_DIR, "demo_world_test.jsonl"))
    train = _jsonl(os.path.join(LM_EVAL_DIR, "demo_world_train.jsonl"))
    heldout = _jsonl(os.path.join(ROOT, "dataset", "demo", "heldout.jsonl"))
    key = lambda r: (r["lang"], r["entity"], r["attribute"])
    assert sorted(map(key, test)) == sorted(map(key, heldout))
    assert not set(map(key, train)) & set(map(key, test))
    assert {r["lang"] for r in test} == {"en", "zh"} and len(train) + len(test) == 2 * 112
    answers = {key(r): r["answer"] for r in heldout}
    for r in test + train:
        assert len(set(r["choices"])) == 4 and 0 <= r["answer"] < 4
    for r in test:
        assert r["choices"][r["answer"]] == answers[key(r)]
    positions = [r["answer"] for r in test]
    assert len(set(positions)) == 4  # the right answer is not always in the same place


# ------------------------------------------------------------------------------ the wrapper

def wrapper_args(trained, *extra):
    return eb.get_parser().parse_args(SIZE + ["--out_dir", trained["out"], "--model_mode", "0",
                                              "--device", "cpu", "--tokenizer_path", tokenizer_dir(), *extra])


def test_wrapper_scores_held_out_facts_above_chance_and_equals_direct_loglikelihoods(
        trained, net, tokenizer, tmp_path, capsys):
    args = wrapper_args(trained, "--tasks", "demo_world", "--batch_size", "16")
    results, summary = eb.evaluate(args, log_samples=True)
    out = tmp_path / "res.json"
    eb.report(summary, str(out))
    printed = capsys.readouterr().out
    assert "lm-eval hf (Llama, float32, cpu)" in printed  # a dense .pth goes through the Llama export
    head = printed.splitlines()[[i for i, l in enumerate(printed.splitlines()) if l.startswith("task ")][0]]
    assert head.split() == ["task", "metric", "value", "stderr", "chance"]
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["tasks"] == ["demo_world"] and saved["chance"]["demo_world"] == pytest.approx(0.25)
    rows = {(r["task"], r["metric"]): r for r in saved["rows"]}

    n_right, n = 0, 0
    for task, delim in (("demo_world_en", " "), ("demo_world_zh", "")):
        samples = results["samples"][task]
        assert len(samples) == 28
        right = 0
        for s in samples:
            doc = s["doc"]
            ctx = tokenizer.encode(doc["question"])
            ours = [loglik(net, ctx, tokenizer.encode(delim + c)) for c in doc["choices"]]
            theirs = [r[0] for r in s["filtered_resps"]]
            assert ours == pytest.approx(theirs, abs=1e-4)
            right += max(range(4), key=ours.__getitem__) == doc["answer"]
        assert rows[(task, "acc")]["value"] == pytest.approx(right / len(samples), abs=1e-4)
        n_right, n = n_right + right, n + len(samples)
    acc = rows[("demo_world", "acc")]["value"]
    print(f"demo_world held-out accuracy of the short-run model: {acc:.3f} ({n_right}/{n}; chance 0.25)")
    assert acc == pytest.approx(n_right / n, abs=1e-4)
    # 0.61 here (34 of 56); 25 or more right by chance has a probability of about 0.001
    assert acc >= 0.45, f"held-out accuracy {acc:.3f}: not well above chance (0.25)"


def test_wrapper_missing_dataset_is_one_line_naming_the_task(trained, tmp_path, capsys):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "needs_download.yaml").write_text(
        "task: needs_download\ndataset_path: minimind-tests/not-downloaded\noutput_type: multiple_choice\n"
        "test_split: test\ndoc_to_text: '{{q}}'\ndoc_to_choice: ['a', 'b']\ndoc_to_target: 0\n"
        "metric_list:\n  - metric: acc\n", encoding="utf-8")
    argv = SIZE + ["--out_dir", trained["out"], "--model_mode", "0", "--device", "cpu", "--include_path",
                   str(tasks), "--tasks", "needs_download", "--output", str(tmp_path / "r.json")]
    with pytest.raises(SystemExit) as e:
        run_main(eb.main, argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert e.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for words in ("--tasks needs_download", "minimind-tests/not-downloaded", "HF_DATASETS_OFFLINE"):
        assert words in lines[0], lines[0]
    assert not (tmp_path / "r.json").exists()
    # an unknown name: the same kind of line (here against the bundled tasks alone; the wrapper also
    # looks through lm-eval's own ~15k task configs, which takes tens of seconds to index)
    from lm_eval.tasks import TaskManager
    from trainer.errors import UserError
    with pytest.raises(UserError, match=r"--tasks no_such_task: lm-eval .* has no task or group of that name"):
        eb.resolve_tasks(TaskManager(include_path=LM_EVAL_DIR, include_defaults=False), ["no_such_task"])
    assert eb.resolve_tasks(TaskManager(include_path=LM_EVAL_DIR, include_defaults=False), ["demo_world_*"]) == [
        "demo_world_en", "demo_world_gen", "demo_world_ppl", "demo_world_zh"]


# ------------------------------------------------------------------------------ both exports

CHAT_PREFIX = "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\n"


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory):
    d = tmp_path_factory.mktemp("exports")
    for to in ("minimind", "llama"):
        cm.main(["--to", to, *SIZE, "--out_dir", trained["out"], "--model_mode", "0", "--outtype", "f32",
                 "--tokenizer_path", tokenizer_dir(), "--output", str(d / to)])
    return {"minimind": str(d / "minimind"), "llama": str(d / "llama")}


def run_tasks(lm, chat, limit=6):
    from lm_eval.tasks import TaskManager
    tm = TaskManager(include_path=LM_EVAL_DIR, include_defaults=False)
    res = lm_eval.simple_evaluate(model=lm, tasks=["demo_world_en", "demo_world_zh", "demo_world_ppl",
                                                   "demo_world_gen"],
                                  limit=limit, apply_chat_template=chat, task_manager=tm, log_samples=True)
    return {t: s for t, s in res["samples"].items()}


def test_both_export_folders_under_the_hf_model(exports, net, tokenizer):
    """loglikelihood (MC), loglikelihood_rolling and generate_until, without and with the chat
    template, for the MiniMind folder (trust_remote_code) and the Llama folder: lm-eval's HFLM
    takes EOS, pad, BOS and the chat template from the folder, both folders give the same numbers,
    and those are our model's."""
    from lm_eval.models.huggingface import HFLM
    got = {}
    for name, folder in exports.items():
        lm = HFLM(pretrained=folder, trust_remote_code=name == "minimind", device="cpu", dtype="float32",
                  batch_size=8)
        assert type(lm.model).__name__ == ("MiniMindForCausalLM" if name == "minimind" else "LlamaForCausalLM")
        assert lm.eot_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
        assert lm.tokenizer.pad_token == "<|endoftext|>" and lm.tokenizer.pad_token_id == tokenizer.pad_token_id
        assert lm.prefix_token_id == tokenizer.convert_tokens_to_ids("<|im_start|>")  # documents start so
        assert lm.tokenizer.chat_template == tokenizer.chat_template
        for chat in (False, True):
            got[name, chat] = run_tasks(lm, chat)

    for chat in (False, True):
        a, b = got["minimind", chat], got["llama", chat]
        for task in a:
            for sa, sb in zip(a[task], b[task]):
                if task == "demo_world_gen":
                    assert sa["filtered_resps"] == sb["filtered_resps"]
                else:
                    ra = [r[0] if isinstance(r, (list, tuple)) else r for r in sa["filtered_resps"]]
                    rb = [r[0] if isinstance(r, (list, tuple)) else r for r in sb["filtered_resps"]]
                    assert ra == pytest.approx(rb, abs=1e-4)

    bos = tokenizer.convert_tokens_to_ids("<|im_start|>")
    for chat in (False, True):
        s = got["llama", chat]
        # multiple choice: the chat template wraps the question, the answer follows the assistant tag
        for sample in s["demo_world_zh"]:
            doc, args = sample["doc"], sample["arguments"]
            ctx_text = args[0][0]  # (context, continuation) per choice
            if chat:
                assert ctx_text == f"{CHAT_PREFIX}{doc['question']}<|im_end|>\n<|im_start|>assistant\n"
            else:
                assert ctx_text == doc["question"]
            # lm-eval moves the context's trailing whitespace (the template's "\n") into the continuation
            ws = ctx_text[len(ctx_text.rstrip()):]
            ctx = tokenizer.encode(ctx_text.rstrip())
            ours = [loglik(net, ctx, tokenizer.encode(ws + c)) for c in doc["choices"]]
            assert ours == pytest.approx([r[0] for r in sample["filtered_resps"]], abs=1e-4)
        # rolling: every token of the text from <|im_start|>, chat template or not
        for sample in s["demo_world_ppl"]:
            text = sample["doc"]["choices"][sample["doc"]["answer"]]
            ours = loglik(net, [bos], tokenizer.encode(text))
            assert ours == pytest.approx(sample["filtered_resps"][0], abs=1e-4)
        # generation: greedy, stopped at "\n" or at EOS (never part of the answer)
        for sample in s["demo_world_gen"]:
            prompt = sample["arguments"][0][0]  # (context, generation kwargs)
            assert prompt.startswith(CHAT_PREFIX) == chat
            answer = sample["filtered_resps"][0]
            assert "<|im_end|>" not in answer and "<|im_start|>" not in answer and "\n" not in answer
            ids = torch.tensor([tokenizer.encode(prompt)])
            with torch.no_grad():
                gen = net.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=48, do_sample=False,
                                   eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            ours = tokenizer.decode(gen[0, ids.shape[1]:], skip_special_tokens=True).split("\n")[0]
            assert answer == ours
    # the rolling log-likelihood ignores the chat template
    assert [x["filtered_resps"] for x in got["llama", True]["demo_world_ppl"]] == \
        [x["filtered_resps"] for x in got["llama", False]["demo_world_ppl"]]


def test_a_minimind3_pth_goes_through_the_qwen3_export(tokenizer, tmp_path, capsys):
    """--model_family minimind3: the .pth is exported as a plain Qwen3 folder (no remote code) and lm-eval's
    log-likelihoods are our model's own."""
    from model import MiniMindConfig, MiniMindForCausalLM
    torch.manual_seed(0)
    m3 = MiniMindForCausalLM(MiniMindConfig(hidden_size=DIM, num_hidden_layers=1, model_family="minimind3")).eval()
    out = tmp_path / "out"
    out.mkdir()
    torch.save({k: v.half() for k, v in m3.state_dict().items()}, out / f"pretrain_{DIM}.pth")
    m3 = m3.half().float()  # the weights as the checkpoint holds them
    args = eb.get_parser().parse_args(["--model_family", "minimind3", "--dim", str(DIM), "--n_layers", "1",
                                       "--out_dir", str(out), "--model_mode", "0", "--device", "cpu",
                                       "--tokenizer_path", tokenizer_dir(), "--tasks", "demo_world_en", "--limit", "3"])
    results, summary = eb.evaluate(args, log_samples=True)
    assert "-> lm-eval hf (Qwen3, float32, cpu)" in capsys.readouterr().out
    assert summary["hf_folder_format"] == "qwen3"
    samples = results["samples"]["demo_world_en"]
    assert len(samples) == 3
    for s in samples:
        ctx = tokenizer.encode(s["doc"]["question"])
        ours = [loglik(m3, ctx, tokenizer.encode(" " + c)) for c in s["doc"]["choices"]]
        assert ours == pytest.approx([r[0] for r in s["filtered_resps"]], abs=1e-4)
