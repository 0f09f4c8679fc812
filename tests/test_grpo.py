"""train_grpo.py: the losses against their formulas, advantages, rewards, the rollout's log-probs,
the script end to end (it learns, it resumes exactly, it runs under torchrun) and its one-line errors."""
import json
import math
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from test_train_common import assert_continues, kill_and_resume, same_weights, tokenizer_dir  # noqa: E402
from test_train_scripts import logged  # noqa: E402

from trainer.errors import UserError  # noqa: E402
from trainer.rl import rewards as R  # noqa: E402
from trainer.rl.grpo import group_advantages, policy_loss  # noqa: E402

QUESTIONS = ["What is two plus two?", "Name a colour.", "Say hello.", "What is the capital of Tarnis?",
             "Count to three.", "Which animal barks?", "你好吗？", "今天天气怎么样？"]


def write_prompts(path, n=8, gt=True):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            row = {"conversations": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)] + f" ({i})"},
                                     {"role": "assistant", "content": ""}]}
            if gt:
                row["gt"] = ["4"] if i % 2 == 0 else ["blue", "red"]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return str(path)


# likes_low: the share of a completion's tokens from the lower half of the vocabulary, a dense reward a
# from-scratch model can learn in a few steps
REWARD_FILE = textwrap.dedent('''
    import os
    def likes_low(prompts, completions, completion_ids, **fields):
        out = os.environ.get("GRPO_TEST_SEEN")
        if out:
            with open(out + "." + os.environ.get("RANK", "0"), "a", encoding="utf-8") as f:
                for p in prompts:
                    f.write(p.replace("\\n", " ") + "\\n")
        return [sum(t < 3200 for t in ids) / max(len(ids), 1) for ids in completion_ids]
    def raises(prompts, completions, completion_ids, **fields):
        raise ValueError("boom")
    def short(prompts, completions, completion_ids, **fields):
        return [1.0]
    def nonfinite(prompts, completions, completion_ids, **fields):
        return [float("nan")] * len(completions)
''')


@pytest.fixture
def reward_file(tmp_path):
    p = tmp_path / "my_rewards.py"
    p.write_text(REWARD_FILE)
    return str(p)


def cmd(out, data, *extra):
    return ["--dim", "32", "--n_layers", "1", "--device", "cpu", "--from_weight", "none", "--num_workers", "0",
            "--tokenizer_path", tokenizer_dir(), "--data_path", data, "--out_dir", str(out),
            "--max_gen_len", "8", "--num_generations", "4", "--batch_size", "2", "--log_interval", "1",
            *extra]


def run_script(argv, env=None, timeout=600):
    return subprocess.run([sys.executable, "-u", os.path.join(ROOT, "train_grpo.py"), *argv], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})), timeout=timeout)


# ---------------------------------------------------------------------------------------------- losses

