"""scripts/bench.py --quick: every section present, numbers sane, every ratio and MFU derived from the
measured times in the JSON. No speed thresholds: this machine is shared and noisy."""
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "scripts", "bench.py")
sys.path.insert(0, ROOT)

from benchmarks.harness import interleaved, ratio  # noqa: E402


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    p = subprocess.run([sys.executable, BENCH, "--quick", "--threads", "1", "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    with open(out) as f:
        return json.load(f), p.stdout


def positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def check_summary(s, per_rep):
    assert s["per_rep"] == pytest.approx(per_rep, rel=1e-9)
    assert s["median"] == pytest.approx(statistics.median(per_rep), rel=1e-9)
    assert s["min"] == pytest.approx(min(per_rep)) and s["max"] == pytest.approx(max(per_rep))
    assert all(positive(v) for v in per_rep)


def check_ratio(r, num, den):
    check_summary(r, [a / b for a, b in zip(num, den)])


def test_every_section_present_and_sane(run):
    res, stdout = run
    reps = res["meta"]["reps"]
    assert reps >= 5 and res["meta"]["quick"] is True
    for sec in ("mfu", "train", "sft", "dpo", "dpo_step", "grpo", "ppo", "gen", "targets"):
        assert res.get(sec), f"section {sec} missing"
    assert positive(res["mfu"]["peak_flops_per_s"])
    assert res["mfu"]["peak_flops_per_s"] == max(res["mfu"]["flops_per_s"]["per_rep"])
    n = res["mfu"]["n"]
    check_summary(res["mfu"]["flops_per_s"], [2 * n ** 3 / t for t in res["mfu"]["times_s"]])
    for line in ("[train step]", "[SFT epoch]", "[DPO epoch]", "[DPO step]", "[GRPO step]", "[PPO step]", "[generate]",
                 "[targets]",
                 "wrote"):
        assert line in stdout


def test_train_tokens_per_s_ratios_and_mfu_follow_from_times(run):
    res, _ = run
    peak = res["mfu"]["peak_flops_per_s"]
    for cfg in res["train"]:
        v = cfg["variants"]
        assert {"minimind", "llama", "minimind+fused_loss"} <= set(v)
        assert cfg["tokens_per_step"] == cfg["batch"] * cfg["seq_len"]
        attention = 12 * cfg["num_hidden_layers"] * cfg["hidden_size"] * cfg["seq_len"]
        assert cfg["flops_per_token"] == 6 * cfg["params"] + attention
        for name, r in v.items():
            assert len(r["times_s"]) == res["meta"]["reps"]
            check_summary(r["tokens_per_s"], [cfg["tokens_per_step"] / t for t in r["times_s"]])
            assert positive(r["peak_mem_mb"])
            achieved = [cfg["flops_per_token"] * x for x in r["tokens_per_s"]["per_rep"]]
            assert r["mfu"]["median"] == pytest.approx(statistics.median([a / peak for a in achieved]), rel=1e-9)
            # the per-round matmul probe is one of the peak samples; same-round MFU divides by it
            rounds = cfg["matmul_flops_per_round"]
            assert len(rounds) == len(achieved) and all(p_ <= peak for p_ in rounds)
            check_summary({**r["mfu_same_round"], "per_rep": [a / p_ for a, p_ in zip(achieved, rounds)]},
                          [a / p_ for a, p_ in zip(achieved, rounds)])
        tps = {k: r["tokens_per_s"]["per_rep"] for k, r in v.items()}
        check_ratio(cfg["ratios"]["minimind/llama"], tps["minimind"], tps["llama"])
        check_ratio(cfg["ratios"]["minimind+fused_loss/minimind"], tps["minimind+fused_loss"], tps["minimind"])


@pytest.mark.parametrize("sec", ["sft", "dpo"])
def test_epoch_effective_tokens(run, sec):
    res, _ = run
    r = res[sec]
    v = r["variants"]
    mm, proj = v["minimind_batching"], v["project"]
    n = r.get("samples", r.get("pairs"))
    sides = 2 if sec == "dpo" else 1
    # MiniMind's batching pads every sample to max_seq_len (its inputs are max_seq_len - 1 long)
    assert all(p == sides * n * (r["max_seq_len"] - 1) for p in mm["padded_tokens"])
    for name, x in v.items():
        # every variant trains on the same samples each epoch: the same real tokens
        assert x["real_tokens"] == mm["real_tokens"]
        assert all(0 < a <= b for a, b in zip(x["real_tokens"], x["padded_tokens"]))
        check_summary(x["effective_tokens_per_s"], [a / t for a, t in zip(x["real_tokens"], x["times_s"])])
        assert positive(x["peak_mem_mb"])
    assert all(p < m for p, m in zip(proj["padded_tokens"], mm["padded_tokens"]))
    eff = {k: x["effective_tokens_per_s"]["per_rep"] for k, x in v.items()}
    check_ratio(r["ratios"]["project/minimind_batching"], eff["project"], eff["minimind_batching"])
    if sec == "dpo":
        assert all(positive(t) for t in proj["reference_pass_s"])
    sc = r["padding_at_scale"]
    assert sc["real_tokens"] <= sc["project_padded_tokens"] < sc["minimind_padded_tokens"]
    assert sc["padded_token_ratio"] == pytest.approx(sc["minimind_padded_tokens"] / sc["project_padded_tokens"])


def test_dpo_step_and_generation(run):
    res, _ = run
    d = res["dpo_step"]
    check_ratio(d["ratios"]["cached_speedup"], d["variants"]["on_the_fly"]["times_s"],
                d["variants"]["cached"]["times_s"])
    for x in d["variants"].values():
        check_summary(x["step_s"], [t / d["batches"] for t in x["times_s"]])
    g = res["gen"]
    assert g["same_tokens"] is True  # same weights, greedy: the same continuation
    for x in g["variants"].values():
        assert x["new_tokens"] == g["new_tokens"]
        check_summary(x["tokens_per_s"], [g["new_tokens"] / t for t in x["times_s"]])
    check_ratio(g["ratios"]["minimind/llama"], g["variants"]["minimind"]["tokens_per_s"]["per_rep"],
                g["variants"]["llama"]["tokens_per_s"]["per_rep"])


def test_grpo_step_throughputs_phases_and_ratios_follow_from_times(run):
    res, stdout = run
    g = res["grpo"]
    reps = res["meta"]["reps"]
    v = g["variants"]
    trl_there = importlib.util.find_spec("trl") is not None
    assert set(v) == {"ours", "minimind", "minimind_head"} | ({"trl"} if trl_there else set())
    if not trl_there:
        assert "trl is not importable" in g["skipped"]["trl"] and "skipped: trl is not importable" in stdout
    rows = g["prompts"] * g["num_generations"]
    # every variant sampled the same prompts' token ids
    assert all(g["same_prompt_ids"].values())
    for name, x in v.items():
        assert len(x["times_s"]) == len(x["completion_tokens"]) == len(x["rollout_s"]) == reps
        # each completion has at least one token and at most max_new_tokens
        assert all(rows <= n <= rows * g["max_new_tokens"] for n in x["completion_tokens"]), name
        check_summary(x["tokens_per_s"], [n / t for n, t in zip(x["completion_tokens"], x["times_s"])])
        check_summary(x["rollout_tokens_per_s"], [n / t for n, t in zip(x["completion_tokens"], x["rollout_s"])])
        # the phases are parts of the step: beta > 0, so every variant ran a reference forward
        assert all(0 < r + f < t for r, f, t in zip(x["rollout_s"], x["reference_s"], x["times_s"])), name
        assert all(f > 0 for f in x["reference_s"]), name
        assert positive(x["peak_mem_mb"])
    tps = {k: x["tokens_per_s"]["per_rep"] for k, x in v.items()}
    rps = {k: x["rollout_tokens_per_s"]["per_rep"] for k, x in v.items()}
    for other in v.keys() - {"ours"}:
        check_ratio(g["ratios"][f"ours/{other}"], tps["ours"], tps[other])
        check_ratio(g["ratios"][f"rollout ours/{other}"], rps["ours"], rps[other])
    t = {row["target"]: row for row in res["targets"]}
    for other, goal in (("trl", 1.5), ("minimind", 2.0), ("minimind_head", 2.0)):
        if other in v:
            row = t[f"grpo step completion tokens/s: ours/{other}"]
            assert row["measured"] == g["ratios"][f"ours/{other}"]["median"]
            assert row["met"] == (row["measured"] >= goal)


def test_ppo_step_throughputs_phases_memory_and_ratio_follow_from_times(run):
    res, stdout = run
    g = res["ppo"]
    reps = res["meta"]["reps"]
    v = g["variants"]
    assert set(v) == {"ours", "minimind"} and g["same_prompt_ids"]
    rows = g["prompts"]  # one completion per prompt
    for name, x in v.items():
        assert len(x["times_s"]) == len(x["completion_tokens"]) == len(x["rollout_s"]) == len(x["scoring_s"]) == reps
        assert all(rows <= n <= rows * g["max_new_tokens"] for n in x["completion_tokens"]), name
        check_summary(x["tokens_per_s"], [n / t for n, t in zip(x["completion_tokens"], x["times_s"])])
        # rollout, scoring (old log-probs, values, reference) and the update are parts of the step, each > 0
        assert all(0 < r and 0 < s and r + s < t for r, s, t in zip(x["rollout_s"], x["scoring_s"], x["times_s"])), name
        assert positive(x["peak_mem_mb"])
    check_ratio(g["ratios"]["ours/minimind"], v["ours"]["tokens_per_s"]["per_rep"], v["minimind"]["tokens_per_s"]["per_rep"])
    assert g["ratios"]["peak memory ours/minimind"]["median"] == pytest.approx(
        v["ours"]["peak_mem_mb"] / v["minimind"]["peak_mem_mb"])
    # MiniMind's step holds four models (an old actor besides the actor, reference and critic): more memory
    assert v["minimind"]["peak_mem_mb"] > v["ours"]["peak_mem_mb"]
    assert "ratio ours/minimind peak memory" in stdout


def test_grpo_without_trl_skips_that_variant_in_one_line(tmp_path, monkeypatch):
    import benchmarks.grpo_step as grpo_step
    from benchmarks.suite import QUICK
    monkeypatch.setattr(grpo_step, "trl_version", lambda: None)  # as when `import trl` fails
    lines = []
    g = grpo_step.bench_grpo(dict(QUICK), torch.device("cpu"), None, lines.append, str(tmp_path))
    assert set(g["variants"]) == {"ours", "minimind", "minimind_head"} and g["trl_version"] is None
    assert set(g["ratios"]) == {"ours/minimind", "rollout ours/minimind", "ours/minimind_head",
                                "rollout ours/minimind_head"}
    assert [line for line in lines if "trl" in line] == [
        "[grpo] trl variant skipped: trl is not importable (pip install -r requirements-bench.txt)"]
    table = grpo_step.grpo_table(g)
    assert "trl           skipped: trl is not importable" in table
    assert [t["target"] for t in grpo_step.grpo_targets(g)] == ["grpo step completion tokens/s: ours/minimind",
                                                               "grpo step completion tokens/s: ours/minimind_head"]


def test_targets_use_the_measured_medians(run):
    res, _ = run
    t = {row["target"]: row for row in res["targets"]}
    sft = t["sft epoch effective tokens/s: project/minimind_batching"]
    assert sft["measured"] == res["sft"]["ratios"]["project/minimind_batching"]["median"]
    assert sft["met"] == (sft["measured"] >= 2.0)
    gen = t["generation tokens/s: minimind/llama"]
    assert gen["measured"] == res["gen"]["ratios"]["minimind/llama"]["median"]


def test_interleaving_rotates_order_and_ratio_is_paired():
    calls = []
    fns = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    times = interleaved(fns, 5, torch.device("cpu"), warmup=False)
    assert all(len(v) == 5 for v in times.values())
    assert calls[:3] == ["a", "b", "c"] and calls[3:6] == ["b", "c", "a"] and calls[6:9] == ["c", "a", "b"]
    r = ratio([2.0, 4.0, 9.0], [1.0, 2.0, 3.0])
    assert r["per_rep"] == [2.0, 2.0, 3.0] and r["median"] == 2.0 and r["max"] == 3.0


@pytest.mark.parametrize("argv,msg", [(["--reps", "2"], "--reps"), (["--sections", "train,nope"], "nope")])
def test_bad_flags_one_line_exit_2(argv, msg, capsys):
    bench = load_bench()
    with pytest.raises(SystemExit) as e:
        bench.parse_args(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert msg in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_distill_step_ratios_follow_from_times_and_memory(run):
    res, stdout = run
    d = res["distill"]
    assert "[distill step]" in stdout
    v = d["variants"]
    assert set(v) == {"plain", "fused"}
    for x in v.values():
        assert len(x["times_s"]) == res["meta"]["reps"]
        check_summary(x["tokens_per_s"], [d["batch"] * d["seq_len"] / t for t in x["times_s"]])
        check_summary(x["peak_mem_mb"], x["peak_mem_mb"]["per_rep"])
    check_ratio(d["ratios"]["time fused/plain"], v["fused"]["times_s"], v["plain"]["times_s"])
    check_ratio(d["ratios"]["peak memory fused/plain"], v["fused"]["peak_mem_mb"]["per_rep"],
                v["plain"]["peak_mem_mb"]["per_rep"])
    check_ratio(d["ratios"]["peak memory floor/plain"], d["floor_peak_mem_mb"]["per_rep"],
                v["plain"]["peak_mem_mb"]["per_rep"])
    t = {row["target"]: row for row in res["targets"]}
    assert t["distill step time: fused/plain"]["measured"] == d["ratios"]["time fused/plain"]["median"]
    assert t["distill step peak memory: fused/plain"]["measured"] == d["ratios"]["peak memory fused/plain"]["median"]
