"""The demo's tool stages (--tools): the chat model learns to call calculate_math, then agentic RL raises how
often the answer is right, by the real scripts.

    train_pretrain.py x 3  --from_weight full_sft   the number texts (demo/tool_recipe.py) -> tool_text_{dim}.pth
    train_full_sft.py      --from_weight tool_text  tool_sft.jsonl                          -> tool_sft_{dim}.pth
    train_agent.py         --from_weight tool_sft   agent_rl.jsonl, --reward_funcs gt      -> agent_{dim}.pth

The task is 'Compute "37 * 58".': the model must call calculate_math with the expression, read the result and
repeat it. A 1M-parameter model can do neither sum nor product itself, and its pretraining text has no digits:
it first reads text in which numbers are repeated (demo/tool_recipe.py says why each part is there). Tool SFT
shows every addition and only a few multiplications, whose 3-4 digit results the model then copies badly;
agentic RL rewards the trajectories whose final answer holds the result ("gt").

Scored on 60 held-out questions (30 additions, 30 multiplications; number pairs no training set has), greedy,
through train_agent.py's own multi-turn rollout: right with the tool offered, right without it (the same
question, no tool: the model alone), and the share of first calls that parse and run without an error, after
tool SFT and after agentic RL.

Not yet what it is for: on seeds 1337 and 2 tool SFT copies the numbers badly or not at all, and RL then has
little or nothing to raise (README's Agentic RL; the runs are in demo/tool_sets.py's docstring).
"""
import os
import random
import sys

from demo.common import ROOT, rel, say
from demo.scoring import load_checkpoint
from demo.stages import run_stage

# The number texts in the order that taught the copy (demo/tool_sets.py's docstring, stops 39-41): (set, the
# checkpoint it writes, tokens per row, batch, peak learning rate, epochs, what it teaches). Shuffled into one run
# they taught nothing; with one epoch of the preamble rows, tool SFT copied on one draw of three (stop 41).
TEXT_PHASES = [
    ("numbers", "tool_numbers", 128, 16, 2e-3, 1, "numbers repeated: the digits come apart, the model copies them"),
    ("preamble", "tool_preamble", 512, 8, 1e-3, 2, "the same after the tool template: copying ~300 tokens into a row"),
    ("calls", "tool_text", 128, 16, 1e-3, 1, "calls written out as text: the number moves into the call and back"),
]
# Tool SFT and agentic RL as measured there (stop 40): 102 SFT steps of 8 at 1e-3; 48 RL steps of 4 prompts x 8
# trajectories at 2e-4, beta 0.02, temperature 1.0, CISPO, 64 new tokens a turn.
SFT_BATCH, SFT_LR = 8, 1e-3
RL_BATCH, RL_LR, NUM_GENERATIONS, BETA, TEMPERATURE, RL_MAX_GEN = 4, 2e-4, 8, 0.02, 1.0, 64
ROW = 512            # the tool prompts' template alone is ~230 tokens
EVAL_MAX_GEN = 128   # new tokens per turn when scoring


def _common(args, data, seq_len, epochs, batch, lr):
    return ["--data_path", data, "--out_dir", args.out_dir, "--tokenizer_path", os.path.join(ROOT, "model"),
            "--device", args.device, "--dtype", "float32", "--dim", str(args.dim), "--n_layers", str(args.n_layers),
            "--max_seq_len", str(seq_len), "--epochs", str(epochs), "--batch_size", str(batch),
            "--learning_rate", str(lr), "--accumulation_steps", "1", "--log_interval", "1",
            "--save_interval", "1000000", "--num_workers", "0", "--seed", str(args.seed)]


def commands(args, paths):
    """[(stage tuple, command)] in order: the number texts, tool SFT, agentic RL."""
    py = sys.executable
    out, before = [], "full_sft"
    for name, save, seq_len, batch, lr, epochs, what in TEXT_PHASES:
        out.append(((save, "train_pretrain.py", save, f"number text: {what}"),
                    [py, os.path.join(ROOT, "train_pretrain.py")] + _common(args, paths[name], seq_len, epochs, batch,
                                                                            lr)
                    + ["--from_weight", before, "--save_weight", save, "--warmup_iters", "20"]))
        before = save
    return out + [
        (("tool_sft", "train_full_sft.py", "tool_sft", "tool SFT: calling calculate_math and repeating its result"),
         [py, os.path.join(ROOT, "train_full_sft.py")] + _common(args, paths["tool_sft"], ROW, 1, SFT_BATCH, SFT_LR)
         + ["--from_weight", before, "--save_weight", "tool_sft"]),
        (("agent", "train_agent.py", "agent", "agentic RL: rewarded when the final answer holds the tool's result"),
         [py, os.path.join(ROOT, "train_agent.py")] + _common(args, paths["agent_rl"], ROW, 1, RL_BATCH, RL_LR)
         + ["--from_weight", "tool_sft", "--save_weight", "agent", "--reward_funcs", "gt",
            "--num_generations", str(NUM_GENERATIONS), "--beta", str(BETA), "--temperature", str(TEMPERATURE),
            "--max_gen_len", str(RL_MAX_GEN), "--thinking_ratio", "1"]),
    ]


