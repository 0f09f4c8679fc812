"""train_ppo.py: GAE, whitening and each loss term against their formulas, the first update's log-ratio
exactly 0, the script end to end (it learns a reward, it resumes exactly after SIGKILL, it runs under
torchrun with its early stop) and its one-line errors."""
import math
import os
import re
import subprocess
import sys
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from test_grpo import REWARD_FILE, user_error, write_prompts  # noqa: E402
from test_train_common import assert_continues, kill_and_resume, same_weights, tokenizer_dir  # noqa: E402
from test_train_scripts import logged  # noqa: E402

from trainer.rl.ppo import explained_variance, gae, last_token_rewards, masked_whiten, ppo_loss  # noqa: E402


@pytest.fixture
def reward_file(tmp_path):
    p = tmp_path / "my_rewards.py"
    p.write_text(REWARD_FILE)
    return str(p)


def cmd(out, data, *extra):
    return ["--dim", "32", "--n_layers", "1", "--device", "cpu", "--from_weight", "none", "--num_workers", "0",
            "--tokenizer_path", tokenizer_dir(), "--data_path", data, "--out_dir", str(out),
            "--max_gen_len", "6", "--batch_size", "2", "--log_interval", "1", *extra]


def run_script(argv, env=None, timeout=600):
    return subprocess.run([sys.executable, "-u", os.path.join(ROOT, "train_ppo.py"), *argv], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})), timeout=timeout)


# ---------------------------------------------------------------------------------------------- arithmetic

MASK = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.float64)


def test_gae_against_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(4, 5, generator=g, dtype=torch.float64)
    scores = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    rewards = last_token_rewards(scores, MASK).double()
    assert rewards[0].tolist() == [0, 0, 1.0, 0, 0] and rewards[1, 4] == -2.0 and rewards[2, 0] == 0.5
    assert rewards[3].abs().sum() == 0  # an empty row gets nothing
    gamma, lam = 0.9, 0.8
    adv, ret = gae(rewards, values, MASK, gamma, lam)
    for i in range(4):
        n = int(MASK[i].sum())
        v = [float(values[i, t]) for t in range(n)] + [0.0]  # the value after the last token is 0
        r = [0.0] * n
        if n:
            r[-1] = float(scores[i])
        delta = [r[t] + gamma * v[t + 1] - v[t] for t in range(n)]
        for t in range(5):
            if t >= n:  # padding: nothing
                assert adv[i, t] == 0 and ret[i, t] == 0
                continue
            want = sum((gamma * lam) ** k * delta[t + k] for k in range(n - t))
            assert abs(float(adv[i, t]) - want) < 1e-12
            assert abs(float(ret[i, t]) - (want + v[t])) < 1e-12
    # gamma = lam = 1 (MiniMind's gamma, TRL's lam): every return is the final reward
    _, ret1 = gae(rewards, values, MASK, 1.0, 1.0)
    assert torch.allclose(ret1[1], torch.full((5,), -2.0, dtype=torch.float64))


def test_whitening_and_explained_variance_over_real_tokens_only():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, generator=g, dtype=torch.float64) * 3 + 2
    x_padded = x.clone()
    x_padded[MASK == 0] = 1e6  # whatever padding holds never enters
    real = x[MASK.bool()]
    want = (real - real.mean()) / torch.sqrt(real.var(unbiased=False) + 1e-8)
    w = masked_whiten(x_padded, MASK)
    assert torch.allclose(w[MASK.bool()], want) and torch.all(w[MASK == 0] == 0)
    ret = x
    vals = x + torch.randn(4, 5, generator=g, dtype=torch.float64) * 0.5
    vals[MASK == 0] = -1e6
    r, v = ret[MASK.bool()], vals[MASK.bool()]
    assert abs(explained_variance(vals, ret, MASK) - (1 - float((r - v).var(unbiased=False) / r.var(unbiased=False)))) < 1e-12
    assert explained_variance(ret, ret, MASK) == 1.0
    assert explained_variance(vals, torch.ones_like(ret), MASK) is None  # constant returns: undefined