def hand_batch():
    g = torch.Generator().manual_seed(0)
    N, C = 4, 5
    logps = -torch.rand(N, C, generator=g, dtype=torch.float64) * 3
    old = logps + (torch.rand(N, C, generator=g, dtype=torch.float64) - 0.5) * 0.8  # ratios from ~0.67 to ~1.5
    ref = logps + (torch.rand(N, C, generator=g, dtype=torch.float64) - 0.5)
    adv = torch.tensor([1.5, -0.5, 0.0, -1.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.float64)
    return logps, old, ref, adv, mask


def direct(logps, old, ref, adv, mask, loss_type, eps, eps_high, beta, max_len, normalizer):
    """The formulas, written out token by token."""
    N, C = logps.shape
    per = [[0.0] * C for _ in range(N)]
    for i in range(N):
        for t in range(C):
            r = math.exp(logps[i, t] - old[i, t])
            A = float(adv[i])
            if loss_type == "cispo":
                w = min(r, eps_high)
                l_t = -w * A * float(logps[i, t])
            else:
                l_t = -min(r * A, min(max(r, 1 - eps), 1 + eps_high) * A)
            d = float(ref[i, t] - logps[i, t])
            l_t += beta * (math.exp(d) - d - 1)
            per[i][t] = l_t
    if loss_type == "grpo":
        return sum(sum(per[i][t] * mask[i, t] for t in range(C)) / max(float(mask[i].sum()), 1) for i in range(N)) / N
    total = sum(per[i][t] * float(mask[i, t]) for i in range(N) for t in range(C))
    return total / (N * max_len) if loss_type == "dr_grpo" else total / normalizer


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo", "cispo"])
def test_loss_matches_the_formulas(loss_type):
    logps, old, ref, adv, mask = hand_batch()
    eps, eps_high = 0.2, (5.0 if loss_type == "cispo" else 0.28)
    loss, stats = policy_loss(logps, old, ref, adv, mask, loss_type, eps, eps_high, beta=0.05,
                              max_completion_length=7, normalizer=37.0)
    want = direct(logps, old, ref, adv, mask, loss_type, eps, eps_high, 0.05, 7, 37.0)
    assert abs(float(loss) - want) < 1e-12, (float(loss), want)
    if loss_type != "cispo":  # the clip acted on some tokens, and the statistics count exactly those
        r = torch.exp(logps - old)
        low = ((r < 1 - eps) & (adv[:, None] < 0))[mask.bool()]
        assert stats["clip_ratio/low_mean"].sum() == low.sum() and 0 < low.sum()
    # the gradient flows through logps only (cispo's weight is detached)
    lp = logps.clone().requires_grad_(True)
    policy_loss(lp, old, ref, adv, mask, loss_type, eps, eps_high, 0.05, 7, 37.0)[0].backward()
    assert torch.all(lp.grad[~mask.bool()] == 0) and lp.grad[mask.bool()].abs().sum() > 0


def test_cispo_weight_is_detached_and_capped():
    logps = torch.tensor([[-1.0, -2.0]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-3.0, -2.0]], dtype=torch.float64)  # ratio e^2 = 7.39 > 5, then 1
    adv, mask = torch.tensor([1.0], dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    loss, _ = policy_loss(logps, old, None, adv, mask, "cispo", 0.2, 5.0, 0.0, normalizer=2.0)
    loss.backward()
    assert torch.allclose(logps.grad, torch.tensor([[-5.0 / 2, -1.0 / 2]], dtype=torch.float64))


def test_equal_rewards_give_zero_advantage_not_nan():
    r = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, float("nan"), 0.5], dtype=torch.float64)
    adv, zero = group_advantages(r, 4)
    assert torch.all(adv[:4] == 0) and zero[:4].all() and not zero[4:].any()
    assert adv[6] == 0 and torch.isfinite(adv).all()
    ok = torch.tensor([0.0, 1.0, 0.5])  # the NaN row stays out of the group's mean and std
    assert torch.allclose(adv[[4, 5, 7]], ((ok - ok.mean()) / (ok.std() + 1e-4)).double())
    adv_none, _ = group_advantages(r, 4, "none")
    assert torch.allclose(adv_none[[4, 5, 7]], (ok - ok.mean()).double())
    adv_batch, _ = group_advantages(r, 4, "batch", batch_std=torch.tensor(2.0, dtype=torch.float64))
    assert torch.allclose(adv_batch[[4, 5, 7]], ((ok - ok.mean()) / 2.0001).double())


# ---------------------------------------------------------------------------------------------- rewards

def test_minimind_rules_and_gt():
    good = "<think>\nWopp lives in Sunmar.\n</think>\n<answer>\nTarnis\n</answer>"
    assert R.format_reward([good, "<think>x</think>", "plain"]) == [1.5, 0.5, 0.0]
    assert R.length_reward(["short", "x" * 30, "y" * 900]) == [-0.5, 0.5, -0.5]
    assert R.repetition_reward(["<think>a a a a</think> one two three"])[0] == 0.0
    assert R.repetition_reward(["the cat sat the cat sat the cat sat"])[0] == pytest.approx(-0.5)
    # gt: the answer part only; numbers as numbers; None without gt
    assert R.gt_reward([good, "<think>Tarnis</think> Ostavia"], gt=[["Tarnis"], ["Tarnis"]]) == [1.0, 0.0]
    assert R.gt_reward(["it is 4.0 and 1,000", "4"], gt=[["4", "1000", "x"], None]) == [2 / 3, None]


