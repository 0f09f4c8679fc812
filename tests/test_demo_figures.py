"""The demo's figures in README come from one file (docs/demo_figures.json, written by
`python -m demo.figures` from demo runs over several seeds) and every quote of them agrees with it."""
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from demo import figures  # noqa: E402


@pytest.fixture(scope="module")
def published():
    return figures.load()


@pytest.fixture(scope="module")
def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def section(readme, title):
    return readme.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def test_measured_over_three_seeds_and_a_repeat(published):
    seeds = [r["seed"] for r in published["runs"]]
    assert len(set(seeds)) >= 3, seeds
    assert "--rl" in published["how"]  # the GRPO figures are measured in the same runs
    assert published["repeat"]["seed"] in seeds and published["repeat"]["same_figures"] is True
    for r in published["runs"]:
        env = r["environment"]
        assert env["versions"]["torch"] and env["versions"]["transformers"] and env["threads"] >= 1, env


def test_readmes_table_is_the_files(published, readme):
    assert figures.table(published) in readme


def test_every_other_quote_agrees(published, readme):
    rng = lambda key: figures.value_range(published, key)  # noqa: E731
    quick = " ".join(section(readme, "Quickstart").split())
    assert f"**{rng('heldout_sft')} after SFT**" in quick
    reasoning = section(readme, "Reasoning (R1-style)")
    rows = {m.group(1).strip(): m.group(2).strip() for m in re.finditer(r"^\| ([^|]+) \| ([^|]+) \|$", reasoning, re.M)}
    assert rows["reason model, its answer part (every keyword, none of the distractors)"] == rng("reason_2hop")
    assert rows["the DPO model, asked the same questions directly"] == rng("dpo_2hop")
    assert rows["reason model outputs with well-formed `<think>…</think><answer>…</answer>`"] == rng("well_formed")
    assert rows["reason model thinking that states both facts of the chain"] == rng("chain_in_think")
    adaptive = section(readme, "Adaptive thinking")
    rows = {m.group(1).strip(): m.group(2).strip() for m in re.finditer(r"^\| ([^|]+) \| ([^|]+) \|$", adaptive, re.M)}
    assert rows["reason model, thinking off (`enable_thinking` false)"] == rng("thinking_off_1hop")
    assert rows["the DPO model, the same questions"] == rng("heldout_dpo")
    assert rows["reason model outputs with thinking off that still hold a think tag"] == rng("thinking_off_think")
    assert rows["reason model, thinking on: the 2-hop questions (its answer part)"] == rng("reason_2hop")
    rlaif = section(readme, "RLAIF: GRPO")
    rows = {m.group(1).strip(): (m.group(2).strip(), m.group(3).strip())
            for m in re.finditer(r"^\| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", rlaif, re.M)}
    assert rows["greedy accuracy"] == (rng("reason_2hop"), rng("grpo_2hop"))
    assert rows["of them, the 40 in wordings GRPO never saw"] == (rng("grpo_unseen_before"), rng("grpo_unseen_after"))
    assert rows["pass@4 (any of 4 samples at temperature 0.8 right)"] == (rng("grpo_pass4_before"), rng("grpo_pass4_after"))
    assert rows["well-formed tags"] == (rng("well_formed"), rng("grpo_well_formed"))
    assert rows["mean completion length, tokens"] == (rng("grpo_length_before"), rng("grpo_length_after"))
    assert f"The stage took {rng('time_grpo')} minutes" in " ".join(rlaif.split())
    runs = published["runs"]
    pairs = [(r["figures"]["reason_2hop"][0], r["figures"]["grpo_2hop"][0]) for r in runs]
    per_seed = " ".join(rlaif.split()).split("Per seed (", 1)[1].split(" points)", 1)[0]
    assert per_seed.startswith(", ".join(str(r["seed"]) for r in runs) + ")")
    for before, after in pairs:
        assert f"{before} → {after}" in per_seed and f"+{round(100 * (after - before) / 60)}" in per_seed
    ppo = section(readme, "RLAIF: PPO")
    rows = {m.group(1).strip(): (m.group(2).strip(), m.group(3).strip(), m.group(4).strip())
            for m in re.finditer(r"^\| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", ppo, re.M)}
    assert rows["greedy accuracy"] == (rng("reason_2hop"), rng("grpo_2hop"), rng("ppo_2hop"))
    assert rows["of them, the 40 in wordings neither saw"] == (rng("grpo_unseen_before"), rng("grpo_unseen_after"),
                                                                rng("ppo_unseen_after"))
    assert rows["pass@4 (any of 4 samples at temperature 0.8 right)"] == (rng("grpo_pass4_before"), rng("grpo_pass4_after"),
                                                                           rng("ppo_pass4_after"))
    assert rows["well-formed tags"] == (rng("well_formed"), rng("grpo_well_formed"), rng("ppo_well_formed"))
    assert rows["stage time, minutes"] == ("—", rng("time_grpo"), rng("time_ppo"))
    rows = {m.group(1).strip(): (m.group(2).strip(), m.group(3).strip())
            for m in re.finditer(r"^\| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", ppo, re.M)}
    assert rows["the reward model's mean score of the answers"] == (rng("ppo_chat_rm_before"), rng("ppo_chat_rm_after"))
    assert rows["answers preferred to the SFT model's by the reward model (a tie: half), %"] == ("—", rng("ppo_chat_win_rm"))
    assert rows["answers preferred to the SFT model's by the keyword check (right beats wrong), %"] == \
        ("—", rng("ppo_chat_win_keyword"))
    assert rows["right by the keyword check"] == (rng("heldout_sft"), rng("ppo_chat_right"))
    flat = " ".join(ppo.split())
    assert f"{rng('time_ppo_chat')} minutes with the scoring" in flat
    assert f"ranks only {rng('reward_heldout')} held-out pairs" in flat
    for r in runs:
        f = r["figures"]
        assert f"{f['ppo_chat_rm_before'][0]:.2f} → {f['ppo_chat_rm_after'][0]:.2f}" in flat
        assert f"{f['heldout_sft'][0]} → {f['ppo_chat_right'][0]}" in flat
    reward = section(readme, "Reward model")
    rows = {m.group(1).strip(): m.group(2).strip() for m in re.finditer(r"^\| ([^|]+) \| ([^|]+) \|$", reward, re.M)}
    assert rows["the reward model (`train_reward.py`)"] == rng("reward_heldout")
    assert rows["the DPO model's implicit reward, β·(log π_DPO − log π_SFT)"] == rng("dpo_implicit_heldout")
    lora = " ".join(section(readme, "LoRA").split())  # a quote may wrap
    assert f"identity adapter answered {rng('lora_identity')} held-out phrasings" in lora
    assert f"domain adapter {rng('lora_domain')} of the domain questions" in lora