def test_loss_terms_against_the_formulas():
    g = torch.Generator().manual_seed(2)
    N, C = 4, 5
    logps = -torch.rand(N, C, generator=g, dtype=torch.float64) * 3
    old = logps + (torch.rand(N, C, generator=g, dtype=torch.float64) - 0.5) * 0.8  # ratios ~0.67 .. ~1.5
    ref = logps + (torch.rand(N, C, generator=g, dtype=torch.float64) - 0.5)
    values = torch.randn(N, C, generator=g, dtype=torch.float64)
    old_values = values + (torch.rand(N, C, generator=g, dtype=torch.float64) - 0.5)  # some beyond 0.2
    adv = torch.randn(N, C, generator=g, dtype=torch.float64)
    ret = torch.randn(N, C, generator=g, dtype=torch.float64)
    eps, cv, vf_coef, kl_coef, norm = 0.2, 0.2, 0.5, 0.05, 7.0
    loss, stats = ppo_loss(logps, old, ref, values, old_values, adv, ret, MASK, eps, cv, vf_coef, kl_coef, norm)
    pol = val = kl_sum = 0.0
    per = {k: [] for k in ("approx_kl", "clipfrac", "kl_ref", "policy_loss", "critic_loss", "value_clipfrac")}
    for i in range(N):
        for t in range(C):
            if not MASK[i, t]:
                continue
            lr = float(logps[i, t] - old[i, t])
            r, A = math.exp(lr), float(adv[i, t])
            pg = max(-A * r, -A * min(max(r, 1 - eps), 1 + eps))
            d = float(ref[i, t] - logps[i, t])
            kl = math.exp(d) - d - 1
            V, Vo, R = float(values[i, t]), float(old_values[i, t]), float(ret[i, t])
            Vc = min(max(V, Vo - cv), Vo + cv)
            vf = 0.5 * max((V - R) ** 2, (Vc - R) ** 2)
            pol, val, kl_sum = pol + pg, val + vf, kl_sum + kl
            per["approx_kl"].append(0.5 * lr * lr)
            per["clipfrac"].append(float(abs(r - 1) > eps))
            per["kl_ref"].append(kl)
            per["policy_loss"].append(pg)
            per["critic_loss"].append(vf)
            per["value_clipfrac"].append(float((Vc - R) ** 2 > (V - R) ** 2))
    want = pol / norm + kl_coef * kl_sum / norm + vf_coef * val / norm
    assert abs(float(loss) - want) < 1e-12, (float(loss), want)
    for k, vals in per.items():
        assert torch.allclose(stats[k].double(), torch.tensor(vals, dtype=torch.float64)), k
    # the clips acted on some tokens and not on others
    assert 0 < sum(per["clipfrac"]) < len(per["clipfrac"]) and 0 < sum(per["value_clipfrac"]) < len(per["value_clipfrac"])
    # without a reference there is no KL term
    loss0, stats0 = ppo_loss(logps, old, None, values, old_values, adv, ret, MASK, eps, cv, vf_coef, 0.0, norm)
    assert abs(float(loss0) - (pol + vf_coef * val) / norm) < 1e-12 and "kl_ref" not in stats0
    # gradients reach log-probs and values on real tokens only
    lp, vv = logps.clone().requires_grad_(True), values.clone().requires_grad_(True)
    ppo_loss(lp, old, ref, vv, old_values, adv, ret, MASK, eps, cv, vf_coef, kl_coef, norm)[0].backward()
    for grad in (lp.grad, vv.grad):
        assert torch.all(grad[MASK == 0] == 0) and grad[MASK.bool()].abs().sum() > 0


# ---------------------------------------------------------------------------------------------- the stage

