"""The demo's --distill stage (`python scripts/demo.py --distill`): its SFT model teaches a student half its width.

After the demo's own stages, a student (--student_dim, default --dim / 2, same layers) is pretrained
on the same text with the same settings, then trained twice from that same start, for the same
steps (the SFT epochs, batch and learning rate), on the same SFT conversations:

    train_full_sft.py       -> {out_dir}/student/full_sft_{student_dim}.pth   plain SFT (the data's tokens)
    train_distillation.py   -> {out_dir}/student/full_dist_{student_dim}.pth  the teacher's distributions
                               (alpha 0, T 1: KL to {out_dir}/full_sft_{dim}.pth only)

Both are scored like the teacher: held-out accuracy (greedy answers to heldout.jsonl), and their
agreement with the teacher (the share of answer tokens where the student's top-1 token is the
teacher's) with the KL to it, on the held-out questions with their reference answers and on the SFT
conversations. All of it goes to demo_results.json under "distill".
"""
import copy
import json
import os

from demo.common import ROOT, DemoError, rel, say
from demo.scoring import ask_all
from demo.stages import run_stage, stage_command

STUDENT_STAGES = [
    ("pretrain", "train_pretrain.py", "pretrain", "Student pretraining: the same text and settings, half the width"),
    ("sft", "train_full_sft.py", "full_sft", "Student SFT: plain cross-entropy on the answers (the baseline)"),
    ("sft", "train_distillation.py", "full_dist",
     "Student distillation: the same steps from the same start, learning the SFT teacher's distributions"),
]


def student_args(args):
    s = copy.copy(args)
    s.dim = args.student_dim or args.dim // 2
    s.out_dir = os.path.join(args.out_dir, "student")
    return s


def heldout_conversations(items, path):
    """The held-out questions with their reference answers, as SFT conversations (for agreement and KL)."""
    with open(path, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps({"conversations": [{"role": "user", "content": it["question"]},
                                                  {"role": "assistant", "content": it["answer"]}]},
                               ensure_ascii=False) + "\n")
    return path


def teacher_agreement(args, sargs, data_paths):
    """{student weights: {data: {"agreement", "kl", "ce"}}} against the SFT teacher, in this process."""
    import torch

    from dataset.lm_dataset import SFTDataset, pad_collate
    from model import MiniMindConfig, MiniMindForCausalLM
    from trainer.args import load_tokenizer
    from trainer.checkpoint import load_weights, weight_path
    from trainer.stages.distill import DistillStage, Teacher
    torch.set_num_threads(args.threads)
    family = getattr(args, "model_family", "minimind2")
    tok = load_tokenizer(os.path.join(ROOT, "model"), family)

    def load(dim, path):
        m = MiniMindForCausalLM(MiniMindConfig(hidden_size=dim, num_hidden_layers=args.n_layers, model_family=family))
        return load_weights(m, path).eval()
    tpath = weight_path(args.out_dir, "full_sft", args.dim)
    stage = DistillStage(Teacher(load(args.dim, tpath), tpath, {}))
    out = {}
    for name in ("full_sft", "full_dist"):
        student = load(sargs.dim, weight_path(sargs.out_dir, name, sargs.dim))
        out[name] = {}
        for label, path in data_paths.items():
            ds = SFTDataset(path, tok, max_length=args.max_seq_len, verbose=False)
            collate = pad_collate(tok.pad_token_id)
            sums = {k: 0.0 for k in stage.eval_keys}
            with torch.no_grad():
                for i in range(0, len(ds), 32):
                    batch = collate([ds[j] for j in range(i, min(i + 32, len(ds)))])
                    for k, v in stage.eval_sums(student, batch).items():
                        sums[k] += float(v)
            m = stage.eval_metrics(sums)
            out[name][label] = {"agreement": m["val/agreement"], "kl": m["val/kl"], "ce": m["val/ce"],
                                "tokens": int(sums["tokens"])}
    return out