def write_sets(args):
    """The recipe's sets for this seed, in {out_dir}/tool_data: ({name: path}, the held-out questions)."""
    from transformers import AutoTokenizer
    from demo.tool_recipe import SIZES, make_recipe_sets, write_recipe_sets
    tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "model"))
    sets = make_recipe_sets(random.Random(args.seed), tok,
                            {k: max(1, round(v * args.tool_scale)) for k, v in SIZES.items()})
    return write_recipe_sets(sets, os.path.join(args.out_dir, "tool_data")), sets["heldout"]


def score(args, weight, items):
    """Greedy trajectories of the held-out questions with the tool offered and without it:
    {"with_tool", "without_tool": {"right", "total", "by_task"}, "well_formed": {"count", "total"},
    "answers": with the tool, each question's calls and last generation}."""
    import contextlib
    import torch
    from demo.tool_recipe import CALC_TOOLS, SYSTEM
    from model.tools import ToolRegistry
    from trainer.rl.agent import multi_turn_rollout
    from trainer.rl.rollout import TorchRollout
    net, tok = load_checkpoint(args, weight)
    engine = TorchRollout(net, tok, contextlib.nullcontext)
    out = {}
    for offered in (True, False):
        system = {"role": "system", "content": SYSTEM, **({"tools": CALC_TOOLS} if offered else {})}
        prompts = [{"messages": [system, {"role": "user", "content": it["question"]}]} for it in items]
        with torch.no_grad():
            _, trajs = multi_turn_rollout(engine, tok, prompts, 1, ToolRegistry(), 3, EVAL_MAX_GEN, 0.0, 1.0,
                                          thinking_ratio=1.0, rng=random.Random(0))
        # right: the last generation, an answer after the tool's result (or the model's own), holds the result
        hits = [bool(t.turns) and it["result"] in t.turns[-1] and (not offered or (t.calls and len(t.turns) > 1))
                for it, t in zip(items, trajs)]
        by_task = {task: f"{sum(h for h, it in zip(hits, items) if it['task'] == task)}/"
                         f"{sum(it['task'] == task for it in items)}" for task in sorted({it["task"] for it in items})}
        out["with_tool" if offered else "without_tool"] = {"right": sum(hits), "total": len(items), "by_task": by_task}
        if offered:
            out["well_formed"] = {"count": sum(bool(t.calls) and bool(t.calls[0].name) and not t.calls[0].failed
                                            for t in trajs),
                                  "total": len(items)}
            out["answers"] = [{"question": it["question"], "result": it["result"],
                               "calls": [c.shown() for c in t.calls], "answer": t.turns[-1] if t.turns else "",
                               "right": h}
                              for it, t, h in zip(items, trajs, hits)]
    return out


def run(args, env):
    """Write the sets, train the three stages, score tool SFT and agentic RL; returns (figures, {log: records})."""
    paths, items = write_sets(args)
    say(f"\n[tools] the recipe's sets for seed {args.seed}: {rel(os.path.join(args.out_dir, 'tool_data'))}/")
    logs, times = {}, {}
    figures = {}
    for stage, cmd in commands(args, paths):
        name = stage[0]
        logs[name], times[name] = run_stage(args, stage, 1, env, cmd=cmd,
                                            log_name=name, header=f"\n[tools] {stage[3]}")
        if name in ("tool_sft", "agent"):
            say(f"\n[tools] scoring {rel(os.path.join(args.out_dir, f'{name}_{args.dim}.pth'))} on the "
                f"{len(items)} held-out questions, with the tool and without")
            figures[name] = score(args, name, items)
            say("  " + line_of(name, figures[name]))
    rewarded = [r for r in logs["agent"] if "rewards/gt/mean" in r]
    k = min(10, max(1, len(rewarded) // 5))
    return {"sft": figures["tool_sft"], "agent": figures["agent"],
            "times_s": {k_: round(v, 1) for k_, v in times.items()}, "steps": {k_: len(v) for k_, v in logs.items()},
            "train_reward": {"first": round(sum(r["rewards/gt/mean"] for r in rewarded[:k]) / k, 3),
                             "last": round(sum(r["rewards/gt/mean"] for r in rewarded[-k:]) / k, 3),
                             "steps_averaged": k} if rewarded else None}, logs


def line_of(name, f):
    w, n = f["with_tool"], f["without_tool"]
    return (f"{'tool SFT' if name == 'tool_sft' else 'agentic RL'}: right with the tool {w['right']}/{w['total']} "
            f"({', '.join(f'{t} {v}' for t, v in w['by_task'].items())}), without it {n['right']}/{n['total']}, "
            f"first calls well formed {f['well_formed']['count']}/{f['well_formed']['total']}")


def summary(r):
    s, a = r["sft"], r["agent"]
    w = lambda f: f"{f['with_tool']['right']}/{f['with_tool']['total']}"  # noqa: E731
    lines = [f"tools: held-out questions right with the tool {w(s)} (tool SFT) -> {w(a)} (agentic RL); "
             f"without it {s['without_tool']['right']} -> {a['without_tool']['right']}; first calls well formed "
             f"{s['well_formed']['count']} -> {a['well_formed']['count']} of {s['well_formed']['total']}"]
    if r["train_reward"]:
        t = r["train_reward"]
        lines.append(f"tools: agentic RL training reward (gt) {t['first']:.2f} -> {t['last']:.2f} (means of the first "
                     f"and last {t['steps_averaged']} of {r['steps']['agent']} steps)")
    return lines
