"""train_reward.py: the Bradley-Terry loss (TRL's margin and centering), the score at the last token, learning
on held-out pairs, exact resume after SIGKILL, the transformers / TRL export, and GRPO's reward_model reward."""
import argparse
import contextlib
import io
import json
import math
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_reward  # noqa: E402
from test_train_common import sigkill_after_first_save, tokenizer_dir, write_data  # noqa: E402
from test_train_scripts import logged, tiny, user_error  # noqa: E402

from model import MiniMindConfig, MiniMindForCausalLM, MiniMindForSequenceClassification  # noqa: E402
from model.reward import load_reward_pth, load_start, reward_config  # noqa: E402
from trainer.checkpoint import load_weights, save_weights  # noqa: E402
from trainer.errors import UserError  # noqa: E402
from trainer.losses import reward_loss  # noqa: E402

SIZE = argparse.Namespace(dim=32, n_layers=1, use_moe=False)


def reward_net(seed=0, **kw):
    torch.manual_seed(seed)
    return MiniMindForSequenceClassification(reward_config(SIZE, initializer_range=0.3, **kw)).eval()


def pairs(path, tokenizer, max_length=80):
    """One batch of every pair in `path`, as train_reward.py reads them."""
    from dataset.lm_dataset import RewardDataset, reward_collate
    ds = RewardDataset(path, tokenizer, max_length=max_length, verbose=False)
    return reward_collate(0)([ds[i] for i in range(len(ds))])


def held_out_accuracy(net, batch):
    from trainer.stages.reward import pair_rewards
    with torch.no_grad():
        chosen, rejected, _ = pair_rewards(net.eval(), batch)
    return (chosen > rejected).float().mean().item()


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tokenizer_dir())


# ----------------------------------------------------------------------------------------------
# The loss and the score

def test_loss_is_trls_formula_with_margin_and_centering():
    rc, rr = torch.tensor([1.5, -0.2, 0.3, 2.0]), torch.tensor([0.5, 0.4, 0.3, -1.0])
    margin, coef = torch.tensor([0.0, 0.5, 1.0, 0.25]), 0.01
    losses, m = reward_loss(rc, rr, margin, coef)
    by_hand = [-math.log(1 / (1 + math.exp(-(c - r - g))))
               for c, r, g in zip(rc.tolist(), rr.tolist(), margin.tolist())]
    trl = sum(by_hand) / 4 + coef * sum((c + r) ** 2 for c, r in zip(rc.tolist(), rr.tolist())) / 4
    assert losses.mean().item() == pytest.approx(trl, rel=1e-6)
    plain, _ = reward_loss(rc, rr)
    assert plain.mean().item() == pytest.approx(sum(math.log1p(math.exp(-(c - r))) for c, r in
                                                    zip(rc.tolist(), rr.tolist())) / 4, rel=1e-6)
    assert m["accuracy"].tolist() == [1.0, 0.0, 0.0, 1.0]  # a tie is not a win (TRL's >)
    assert m["margin"].tolist() == pytest.approx([1.0, -0.6, 0.0, 3.0])
    assert m["rewards/chosen"].tolist() == pytest.approx(rc.tolist())
    assert m["rewards/rejected"].tolist() == pytest.approx(rr.tolist())
    assert m["min_reward"].item() == -1.0 and m["max_reward"].item() == 2.0
    assert m["mean_reward"].mean().item() == pytest.approx(torch.cat([rc, rr]).mean().item())


def test_stage_loss_is_the_formula_on_the_models_scores(tmp_path, tok):
    from trainer.stages.reward import RewardStage
    path = tmp_path / "p.jsonl"
    user = {"role": "user", "content": "What colour is the sky?"}
    with open(path, "w", encoding="utf-8") as f:
        for good, bad, margin in [("Blue.", "Green, obviously, as everyone knows.", 0.5),
                                  ("It is blue today.", "No.", None), ("天空是蓝色的。", "不知道。", 2)]:
            line = {"chosen": [user, {"role": "assistant", "content": good}],
                    "rejected": [user, {"role": "assistant", "content": bad}]}
            if margin is not None:
                line["margin"] = margin
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    batch = pairs(str(path), tok, max_length=64)
    assert batch["margin"].tolist() == [0.5, 0.0, 2.0]
    net = reward_net()
    loss, metrics = RewardStage(center_rewards_coefficient=0.1).loss(net, batch)
    with torch.no_grad():
        r = torch.stack([net(batch["input_ids"][i:i + 1]).logits[0, 0] for i in range(6)])  # one at a time
    rc, rr = r[:3], r[3:]
    want = (-torch.nn.functional.logsigmoid(rc - rr - batch["margin"])).mean() + 0.1 * ((rc + rr) ** 2).mean()
    assert loss.item() == pytest.approx(want.item(), abs=1e-5)
    assert metrics["rewards/chosen"].tolist() == pytest.approx(rc.tolist(), abs=1e-5)