def tiny_stage(**over):
    from transformers import AutoTokenizer

    from model import MiniMindConfig, MiniMindForCausalLM
    from trainer.rl.ppo import ActorCritic, make_critic
    from trainer.stages.ppo import PPOStage
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir())
    actor = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1))
    model = ActorCritic(actor, make_critic(actor))
    args = SimpleNamespace(batch_size=2, accumulation_steps=2, mini_batch_size=2, ppo_update_iters=2, kl_coef=0.1,
                           clip_epsilon=0.2, cliprange_value=0.2, vf_coef=0.5, gamma=1.0, lam=0.95, early_stop_kl=0.25,
                           critic_learning_rate=1e-3, learning_rate=1e-3, max_gen_len=6, temperature=1.0, top_p=1.0,
                           rollout_engine="torch", seed=0, log_completions=0)
    vars(args).update(over)
    trainer = SimpleNamespace(tokenizer=tok, autocast=nullcontext, rank=0, ddp=False, world_size=1, pad_id=tok.pad_token_id,
                              device=torch.device("cpu"), step=0, total_steps=8, log=lambda m: None)
    stage = PPOStage(args, [("len", lambda completions, **k: [float(len(c)) for c in completions])])
    stage.prepare(trainer, model, None, None, None, None)
    qs = ("hi", "a longer question here", "what", "one more question")
    items = [{"prompt_ids": torch.tensor(tok(q)["input_ids"]), "fields": {}} for q in qs]
    return stage, trainer, model, tok, [(items[:2], 0), (items[2:], 0)]


def test_first_update_log_ratio_is_exactly_zero_and_padding_stays_out():
    """The old log-probs and values come from the update's own forward on the first pass's own micro-batches:
    before the first optimizer step the log-ratio is 0 to the bit (MiniMind #814), so is the KL to the
    reference, and the value clip does not act."""
    stage, trainer, model, tok, batches = tiny_stage()
    assert stage.num_iterations == 4  # 2 passes x (4 rows / minibatches of 2)
    groups = stage.param_groups(model, stage.args)
    assert [g["name"] for g in groups] == ["actor", "critic"]
    actor_ids = {id(p) for p in model.actor.parameters()}
    assert not actor_ids & {id(p) for p in model.critic.parameters()}  # the critic's trunk is its own copy
    assert torch.equal(model.critic.model.embed_tokens.weight, model.actor.model.embed_tokens.weight)
    micro = stage.rollout(trainer, model, batches)
    assert len(micro) == 4 and all(len(slot) == 1 for slot in micro)
    batch, ntok = stage.iteration_batches(micro, 0)[0]
    d = batch["data"]
    roll = d["roll"]
    assert roll.input_ids.shape[0] == 4 and roll.input_ids[0, 0] == tok.pad_token_id  # two rollouts, left-padded
    # the mask is the rollout's (up to the first <|im_end|>); padding gets no advantage, return or value
    assert torch.equal(d["mask"], roll.completion_mask.float())
    for key in ("advantages", "returns", "old_values", "old_logps", "ref_logps"):
        assert torch.all(d[key][d["mask"] == 0] == 0), key
    assert abs(float(d["advantages"][d["mask"].bool()].mean())) < 1e-6  # whitened
    loss, metrics = stage.loss(model, batch)
    assert stage.last_log_ratio_max == 0.0
    for k in ("approx_kl", "clipfrac", "kl_ref", "value_clipfrac"):
        assert float(metrics[k].abs().max()) == 0.0, k
    assert ntok == int(roll.completion_mask[batch["idx"]].sum()) and stage.iteration_batches(micro, 2)[0][1] == 0
    # the early stop: an approximate KL above the threshold drops the step and the rollout's later ones
    assert stage.accept_step(trainer)
    stage.args.early_stop_kl = 1e-12
    stage._kl = [1.0, 4.0]
    assert not stage.accept_step(trainer) and stage.iteration_batches(micro, 1) == []
    # --kl_coef 0 builds no reference (GRPO's --beta 0)
    assert stage.ref is not None and tiny_stage(kl_coef=0.0)[0].ref is None


