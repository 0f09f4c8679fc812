"""The demo's LoRA stage: two adapters on the DPO model, trained by the real train_lora.py.

    train_lora.py --data_path lora_identity.jsonl --lora_name lora_identity -> {out_dir}/lora/lora_identity_{dim}.pth
    train_lora.py --data_path lora_domain.jsonl   --lora_name lora_domain   -> {out_dir}/lora/lora_domain_{dim}.pth

Then the DPO model answers, greedily, with and without each adapter (eval_model.py --lora_name):
the identity questions in phrasings the identity set never uses (right = the new name and maker),
the domain facts asked in phrasings the domain set never uses, and the demo's held-out questions, to
show what the adapter leaves of what the model knew (MiniMind's issue #515). The base weights are
never written: an adapter is {out_dir}/lora/*.pth, a few hundred kilobytes.
"""
import os
import sys

from demo.common import ROOT, DemoError, family_flags, rel, say
from demo.scoring import ask_all, read_heldout
from demo.stages import run_stage

# (name, what it teaches, held-out file, what its held-out questions ask)
LORA_SETS = [
    ("identity", "a new name and maker (\"I am Lumo, from Velvik.\" / \"你好！我是米洛，来自维尔维克。\")",
     "lora_identity_heldout.jsonl",
     "who are you? in phrasings the set never uses"),
    ("domain", "facts no stage saw (eight characters' best friends and favourite cities to visit)",
     "lora_domain_heldout.jsonl", "the domain facts in phrasings the set never uses"),
]
LORA_RANK = 16


def targets(n_layers):
    """The last layer's attention output and MLP (demo/run.py's FULL notes why not every layer's)."""
    last = n_layers - 1
    return ",".join(f"{last}.{m}" for m in ("self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"))


FILES = ["lora_identity.jsonl", "lora_identity_heldout.jsonl", "lora_domain.jsonl", "lora_domain_heldout.jsonl"]


def command(args, name):
    """train_lora.py's command line for one set (the demo's sizes, its --lora_* settings)."""
    return [sys.executable, os.path.join(ROOT, "train_lora.py"),
            "--data_path", os.path.join(args.data_dir, f"lora_{name}.jsonl"), "--lora_name", f"lora_{name}",
            "--out_dir", args.out_dir, "--tokenizer_path", os.path.join(ROOT, "model"),
            "--device", args.device, "--dtype", "float32",
            "--dim", str(args.dim), "--n_layers", str(args.n_layers), "--max_seq_len", str(args.max_seq_len),
            "--epochs", str(args.lora_epochs), "--batch_size", str(args.lora_batch),
            "--learning_rate", str(args.lora_lr), "--lora_rank", str(LORA_RANK),
            "--lora_targets", targets(args.n_layers),
            "--accumulation_steps", "1", "--log_interval", "1", "--save_interval", "1000000",
            "--num_workers", "0", "--seed", str(args.seed)] \
        + (["--from_weight", "rlhf"] if family_flags(args) else [])  # MiniMind-3's script starts from full_sft


def _score(res):
    return {"right": sum(r["right"] for r in res), "total": len(res), "answers": res}


def check_files(args):
    for f in FILES:
        if not os.path.isfile(os.path.join(args.data_dir, f)):
            raise DemoError(f"{rel(os.path.join(args.data_dir, f))}: not found; --data_dir must hold the LoRA "
                            "sets too (the bundled corpus is dataset/demo; scripts/make_demo_data.py writes them)")


def run(args, env, items, base_answers, index_label="lora"):
    """Train both adapters, ask everything with and without them; returns the figures (also printed)."""
    check_files(args)
    out = {"sets": {}, "times_s": {}, "losses": {}}
    n = len(LORA_SETS)
    for i, (name, what, _, _) in enumerate(LORA_SETS, 1):
        stage = (f"lora_{name}", "train_lora.py", f"lora/lora_{name}", what)
        recs, took = run_stage(args, stage, i, env, cmd=command(args, name), log_name=f"lora_{name}",
                               header=f"\n[{index_label} {i}/{n}] LoRA on the DPO model: {what}")
        out["times_s"][f"train_{name}"], out["losses"][name] = round(took, 1), [[r["step"], r["loss"]] for r in recs]
    base = _score(base_answers)
    for name, what, held_file, asks in LORA_SETS:
        held = read_heldout(os.path.join(args.data_dir, held_file))
        if args.limit:
            held = held[:args.limit]
        adapter = f"lora_{name}"
        say(f"\n[{index_label}] {held_file} ({asks}), greedy:")
        say("\n  without the adapter (the DPO model):")
        without = ask_all(args, 2, held)
        say(f"\n  with {rel(os.path.join(args.out_dir, 'lora', f'{adapter}_{args.dim}.pth'))}:")
        with_ = ask_all(args, 2, held, lora=adapter)
        say(f"\n  the demo's held-out questions with {adapter} (without it: {base['right']}/{base['total']}):")
        kept = ask_all(args, 2, items, lora=adapter)
        out["sets"][name] = {"adapter": os.path.join(args.out_dir, "lora", f"{adapter}_{args.dim}.pth"),
                             "heldout_without": _score(without), "heldout_with": _score(with_),
                             "base_without": {k: base[k] for k in ("right", "total")}, "base_with": _score(kept)}
    say("")
    for line in summary(out):
        say("  " + line)
    return out


def summary(r):
    lines = []
    for name, s in r["sets"].items():
        w, wo, bw, bwo = s["heldout_with"], s["heldout_without"], s["base_with"], s["base_without"]
        kept = bw["right"] / bwo["right"] if bwo["right"] else float("nan")
        label = "identity hit rate" if name == "identity" else "domain held-out accuracy"
        lines.append(f"LoRA {name}: {label} {w['right']}/{w['total']} with the adapter, {wo['right']}/{wo['total']} "
                     f"without; base held-out accuracy {bw['right']}/{bw['total']} with it, {bwo['right']}/{bwo['total']} "
                     f"without ({100 * kept:.0f}% kept)")
    return lines