def test_score_is_read_at_the_last_real_token(tok):
    net = reward_net()
    ids = tok(tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                                      tokenize=False), add_special_tokens=False, return_tensors="pt").input_ids
    assert ids[0, -1].item() == tok("\n", add_special_tokens=False).input_ids[0]  # the template's tail
    alone = net(ids).logits[0, 0]
    with torch.no_grad():
        hidden, _ = net.model(ids)
        assert alone.item() == pytest.approx(net.score(hidden[0, -1]).item(), abs=1e-6)
    long = torch.randint(3, 6000, (1, ids.shape[1] + 7))
    right = torch.cat([torch.cat([ids, torch.zeros(1, 7, dtype=torch.long)], 1), long])  # right-padded with 0
    assert net(right).logits[0, 0].item() == pytest.approx(alone.item(), abs=1e-5)
    left = torch.cat([torch.zeros(1, 7, dtype=torch.long), ids], 1)  # left padding needs the mask
    mask = (torch.arange(left.shape[1]) >= 7).long()[None]
    assert net(left, attention_mask=mask).logits[0, 0].item() == pytest.approx(alone.item(), abs=1e-5)
    assert net(ids[:, :-1]).logits[0, 0].item() != pytest.approx(alone.item(), abs=1e-4)  # not just any token


def test_margin_must_be_a_number(tmp_path, tok):
    from dataset.sources import DataError
    path = tmp_path / "bad.jsonl"
    good = {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(dict(good, margin="big")) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r'bad.jsonl:2: expected "margin" to be a number.*got big'):
        pairs(str(path), tok)


# ----------------------------------------------------------------------------------------------
# Training: learning, logging, resume

@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """An uninterrupted run from a chat model's trunk: (its argv with out_dir as OUT, its stdout, paths)."""
    d = tmp_path_factory.mktemp("reward")
    train = write_data(str(d / "train"), n_pretrain=1, n_sft=1, n_dpo=48, seed=1)["dpo"]
    val = write_data(str(d / "val"), n_pretrain=1, n_sft=1, n_dpo=24, seed=2)["dpo"]
    torch.manual_seed(0)
    lm = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1))
    save_weights(lm, str(d / "lm.pth"), dtype=torch.float32)
    argv = tiny("OUT", "--data_path", train, "--val_data_path", val, "--from_weight", str(d / "lm.pth"),
                "--epochs", "2", "--learning_rate", "1e-3", "--save_interval", "3", "--eval_interval", "3",
                "--center_rewards_coefficient", "0.01", "--max_seq_len", "80")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train_reward.main([str(d / "a") if x == "OUT" else x for x in argv])
    return dict(argv=argv, out=out.getvalue(), dir=d, train=train, val=val, lm=str(d / "lm.pth"))


def test_learns_held_out_pairs_from_a_chat_models_trunk(run_a, tok):
    o, d = run_a["out"], run_a["dir"]
    assert f"loaded the trunk of {run_a['lm']}; the score head (score.weight, 32 -> 1) is new" in o
    # the starting model, as train_reward.py builds it: the trunk, a fresh head drawn from --seed
    torch.manual_seed(1337)
    start = MiniMindForSequenceClassification(reward_config(SIZE))
    assert load_start(start, run_a["lm"]) == "trunk"
    lm = torch.load(run_a["lm"], weights_only=True)
    assert torch.equal(start.model.embed_tokens.weight, lm["model.embed_tokens.weight"])
    val = pairs(run_a["val"], tok)
    before = held_out_accuracy(start, val)
    after = logged(o, "val/accuracy")
    assert sorted(after) == [3, 6, 9, 12]
    assert after[12] >= 0.95 and after[12] - before >= 0.2, (before, after)
    val_loss = logged(o, "val/loss")
    assert val_loss[3] < math.log(2) and val_loss[12] < val_loss[3] - 0.15, val_loss
    trained = load_reward_pth(str(d / "a" / "reward_32.pth"))  # float16 file, size from its shapes
    assert held_out_accuracy(trained, val) == pytest.approx(after[12], abs=1 / 24 + 1e-6)
    for key in ("accuracy", "margin", "rewards/chosen", "rewards/rejected", "mean_reward", "min_reward",
                "max_reward"):
        assert len(logged(o, key)) == 12, key
    assert logged(o, "margin")[12] > 0.3