# ---------------------------------------------------------------------------------------------- the script

LEARN = ["--epochs", "5", "--learning_rate", "3e-2", "--critic_learning_rate", "3e-2", "--kl_coef", "0.01",
         "--temperature", "0.3", "--max_gen_len", "4", "--batch_size", "4", "--mini_batch_size", "4",
         "--early_stop_kl", "100", "--save_interval", "4"]


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """One run that learns likes_low (also the uninterrupted run the resume test compares with)."""
    tmp = tmp_path_factory.mktemp("ppo")
    (tmp / "my_rewards.py").write_text(REWARD_FILE)
    data = write_prompts(tmp / "p.jsonl", n=8)
    argv = cmd(tmp / "a", data, *LEARN, "--reward_funcs", str(tmp / "my_rewards.py") + ":likes_low")
    return SimpleNamespace(tmp=tmp, argv=argv, r=run_script(argv))


def test_ppo_learns_a_reward_and_logs_minimind_names(learned):
    r = learned.r
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    o = r.stdout
    assert "rewards: likes_low x 1" in o and "critic: the actor's trunk, copied" in o
    for name in ("reward", "kl_ref", "approx_kl", "clipfrac", "critic_loss", "avg_response_len", "actor_lr",
                 "critic_lr", "explained_variance", "value_mean", "policy_loss"):
        assert f" {name} " in o, name
    rew = logged(o, "reward")
    steps = sorted(rew)
    assert len(steps) == 20  # 5 epochs x 2 rollouts x 2 passes of one minibatch
    first, last = sum(rew[s] for s in steps[:6]) / 6, sum(rew[s] for s in steps[-6:]) / 6
    assert last > first + 0.25, (first, last)  # seeds 1337, 1, 2 measured: +0.46, +0.38, +0.52
    # both learning rates on the one schedule, from their own peaks
    actor_lr, critic_lr = logged(o, "actor_lr"), logged(o, "critic_lr")
    assert actor_lr[1] == pytest.approx(3e-2, rel=1e-3) and actor_lr[20] < actor_lr[10] < actor_lr[1]
    assert critic_lr == actor_lr
    # the weights file is the actor alone, a chat model; the resume file holds both and their optimizer
    w = torch.load(learned.tmp / "a" / "ppo_actor_32.pth", weights_only=True)
    assert "lm_head.weight" in w and not any(k.startswith(("actor.", "critic.", "score")) for k in w)
    res = torch.load(learned.tmp / "a" / "ppo_actor_32_resume.pth", weights_only=True)
    assert any(k.startswith("actor.") for k in res["model"]) and "critic.score.weight" in res["model"]
    assert len(res["optimizer"]["param_groups"]) == 2


def test_sigkill_then_resume_continues_exactly(learned):
    assert learned.r.returncode == 0
    a, b = learned.tmp / "a", learned.tmp / "b"
    r, start = kill_and_resume("train_ppo.py", learned.argv, a, b, 20)
    assert start % 2 == 0  # saved at the end of a rollout
    assert_continues(learned.r.stdout, r.stdout, start, 20,
                     ("loss", "reward", "critic_loss", "approx_kl", "kl_ref", "value_mean", "explained_variance"))
    assert same_weights(a / "ppo_actor_32.pth", b / "ppo_actor_32.pth")
    ra = torch.load(a / "ppo_actor_32_resume.pth", weights_only=True)["model"]
    rb = torch.load(b / "ppo_actor_32_resume.pth", weights_only=True)["model"]
    assert all(torch.equal(ra[k], rb[k]) for k in ra if k.startswith("critic."))  # the critic too


