"""The demo's published figures: measured over several seeds, kept in one file, quoted from it.

    python -m demo.figures out/s1337 out/s1 out/s2 --repeat out/s1337b > docs/demo_figures.json
    python -m demo.figures out/m3_1337 out/m3_1 out/m3_2 --repeat ... > docs/demo_figures_minimind3.json
    python -m demo.figures --compare docs/demo_figures.json docs/demo_figures_minimind3.json

reads each run's demo_results.json (scripts/demo.py --rl --seed S --out_dir DIR) and writes the file
README quotes. `table()` renders the figures as README's table of them; tests/test_demo_figures.py
checks that every quote in README agrees with the file. One seed's figure is not the demo's: float
summation order (BLAS kernels, thread counts, library versions) changes the training trajectory from
one machine to another, so README gives the range over the seeds and says where it was measured.
"""
import argparse
import json
import os
import sys

# (key, what README calls it, how to read it from one run's demo_results.json)
FIGURES = [
    ("heldout_sft", "held-out accuracy after SFT", lambda r: _right(r["heldout"]["SFT"])),
    ("heldout_sft_en", "of them in English", lambda r: _right(r["heldout"]["SFT"], "en")),
    ("heldout_sft_zh", "of them in Chinese", lambda r: _right(r["heldout"]["SFT"], "zh")),
    ("heldout_dpo", "held-out accuracy after DPO", lambda r: _right(r["heldout"]["DPO"])),
    ("dpo_reward_accuracy", "DPO reward accuracy (training pairs)", lambda r: (round(r["dpo_reward_accuracy"], 2), None)),
    ("reason_2hop", "2-hop held-out, reason model", lambda r: _count(r["reasoning"]["reason"], "right")),
    ("dpo_2hop", "2-hop held-out, DPO model asked directly", lambda r: _count(r["reasoning"]["dpo_direct"], "right")),
    ("well_formed", "reason outputs with well-formed tags", lambda r: _count(r["reasoning"]["well_formed"], "count")),
    ("chain_in_think", "reason thinking that states both facts", lambda r: _count(r["reasoning"]["chain_in_think"], "count")),
    ("thinking_off_1hop", "1-hop held-out, reason model with thinking off", lambda r: _count(r["reasoning"]["thinking_off"], "right")),
    ("thinking_off_think", "of its outputs, still holding a think tag", lambda r: _count(r["reasoning"]["thinking_off"], "think_block")),
    ("lora_identity", "LoRA identity adapter, held-out phrasings", lambda r: _lora(r, "identity", "heldout_with")),
    ("lora_domain", "LoRA domain adapter, held-out questions", lambda r: _lora(r, "domain", "heldout_with")),
    ("grpo_2hop", "2-hop held-out, after GRPO (`--rl`)", lambda r: _grpo(r, "after", "greedy", "right")),
    ("grpo_unseen_before", "of them in wordings GRPO never saw, before", lambda r: _grpo(r, "before", "greedy_unseen_wording", "right")),
    ("grpo_unseen_after", "of them in wordings GRPO never saw, after", lambda r: _grpo(r, "after", "greedy_unseen_wording", "right")),
    ("grpo_pass4_before", "2-hop pass@4 (T 0.8), reason model", lambda r: _grpo(r, "before", "pass_at_k", "count")),
    ("grpo_pass4_after", "2-hop pass@4 (T 0.8), after GRPO", lambda r: _grpo(r, "after", "pass_at_k", "count")),
    ("grpo_well_formed", "well-formed tags after GRPO", lambda r: _grpo(r, "after", "well_formed", "count")),
    ("grpo_length_before", "mean completion tokens, reason model", lambda r: (r["grpo"]["before"]["mean_length"], None)),
    ("grpo_length_after", "mean completion tokens, after GRPO", lambda r: (r["grpo"]["after"]["mean_length"], None)),
    ("ppo_2hop", "2-hop held-out, after PPO (`--rl`)", lambda r: _rl(r, "ppo", "after", "greedy", "right")),
    ("ppo_unseen_after", "of them in wordings PPO never saw, after", lambda r: _rl(r, "ppo", "after", "greedy_unseen_wording", "right")),
    ("ppo_pass4_after", "2-hop pass@4 (T 0.8), after PPO", lambda r: _rl(r, "ppo", "after", "pass_at_k", "count")),
    ("ppo_well_formed", "well-formed tags after PPO", lambda r: _rl(r, "ppo", "after", "well_formed", "count")),
    ("ppo_length_after", "mean completion tokens, after PPO", lambda r: (r["ppo"]["after"]["mean_length"], None)),
    ("reward_heldout", "reward model: held-out pairs ranked right", lambda r: _count(r["reward"]["reward_model"], "right")),
    ("dpo_implicit_heldout", "DPO's implicit reward: the same pairs", lambda r: _count(r["reward"]["dpo_implicit"], "right")),
    ("ppo_chat_rm_before", "reward-model score of the held-out answers, SFT model",
     lambda r: (round(r["ppo_chat"]["heldout_rm_score"]["before"], 2), None)),
    ("ppo_chat_rm_after", "reward-model score of the held-out answers, after PPO with it (`--rl`)",
     lambda r: (round(r["ppo_chat"]["heldout_rm_score"]["after"], 2), None)),
    ("ppo_chat_win_rm", "PPO's held-out answers preferred to SFT's by the reward model, %",
     lambda r: (round(100 * r["ppo_chat"]["win_rate_reward_model"]), None)),
    ("ppo_chat_win_keyword", "PPO's held-out answers preferred by the keyword check, %",
     lambda r: (round(100 * r["ppo_chat"]["win_rate_keyword"]), None)),
    ("ppo_chat_right", "held-out accuracy after PPO with the reward model",
     lambda r: (r["ppo_chat"]["right"]["after"], r["ppo_chat"]["right"]["total"])),
    ("time_ppo", "PPO stage (training and scoring), minutes", lambda r: (round(r["times_s"]["ppo"] / 60, 1), None)),
    ("time_ppo_chat", "PPO with the reward model (training and scoring), minutes",
     lambda r: (round(r["times_s"]["ppo_chat"] / 60, 1), None)),
    ("time_grpo", "GRPO stage (training and scoring), minutes", lambda r: (round(r["times_s"]["grpo"] / 60, 1), None)),
    ("time_total", "whole demo with `--rl`, minutes", lambda r: (round(r["times_s"]["total"] / 60, 1), None)),
]