def run(args, env, items):
    """The student stages, then the scores; returns the figures (also printed)."""
    sargs = student_args(args)
    if sargs.dim % 8:
        raise DemoError(f"--student_dim {sargs.dim}: expected a multiple of 8 (8 attention heads)")
    os.makedirs(os.path.join(sargs.out_dir, "logs"), exist_ok=True)
    teacher = os.path.join(args.out_dir, f"full_sft_{args.dim}.pth")
    if not os.path.exists(teacher):
        raise DemoError(f"{rel(teacher)}: the teacher (the demo's SFT model) is not there; run the demo "
                             "from an earlier stage")
    logs, times = {}, {}
    n = len(STUDENT_STAGES)
    for i, stage in enumerate(STUDENT_STAGES, 1):
        cmd = stage_command(sargs, stage)
        key = stage[2]
        if stage[1] == "train_distillation.py":
            cmd += ["--from_weight", "pretrain", "--teacher_weight", teacher, "--teacher_dim", str(args.dim),
                    "--teacher_n_layers", str(args.n_layers), "--alpha", "0", "--temperature", "1"]
        logs[key], times[key] = run_stage(sargs, stage, i, env, cmd=cmd, log_name=key,
                                          header=f"\n[distill {i}/{n}] {stage[3]} (--dim {sargs.dim})")
    say(f"\n[distill] Held-out questions: the plain-SFT student and the distilled student (--dim {sargs.dim})")
    answers = {}
    for label, weight in (("plain SFT", "full_sft"), ("distilled", "full_dist")):
        say(f"\n  {label} ({rel(os.path.join(sargs.out_dir, f'{weight}_{sargs.dim}.pth'))}):")
        answers[weight] = ask_all(sargs, 1, items, weight=weight)
    conv = heldout_conversations(items, os.path.join(sargs.out_dir, "heldout_conversations.jsonl"))
    agree = teacher_agreement(args, sargs, {"heldout": conv, "sft": os.path.join(args.data_dir, "sft.jsonl")})
    steps = {k: (recs[-1]["step"] if recs else None) for k, recs in logs.items()}
    res = {"student_dim": sargs.dim, "n_layers": args.n_layers, "teacher": teacher,
           "params": {"teacher": _params(args.dim, args.n_layers, args.model_family),
                      "student": _params(sargs.dim, args.n_layers, args.model_family)},
           "steps": {"sft": steps["full_sft"], "distill": steps["full_dist"]},
           "times_s": {k: round(v, 1) for k, v in times.items()},
           "losses": {k: [[r["step"], r["loss"]] for r in recs] for k, recs in logs.items()},
           "heldout": {k: {"right": sum(r["right"] for r in v), "total": len(v), "answers": v}
                       for k, v in answers.items()},
           "agreement": agree}
    say("")
    for line in summary(res):
        say("  " + line)
    return res


def _params(dim, n_layers, family="minimind2"):
    from model import MiniMindConfig, MiniMindForCausalLM
    m = MiniMindForCausalLM(MiniMindConfig(hidden_size=dim, num_hidden_layers=n_layers, model_family=family))
    return sum(p.numel() for p in m.parameters())


def summary(r):
    p = r["params"]
    lines = [f"distillation: student --dim {r['student_dim']} ({p['student'] / 1e6:.2f}M parameters, "
             f"teacher {p['teacher'] / 1e6:.2f}M), {r['steps']['sft']} SFT steps vs {r['steps']['distill']} "
             "distillation steps from the same pretrained student"]
    for k, label in (("full_sft", "plain SFT"), ("full_dist", "distilled")):
        h, a = r["heldout"][k], r["agreement"][k]
        lines.append(f"  {label:<9} held-out accuracy {h['right']}/{h['total']}; agreement with the teacher "
                     f"{a['heldout']['agreement']:.3f} on the held-out answers, {a['sft']['agreement']:.3f} on the SFT "
                     f"data (KL {a['heldout']['kl']:.3f} / {a['sft']['kl']:.3f})")
    return lines