def test_torchrun_two_ranks_disjoint_prompts_and_the_early_stop(tmp_path, reward_file):
    """2 x gloo: each rank its own prompts; a tiny --early_stop_kl drops every rollout's second update on both
    ranks alike (an all-reduced decision: no hang), and the run ends cleanly."""
    data = write_prompts(tmp_path / "p.jsonl", n=8)
    seen = tmp_path / "seen"
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         os.path.join(ROOT, "train_ppo.py"), *cmd(tmp_path / "out", data, "--learning_rate", "1e-3", "--max_gen_len",
                                                  "4", "--early_stop_kl", "1e-9", "--reward_funcs",
                                                  reward_file + ":likes_low")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, GRPO_TEST_SEEN=str(seen)))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    o = r.stdout
    assert "2 process(es), 2 batches of 2 per process per epoch, 4 optimizer steps" in o
    per_rank = [open(f"{seen}.{k}", encoding="utf-8").read().splitlines() for k in (0, 1)]
    assert all(len(p) == 4 for p in per_rank) and not set(per_rank[0]) & set(per_rank[1])
    assert len(set(per_rank[0]) | set(per_rank[1])) == 8
    assert re.findall(r"^early stop at optimizer step (\d+)/4", o, re.M) == ["2", "4"], o
    assert sorted(logged(o, "reward")) == [1, 2, 3, 4] and sorted(logged(o, "critic_lr")) == [1, 2, 3, 4]
    resume = torch.load(tmp_path / "out" / "ppo_actor_32_resume.pth", weights_only=True)
    assert len(resume["rng"]) == 2 and resume["config"]["world_size"] == 2


# ---------------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("case", ["no_user", "missing_func", "mini_batch", "gamma", "reward_model_as_actor"])
def test_bad_input_one_line_exit_2(tmp_path, capsys, case):
    import json

    import train_ppo
    data = write_prompts(tmp_path / "p.jsonl", n=4)
    extra = []
    if case == "no_user":
        with open(data, "a", encoding="utf-8") as f:
            f.write(json.dumps({"conversations": [{"role": "assistant", "content": ""}]}) + "\n")
        expect = r"p\.jsonl:5: expected \"conversations\" with a user turn to answer"
    elif case == "missing_func":
        extra, expect = ["--reward_funcs", "nowhere.py:f"], r"--reward_funcs nowhere\.py:f: nowhere\.py: no such file"
    elif case == "mini_batch":
        extra, expect = ["--mini_batch_size", "0"], r"--mini_batch_size: expected"
    elif case == "gamma":
        extra, expect = ["--gamma", "1.5"], r"--gamma: expected a number in \[0, 1\]"
    else:
        from model import MiniMindForSequenceClassification
        from model.reward import reward_config
        net = MiniMindForSequenceClassification(reward_config(SimpleNamespace(dim=32, n_layers=1, use_moe=False)))
        torch.save(net.state_dict(), tmp_path / "reward_32.pth")
        extra = ["--from_weight", str(tmp_path / "reward_32.pth")]
        expect = r"reward_32\.pth: is a reward model .*train_ppo\.py --reward_model_path"
    argv = cmd(tmp_path / "out", data, *extra)
    line = user_error(train_ppo, argv, capsys)
    assert re.search(expect, line), line
    assert not (tmp_path / "out" / "ppo_actor_32.pth").exists()


def test_defaults_follow_minimind():
    import train_ppo
    a = train_ppo.parse_args([])
    assert (a.from_weight, a.save_weight, a.learning_rate, a.critic_learning_rate) == ("reason", "ppo_actor", 3e-7, 5e-7)
    assert (a.clip_epsilon, a.cliprange_value, a.vf_coef, a.kl_coef, a.gamma, a.lam) == (0.2, 0.2, 0.5, 0.02, 1.0, 0.95)
    assert (a.ppo_update_iters, a.mini_batch_size, a.early_stop_kl, a.batch_size) == (2, 2, 0.25, 2)
    assert (a.max_seq_len, a.max_gen_len, a.data_path, a.temperature) == (66, 1536, "./dataset/rlaif-mini.jsonl", 0.8)
    assert train_ppo.parse_args(["--reasoning", "0"]).from_weight == "full_sft"