def _right(h, lang=None):
    answers = [a for a in h["answers"] if lang is None or a.get("lang") == lang]
    return sum(a["right"] for a in answers), len(answers)


def _count(d, key):
    return d[key], d["total"]


def _lora(r, name, key):
    s = r["lora"]["sets"][name][key]
    return s["right"], s["total"]


def _grpo(r, which, key, field):
    return _rl(r, "grpo", which, key, field)


def _rl(r, stage, which, key, field):
    d = r[stage][which][key]
    return d[field], d["total"]


def read_run(folder):
    with open(os.path.join(folder, "demo_results.json"), encoding="utf-8") as f:
        r = json.load(f)
    return {"seed": r["config"]["seed"], "model_family": r["config"].get("model_family", "minimind2"),
            "environment": r.get("environment"),
            "figures": {key: list(get(r)) for key, _, get in FIGURES}}


def collect(folders, repeat=None):
    runs = [read_run(f) for f in folders]
    families = {r["model_family"] for r in runs}
    if len(families) > 1:
        raise SystemExit(f"error: the runs are of different model families ({', '.join(sorted(families))})")
    flag = "" if families == {"minimind2"} else f" --model_family {families.pop()}"
    out = {"how": f"python scripts/demo.py{flag} --rl --seed S from a fresh clone, one or two runs at a time with one "
                  "thread each, on a 2-core machine",
           "runs": runs}
    if repeat:
        again = read_run(repeat)
        first = next(r for r in runs if r["seed"] == again["seed"])
        same = {k: first["figures"][k] == again["figures"][k] for k, _, _ in FIGURES if not k.startswith("time")}
        out["repeat"] = {"seed": again["seed"], "same_figures": all(same.values()), "figures": again["figures"]}
    return out


def value_range(published, key):
    """'51–54/56' (or '54/56' when every seed agrees; '0.95–0.97' for a number without a total)."""
    vals = [r["figures"][key] for r in published["runs"]]
    lo, hi = min(v[0] for v in vals), max(v[0] for v in vals)
    total = vals[0][1]
    span = f"{lo}" if lo == hi else f"{lo}–{hi}"
    return span + (f"/{total}" if total is not None else "")


def table(published):
    """README's table of the figures: the range over the seeds, then each seed's value."""
    seeds = [r["seed"] for r in published["runs"]]
    rows = [f"| figure | seeds {', '.join(map(str, seeds))} | " + " | ".join(f"seed {s}" for s in seeds) + " |",
            "|---|---|" + "---|" * len(seeds)]
    for key, label, _ in FIGURES:
        per = [r["figures"][key] for r in published["runs"]]
        cells = [f"{v}/{t}" if t is not None else f"{v}" for v, t in per]
        rows.append(f"| {label} | {value_range(published, key)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def family_table(*published):
    """README's table of the families side by side, at the demo's width and epochs: each one's range over its seeds."""
    from trainer.checkpoint import FAMILY_NAMES
    head = [f"{FAMILY_NAMES[p['runs'][0].get('model_family', 'minimind2')]}, seeds "
            + ", ".join(str(r["seed"]) for r in p["runs"]) for p in published]
    rows = ["| figure | " + " | ".join(head) + " |", "|---|" + "---|" * len(published)]
    for key, label, _ in FIGURES:
        rows.append(f"| {label} | " + " | ".join(value_range(p, key) for p in published) + " |")
    return "\n".join(rows)


def load(path=None, family="minimind2"):
    path = path or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                                "demo_figures.json" if family == "minimind2" else f"demo_figures_{family}.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m demo.figures", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="demo --out_dir folders, one per seed (with --compare: figure files)")
    p.add_argument("--compare", action="store_true",
                   help="print README's table of the families side by side from the figure files given")
    p.add_argument("--repeat", default=None, help="a second run of one of the seeds, to show it repeats")
    p.add_argument("--table", action="store_true", help="print README's table instead of the JSON")
    a = p.parse_args(argv)
    if a.compare:
        print(family_table(*(load(path) for path in a.runs)))
        return 0
    published = collect(a.runs, a.repeat)
    print(table(published) if a.table else json.dumps(published, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