def test_sigkill_then_resume_is_exact(run_a, capsys):
    argv, d = run_a["argv"], run_a["dir"]
    b = [str(d / "b") if x == "OUT" else x for x in argv]
    sigkill_after_first_save([sys.executable, "-u", os.path.join(ROOT, "train_reward.py"), *b], cwd=ROOT,
                             env=dict(os.environ, PYTHONPATH=ROOT))
    assert (d / "b" / "reward_32_resume.pth").exists()
    train_reward.main(b + ["--from_resume", "1"])
    o = capsys.readouterr().out
    assert "resumed from epoch 1 step 3" in o
    for key in ("loss", "accuracy", "margin", "val/loss"):
        later, full = logged(o, key), logged(run_a["out"], key)
        assert later and later == {s: v for s, v in full.items() if s > 3}, key
    wa = torch.load(d / "a" / "reward_32.pth", weights_only=True)
    wb = torch.load(d / "b" / "reward_32.pth", weights_only=True)
    assert sorted(wa) == sorted(wb) and "score.weight" in wa and "lm_head.weight" not in wa
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# ----------------------------------------------------------------------------------------------
# Export and use

@pytest.fixture(scope="module")
def exported(run_a):
    from scripts import convert_model
    d = run_a["dir"]
    folders = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for to in ("llama", "minimind"):
            folders[to] = str(d / f"reward_{to}")
            convert_model.main(["--to", to, "--weight", str(d / "a" / "reward_32.pth"), "--dim", "32",
                                "--n_layers", "1", "--outtype", "f32", "--output", folders[to],
                                "--tokenizer_path", tokenizer_dir()])
    return folders


def conversations(path, n=3):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")][:n]
    return [row[side] for row in rows for side in ("chosen", "rejected")]


def test_export_scores_like_ours_in_transformers_and_trls_convention(run_a, exported):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, LlamaForSequenceClassification
    from trl.data_utils import apply_chat_template
    ours = load_reward_pth(str(run_a["dir"] / "a" / "reward_32.pth"))
    with open(os.path.join(exported["llama"], "config.json")) as f:
        cfg = json.load(f)
    assert cfg["architectures"] == ["LlamaForSequenceClassification"] and len(cfg["id2label"]) == 1
    assert cfg["pad_token_id"] == 0
    # TRL's GRPOTrainer with reward_funcs=<folder>: from_pretrained(num_labels=1), the folder's tokenizer, the
    # chat template's whole rendering, right padding, logits[:, 0]
    tokenizer = AutoTokenizer.from_pretrained(exported["llama"])
    texts = [apply_chat_template({"messages": c}, tokenizer)["text"] for c in conversations(run_a["val"])]
    enc = tokenizer(text=texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False)
    assert (enc.input_ids == 0).any()  # the batch is padded
    with torch.no_grad():
        want = ours(enc.input_ids).logits[:, 0]
        llama = AutoModelForSequenceClassification.from_pretrained(exported["llama"], num_labels=1).eval()
        assert isinstance(llama, LlamaForSequenceClassification)
        torch.testing.assert_close(llama(**enc).logits[:, 0], want, atol=1e-5, rtol=1e-4)
        mm = AutoModelForSequenceClassification.from_pretrained(exported["minimind"], trust_remote_code=True).eval()
        torch.testing.assert_close(mm(**enc).logits[:, 0], want, atol=1e-5, rtol=1e-4)
    assert (want[0::2] > want[1::2]).all()  # it prefers the chosen answers


def test_back_to_pth_and_one_line_refusals(run_a, exported, tmp_path, capsys):
    from scripts import convert_model
    convert_model.main(["--to", "pth", "--model_path", exported["llama"], "--output", str(tmp_path / "back.pth"),
                        "--outtype", "f32"])
    src = torch.load(run_a["dir"] / "a" / "reward_32.pth", weights_only=True)
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert sorted(back) == sorted(src) and all(torch.equal(back[k], src[k].float()) for k in src)
    capsys.readouterr()
    line = user_error(convert_model, ["--to", "gguf", "--weight", str(run_a["dir"] / "a" / "reward_32.pth"),
                                      "--dim", "32", "--n_layers", "1", "--output", str(tmp_path / "r.gguf")], capsys)
    assert "is a reward model; export it with --to llama" in line
    # a reward model is no chat model, and a chat model no reward model: one line each
    with pytest.raises(UserError, match=r"is a reward model \(train_reward.py\): it scores conversations"):
        load_weights(MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1)),
                     str(run_a["dir"] / "a" / "reward_32.pth"))
    with pytest.raises(UserError, match=r"not a reward model: it has no score head \(score.weight\), it holds a "
                                        r"language model \(--dim 32 --n_layers 1\)"):
        load_reward_pth(run_a["lm"])


