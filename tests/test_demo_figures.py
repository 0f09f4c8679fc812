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