def test_score_checks_what_a_function_returns(reward_file):
    funcs = [R.load_user_function(reward_file + ":" + name) for name in ("likes_low", "raises", "short", "nonfinite")]
    comp = ["eee", "abc"]
    got = R.score(funcs[:1], ["p", "p"], comp, [[1], [5000]], [{}, {}])
    assert got[:, 0].tolist() == [1.0, 0.0]
    for f, pattern in ((funcs[1], r"reward function raises at step 3 raised ValueError: boom .*no weights"),
                       (funcs[2], r"reward function short at step 3: expected a list of 2 floats.*got 1 values"),
                       (funcs[3], r"reward function nonfinite at step 3: sample 0: expected a finite reward")):
        with pytest.raises(UserError, match=pattern):
            R.score([f], ["p", "p"], comp, [[1], [2]], [{}, {}], step=3)
    with pytest.raises(UserError, match="no such file"):
        R.load_user_function("nowhere.py:f")
    with pytest.raises(UserError, match="has no function 'nope' \\(it has: likes_low, nonfinite, raises, short\\)"):
        R.load_user_function(reward_file + ":nope")


# ---------------------------------------------------------------------------------------------- rollout

def test_rollout_logprobs_ratio_exactly_one_before_the_update(tmp_path):
    """--num_iterations 2: the old log-probs (no-grad forward in the rollout) equal the update's first
    forward exactly, so the first ratio is 1 to the bit (MiniMind #814); and they agree with the
    sampler's own log-probs up to float error."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from model import MiniMindConfig, MiniMindForCausalLM
    from model.generation import generate_batch
    from trainer.rl.rollout import completion_logprobs
    from trainer.stages.grpo import GRPOStage
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir())
    model = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1))
    args = SimpleNamespace(num_iterations=2, num_generations=3, loss_type="grpo", beta=0.1, epsilon=0.2,
                           epsilon_high=0.2, max_gen_len=6, temperature=1.0, top_p=1.0, scale_rewards="group",
                           mask_truncated_completions=False, rollout_engine="torch", seed=0, log_completions=0)
    from contextlib import nullcontext
    trainer = SimpleNamespace(tokenizer=tok, autocast=nullcontext, rank=0, ddp=False, world_size=1,
                              device=torch.device("cpu"), step=0)
    stage = GRPOStage(args, [("len", lambda completions, **k: [float(len(c)) for c in completions])])
    stage.prepare(trainer, model, None, None, None, None)
    prompts = [{"prompt_ids": torch.tensor(tok(q)["input_ids"]), "fields": {}} for q in ("hi", "a longer question here")]
    micro = stage.rollout(trainer, model, [(prompts, 0)])
    batch = micro[0][0]
    roll = batch["roll"]
    assert roll.input_ids.shape[0] == 6 and roll.input_ids[0, 0] == tok.pad_token_id  # left-padded
    loss, metrics = stage.loss(model, batch)
    assert stage.last_ratio_dev == 0.0
    assert metrics["clip_ratio/region_mean"].sum() == 0
    # the reference is the starting model: KL exactly 0 before any update
    assert float(metrics["kl"].abs().max()) == 0.0
    # the sampler's log-probs (KV cache, step by step) agree to float error
    torch.manual_seed(1)
    g = generate_batch(model, tok, [p["prompt_ids"].tolist() for p in prompts], 6, return_logprobs=True,
                       num_return_sequences=3)
    from trainer.rl.rollout import Rollout
    roll_g = Rollout(torch.cat([g.prompt_ids, g.completion_ids], 1), torch.cat([g.prompt_mask, g.completion_mask], 1),
                     g.completion_ids, g.completion_mask, g.texts, torch.zeros(6, dtype=torch.bool))
    with torch.no_grad():
        lp = completion_logprobs(model, roll_g)[0]
    assert torch.allclose(lp, g.logprobs, atol=1e-4)
    assert torch.all(lp[g.completion_mask == 0] == 0)


def test_shared_prompt_forward_equals_the_plain_one():
    """Rows that share a prompt run it once (completion_logprobs): the log-probs, entropies and gradients
    equal one plain forward over every row's prompt + completion, with left-padded prompts, a group of
    one, right-padded completions, and a row whose prompt differs inside a run; MoE takes the plain path."""
    from model import MiniMindConfig, MiniMindForCausalLM
    from trainer.rl.rollout import Rollout, completion_logprobs, shared_prompt_groups
    torch.manual_seed(0)
    model = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=2, vocab_size=97))
    prompts = [[5, 6, 7, 8, 9], [11, 12], [11, 12], [11, 12], [20, 21, 22], [20, 21, 22], [20, 23, 22]]
    P, C = 5, 4
    rows = [(p, torch.randint(1, 97, (C,)).tolist(), c) for p, c in zip(prompts, (4, 2, 4, 3, 1, 4, 4))]
    ids = torch.zeros(len(rows), P + C, dtype=torch.long)
    att = torch.zeros_like(ids)
    for i, (p, comp, c) in enumerate(rows):
        ids[i, P - len(p):P], att[i, P - len(p):P] = torch.tensor(p), 1
        ids[i, P:P + c], att[i, P:P + c] = torch.tensor(comp[:c]), 1
    roll = Rollout(ids, att, ids[:, P:], att[:, P:], [""] * len(rows), torch.zeros(len(rows), dtype=torch.bool))
    first, counts = shared_prompt_groups(roll)
    assert first.tolist() == [0, 1, 4, 6] and counts.tolist() == [1, 3, 2, 1]
    results = []
    for share in (False, True):
        model.zero_grad()
        logps, entropy, _ = completion_logprobs(model, roll, 0.7, with_entropy=True, share_prompts=share)
        (logps * torch.linspace(-1, 1, C)).sum().backward()
        results.append((logps.detach(), entropy, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (lp0, ent0, g0), (lp1, ent1, g1) = results
    assert torch.all(lp1[roll.completion_mask == 0] == 0)
    torch.testing.assert_close(lp1, lp0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent1, ent0, atol=1e-5, rtol=1e-5)
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], atol=1e-5, rtol=1e-4)
    # nothing shared: no groups; every prompt different
    distinct = Rollout(ids[[0, 1, 4]], att[[0, 1, 4]], ids[[0, 1, 4], P:], att[[0, 1, 4], P:], [""] * 3,
                       torch.zeros(3, dtype=torch.bool))
    assert shared_prompt_groups(distinct) is None
    moe = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1, vocab_size=97, use_moe=True))
    with torch.no_grad():
        a = completion_logprobs(moe, roll)[2].aux_loss
        b = completion_logprobs(moe, roll, share_prompts=False)[2].aux_loss
    assert float(a) == float(b) and float(a) > 0


# ---------------------------------------------------------------------------------------------- the script

def test_grpo_learns_a_reward_and_logs_trl_names(tmp_path, reward_file):
    data = write_prompts(tmp_path / "p.jsonl", n=8)
    val = write_prompts(tmp_path / "v.jsonl", n=4)
    # a low temperature concentrates the samples on a few tokens per position: a tiny random model's
    # near-uniform distribution over 6400 tokens would spread the signal too thin for 20 steps
    r = run_script(cmd(tmp_path / "out", data, "--epochs", "10", "--learning_rate", "3e-2", "--beta", "0",
                       "--loss_type", "grpo", "--reward_funcs", reward_file + ":likes_low,length",
                       "--reward_weights", "1,0", "--temperature", "0.3", "--log_completions", "1",
                       "--max_gen_len", "4", "--num_generations", "8", "--batch_size", "4",
                       "--val_data_path", val, "--eval_interval", "10"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    o = r.stdout
    assert "rewards: likes_low x 1, length x 0" in o
    for name in ("reward", "reward_std", "rewards/likes_low/mean", "frac_reward_zero_std", "clip_ratio/region_mean",
                 "entropy", "completions/mean_length", "completions/clipped_ratio", "advantages_mean",
                 "advantages_std", "policy_loss", "avg_response_len"):
        assert f" {name} " in o, name
    assert "kl " not in o  # --beta 0: no reference model, no KL
    assert "[completion] reward " in o
    rew = logged(o, "reward")
    steps = sorted(rew)
    assert len(steps) == 20
    first, last = sum(rew[s] for s in steps[:5]) / 5, sum(rew[s] for s in steps[-5:]) / 5
    assert last > first + 0.3 and last > 0.9, (first, last)  # seeds 0-2 measured: ~0.5 -> 1.0
    val_rew = logged(o, "val/reward")  # greedy, on the held-out prompts, every --eval_interval steps
    assert sorted(val_rew) == [10, 20] and " val/rewards/likes_low/mean " in o and " val/completions/mean_length " in o
    assert 0.0 <= val_rew[20] <= 1.0
    assert (tmp_path / "out" / "grpo_32.pth").exists()


def test_sigkill_then_resume_continues_exactly(tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", n=12)
    base = cmd(tmp_path / "a", data, "--epochs", "2", "--learning_rate", "1e-3", "--save_interval", "3",
               "--num_iterations", "2", "--loss_type", "dapo", "--beta", "0.1", "--reasoning", "0")
    a = run_script(base)
    assert a.returncode == 0, a.stderr[-3000:]
    total = max(logged(a.stdout))
    assert total == 24  # 6 batches x 2 epochs x 2 iterations
    r, start = kill_and_resume("train_grpo.py", base, tmp_path / "a", tmp_path / "b", total)
    assert start % 2 == 0  # a save due at step 3 waits for the rollout's second iteration
    assert_continues(a.stdout, r.stdout, start, total, ("loss", "reward", "kl"))
    assert same_weights(tmp_path / "a" / "grpo_32.pth", tmp_path / "b" / "grpo_32.pth")


def test_torchrun_two_ranks_disjoint_prompts_groups_stay_together(tmp_path, reward_file):
    data = write_prompts(tmp_path / "p.jsonl", n=8)
    seen = tmp_path / "seen"
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         os.path.join(ROOT, "train_grpo.py"), *cmd(tmp_path / "out", data, "--epochs", "1", "--save_interval", "1",
                                                   "--reward_funcs", reward_file + ":likes_low,gt")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, GRPO_TEST_SEEN=str(seen)))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("rewards: likes_low x 1, gt x 1") == 1 and "2 process(es)" in r.stdout
    per_rank = [open(f"{seen}.{k}", encoding="utf-8").read().splitlines() for k in (0, 1)]
    assert all(len(p) == 16 for p in per_rank)  # 4 prompts x 4 completions each
    counts = [{q: p.count(q) for q in set(p)} for p in per_rank]
    assert all(set(c.values()) == {4} for c in counts)  # a prompt's 4 completions on one rank
    assert not set(counts[0]) & set(counts[1]) and len(set(counts[0]) | set(counts[1])) == 8
    assert sorted(logged(r.stdout, "reward")) == [1, 2]
    resume = torch.load(tmp_path / "out" / "grpo_32_resume.pth", weights_only=True)
    assert len(resume["rng"]) == 2 and resume["config"]["world_size"] == 2


# ---------------------------------------------------------------------------------------------- errors

def user_error(script, argv, capsys):
    """Exit 2 and one stderr line (besides the token cache's one-time "tokenized ..." note)."""
    from trainer.errors import run_main
    with pytest.raises(SystemExit) as e:
        run_main(script.main, argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("tokenized ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("case", ["no_user", "empty", "missing_file", "missing_name", "one_generation",
                                  "weights", "reward_model"])
def test_bad_input_one_line_exit_2(tmp_path, capsys, case, reward_file):
    import train_grpo
    data = write_prompts(tmp_path / "p.jsonl", n=4)
    extra, expect = [], None
    if case == "no_user":
        with open(data, "a", encoding="utf-8") as f:
            f.write(json.dumps({"conversations": [{"role": "assistant", "content": ""}]}) + "\n")
        expect = r"p\.jsonl:5: expected \"conversations\" with a user turn to answer"
    elif case == "empty":
        open(data, "w").close()
        expect = r"p\.jsonl: expected at least one JSON line, got an empty file"
    elif case == "missing_file":
        extra, expect = ["--reward_funcs", "nowhere.py:f"], r"--reward_funcs nowhere\.py:f: nowhere\.py: no such file"
    elif case == "missing_name":
        extra, expect = ["--reward_funcs", reward_file + ":nope"], r"has no function 'nope'"
    elif case == "one_generation":
        extra, expect = ["--num_generations", "1"], r"--num_generations: expected at least 2"
    elif case == "weights":
        extra, expect = ["--reward_weights", "1,2,3"], r"--reward_weights: 3 weights for 4 rewards"
    else:
        extra, expect = ["--reward_model_path", str(tmp_path / "rm")], r"--reward_model_path .*rm: no such folder"
    line = user_error(train_grpo, cmd(tmp_path / "out", data, *extra), capsys)
    assert re.search(expect, line), line
    assert not (tmp_path / "out" / "grpo_32.pth").exists()


def test_a_raising_reward_function_stops_before_any_weights(tmp_path, capsys, reward_file):
    import train_grpo
    data = write_prompts(tmp_path / "p.jsonl", n=4)
    line = user_error(train_grpo, cmd(tmp_path / "out", data, "--reward_funcs", reward_file + ":raises",
                                      "--save_interval", "1"), capsys)
    assert line.startswith("error: reward function raises at step 1 raised ValueError: boom"), line
    assert not any(f.endswith(".pth") for f in os.listdir(tmp_path / "out"))


def test_defaults_follow_minimind():
    import train_grpo
    a = train_grpo.parse_args([])
    assert (a.from_weight, a.save_weight, a.loss_type, a.epsilon_high, a.num_generations, a.beta) == \
        ("reason", "grpo", "cispo", 5.0, 8, 0.02)
    assert (a.max_seq_len, a.max_gen_len, a.data_path) == (66, 1536, "./dataset/rlaif-mini.jsonl")
    a = train_grpo.parse_args(["--reasoning", "0", "--loss_type", "grpo"])
    assert (a.from_weight, a.epsilon_high) == ("full_sft", 0.2)


def test_a_non_finite_loss_takes_the_trainers_fault_path(tmp_path, capsys, monkeypatch, reward_file):
    """A NaN loss on one micro-batch: the shared faults path skips that optimizer step (weights unchanged,
    counted as skipped_steps) and the run goes on; a streak of --max_bad_steps stops it in one line."""
    import train_grpo
    from trainer.errors import run_main
    from trainer.stages.grpo import GRPOStage
    calls, orig = [0], GRPOStage.loss

    def loss(self, model, batch):
        calls[0] += 1
        value, metrics = orig(self, model, batch)
        return (value * float("nan") if calls[0] == 2 else value), metrics
    monkeypatch.setattr(GRPOStage, "loss", loss)
    data = write_prompts(tmp_path / "p.jsonl", n=8)
    run_main(train_grpo.main, cmd(tmp_path / "out", data, "--reward_funcs", reward_file + ":likes_low"))
    o = capsys.readouterr().out
    assert re.search(r"^warning: step 2/4: non-finite loss \(nan\) at epoch 1, batch 2 of 4; step skipped", o, re.M), o
    assert re.search(r"^epoch 1/1 step 4/4 loss .* skipped_steps 1", o, re.M), o
    assert (tmp_path / "out" / "grpo_32.pth").exists()

    calls[0] = 0
    monkeypatch.setattr(GRPOStage, "loss", lambda self, m, b: (orig(self, m, b)[0] * float("nan"), {}))
    with pytest.raises(SystemExit) as e:
        run_main(train_grpo.main, cmd(tmp_path / "out2", data, "--reward_funcs", reward_file + ":likes_low",
                                      "--max_bad_steps", "2"))
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and not ln.startswith("tokenized ")]
    assert e.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("error: stopped at step 2/4: 2 steps in a row had a non-finite loss or gradient norm"), err
    assert not (tmp_path / "out2" / "grpo_32.pth").exists()  # nothing finite to save, nothing written