def test_grpo_reward_model_takes_the_pth_and_the_folder(run_a, exported):
    from trainer.rl.rewards import RewardModel, prompt_messages, resolve_funcs
    from_pth = RewardModel(str(run_a["dir"] / "a" / "reward_32.pth"), "cpu")
    from_dir = RewardModel(exported["llama"], "cpu")
    from_mm = RewardModel(exported["minimind"], "cpu")
    (name, fn), = resolve_funcs(["reward_model"], from_pth)
    assert name == "reward_model"
    convs = conversations(run_a["val"])
    prompts = [f"<|im_start|>user\n{c[0]['content']}<|im_end|>\n<|im_start|>assistant\n" for c in convs]
    answers = [c[-1]["content"] for c in convs]
    assert prompt_messages(prompts[0]) == convs[0][:1]
    scores = fn(prompts=prompts, completions=answers, completion_ids=None)
    assert scores == pytest.approx(from_dir(prompts=prompts, completions=answers), abs=1e-4)
    assert scores == pytest.approx(from_mm(prompts=prompts, completions=answers), abs=1e-4)
    # the score GRPO gets is the one training gave the same conversation
    ours = load_reward_pth(str(run_a["dir"] / "a" / "reward_32.pth"))
    batch = pairs(run_a["val"], from_pth.tokenizer)
    with torch.no_grad():
        trained = ours(batch["input_ids"]).logits[:, 0]
    n = len(batch["index"])
    assert scores[0] == pytest.approx(trained[0].item(), abs=1e-4)
    assert scores[1] == pytest.approx(trained[n].item(), abs=1e-4)
    assert all(s > t for s, t in zip(scores[0::2], scores[1::2]))
    with pytest.raises(UserError, match=r"^--reward_model_path .*lm.pth: not a reward model"):
        RewardModel(run_a["lm"], "cpu")
    with pytest.raises(UserError, match=r"no such folder or \.pth file"):
        RewardModel(str(run_a["dir"] / "nothing.pth"), "cpu")


def test_user_errors_are_one_line(tmp_path, run_a, capsys):
    """A missing starting checkpoint, pairs that cannot be read whole, the wrong size: one line, exit 2."""
    line = user_error(train_reward, tiny(tmp_path / "empty", "--data_path", run_a["train"]), capsys)
    assert "full_sft_32.pth" in line and "train_full_sft.py" in line
    long = tmp_path / "long.jsonl"  # the answers start within --max_seq_len 48 but end past it
    user = {"role": "user", "content": "q"}
    long.write_text(json.dumps({"chosen": [user, {"role": "assistant", "content": "yes " * 60}],
                                "rejected": [user, {"role": "assistant", "content": "no " * 60}]}) + "\n")
    from dataset.lm_dataset import DPODataset
    DPODataset(str(long), tokenizer_dir(), max_length=48, verbose=False)  # its cache built: one stderr line
    capsys.readouterr()
    line = user_error(train_reward, tiny(tmp_path / "o", "--data_path", str(long), "--from_weight", run_a["lm"]),
                      capsys)
    assert "long.jsonl: expected pairs whose conversations fit max_length=48 tokens whole" in line
    assert "raise --max_seq_len" in line
    line = user_error(train_reward, tiny(tmp_path / "o", "--data_path", run_a["train"], "--from_weight",
                                         run_a["lm"], "--dim", "64"), capsys)
    assert "--dim 32 --n_layers 1" in line and "--dim 64" in line


def test_torchrun_two_ranks(run_a, tmp_path):
    """2 x gloo: the pairs split across ranks, one log, validation summed over both shards."""
    import subprocess
    argv = [str(tmp_path / "out") if x == "OUT" else x for x in run_a["argv"]]
    argv[argv.index("--epochs") + 1] = "1"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        os.path.join(ROOT, "train_reward.py"), *argv, "--device", "cpu", "--batch_size", "4"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("LLM total params") == 1 and "2 process(es)" in r.stdout
    assert "6 batches of 4 per process per epoch, 6 optimizer steps" in r.stdout  # 48 pairs / 2 ranks / 4
    assert sorted(logged(r.stdout, "accuracy")) == list(range(1, 7))
    assert sorted(logged(r.stdout, "val/accuracy")) == [3, 6]
    resume = torch.load(tmp_path / "out" / "reward_32_resume.pth", weights_only=True)
    assert len(resume["rng"]) == 2 and resume["config"]["world_size"] == 2 and resume["config"]["stage"] == "reward"