def test_no_single_seed_figure_is_left_in_the_prose(published, readme):
    """One seed's figures, quoted as the demo's, are what a fresh machine did not reproduce: every
    "N/56 after SFT" or "after DPO" in README is the range over the seeds."""
    for key, phrase in (("heldout_sft", "after SFT"), ("heldout_dpo", "after DPO")):
        quotes = re.findall(rf"([\d–]+/56)\**\s+{phrase}", readme)
        assert quotes and set(quotes) == {figures.value_range(published, key)}, (phrase, quotes)


def test_the_range_renders_as_quoted():
    pub = {"runs": [{"figures": {"x": [51, 56]}}, {"figures": {"x": [54, 56]}}, {"figures": {"x": [53, 56]}}]}
    assert figures.value_range(pub, "x") == "51–54/56"
    pub = {"runs": [{"figures": {"x": [20, 20]}}, {"figures": {"x": [20, 20]}}]}
    assert figures.value_range(pub, "x") == "20/20"


def test_the_minimind3_familys_figures_sit_beside_minimind2s(published, readme):
    """scripts/demo.py --model_family minimind3, over three seeds and a repeat, in README's side-by-side table."""
    m3 = figures.load(family="minimind3")
    seeds = [r["seed"] for r in m3["runs"]]
    assert len(set(seeds)) >= 3 and {r["model_family"] for r in m3["runs"]} == {"minimind3"}
    assert "--model_family minimind3 --rl" in m3["how"]
    assert m3["repeat"]["seed"] in seeds and m3["repeat"]["same_figures"] is True
    assert figures.family_table(published, m3) in readme
    assert figures.family_table(published, m3).splitlines()[0] == \
        "| figure | MiniMind2, seeds 1337, 1, 2 | MiniMind-3, seeds " + ", ".join(map(str, seeds)) + " |"


def test_the_family_comparisons_per_seed_quote_the_files(published, readme):
    m3 = figures.load(family="minimind3")
    assert [r["seed"] for r in m3["runs"]] == [r["seed"] for r in published["runs"]]
    flat = " ".join(section(readme, "What is the same as MiniMind2, and what is better").split())

    def seeds(pub, key):
        return ", ".join(str(r["figures"][key][0]) for r in pub["runs"])
    for key in ("heldout_sft", "reason_2hop", "grpo_2hop"):
        assert f"{seeds(m3, key)} against {seeds(published, key)}" in flat, key
    f = {r["seed"]: r["figures"] for r in m3["runs"]}
    assert f"seed 1337 ({f[1337]['reason_2hop'][0]} → {f[1337]['ppo_2hop'][0]} of 60)" in flat
    assert f"right answers {f[1]['heldout_sft'][0]} → {f[1]['ppo_chat_right'][0]} of 56" in flat
