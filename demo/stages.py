"""The demo's training stages: the scripts they run and their command lines, running one, reusing an earlier run's."""
import os
import signal
import subprocess
import sys
import threading
import time

from demo.common import ROOT, DemoError, family_flags, fmt_time, rel, say
from demo.logs import TOTAL_RE, loss_story, parse_log, parse_step

# (name, script, checkpoint it writes, what it does) in pipeline order.
STAGES = [
    ("pretrain", "train_pretrain.py", "pretrain", "Pretraining: next-token prediction on the world's facts as prose"),
    ("sft", "train_full_sft.py", "full_sft", "SFT: learning to answer questions (loss on the answers only)"),
    ("dpo", "train_dpo.py", "rlhf", "DPO: preferring right, polite answers over wrong or rude ones"),
    ("reason", "train_distill_reason.py", "reason",
     "Reasoning: 2-hop questions answered as <think> facts </think><answer> conclusion </answer>"),
]
STAGE_NAMES = [s[0] for s in STAGES] + ["chat"]

# With --model_family minimind3 a script also takes MiniMind-3's own defaults for what the demo leaves unsaid;
# these keep the MiniMind2 demo's: DPO writes rlhf_*, and SFT leaves the demo's conversations as they are
# (MiniMind-3's random system prompts and empty-think dropping are for its own data; 1.0 keeps every block).
FAMILY_KEEP = {"sft": ["--add_system_ratio", "0", "--empty_think_ratio", "1"], "dpo": ["--save_weight", "rlhf"]}


def stage_command(args, stage):
    """The real script's command line for one stage (what the README tells a user to run)."""
    name, script, save, _ = stage
    d = args.data_dir
    data = {"pretrain": "pretrain.jsonl", "sft": "sft.jsonl", "dpo": "dpo.jsonl", "reason": "reason.jsonl"}[name]
    cmd = [sys.executable, os.path.join(ROOT, script),
           "--data_path", os.path.join(d, data), "--out_dir", args.out_dir,
           "--tokenizer_path", os.path.join(ROOT, "model"),
           "--device", args.device, "--dtype", "float32",
           "--dim", str(args.dim), "--n_layers", str(args.n_layers), "--max_seq_len", str(args.max_seq_len),
           "--epochs", str(getattr(args, f"{name}_epochs")),
           "--batch_size", str(getattr(args, f"{name}_batch")),
           "--learning_rate", str(getattr(args, f"{name}_lr")),
           "--accumulation_steps", "1", "--log_interval", "1", "--save_interval", "1000000",
           "--num_workers", "0", "--seed", str(args.seed)]
    if name == "pretrain":
        # a short warmup keeps the high learning rate of a fresh tiny model from diverging early
        cmd += ["--warmup_iters", "20"]
    if name == "dpo":
        cmd += ["--beta", str(args.beta)]
    if name == "reason":
        cmd += ["--empty_think_ratio", str(args.empty_think_ratio)]
    if family_flags(args):
        cmd += FAMILY_KEEP.get(name, [])
    return cmd


def show_command(cmd):
    parts = ["python", rel(cmd[1])] + [rel(c) if os.path.isabs(c) else c for c in cmd[2:]]
    return " ".join(parts)


def run_stage(args, stage, index, env, cmd=None, log_name=None, header=None):
    """Run one training script, echo a readable part of its log, keep all of it; returns records."""
    name, script, save, what = stage
    cmd = cmd or stage_command(args, stage)
    cmd = cmd[:2] + family_flags(args) + cmd[2:]
    say(header or f"\n[{index}/{len(STAGES) + 1}] {what}")
    say(f"  $ {show_command(cmd)}")
    log_path = os.path.join(args.out_dir, "logs", f"{log_name or name}.log")
    t0 = time.time()
    lines, err_lines = [], []
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, encoding="utf-8", errors="replace", bufsize=1)

    def pump_stderr():
        # warnings and data summaries pass through as they come; a script's one-line user error
        # is held back and becomes the demo's own one-line error below
        for line in proc.stderr:
            err_lines.append(line.rstrip("\n"))
            if not line.startswith("error: "):
                sys.stderr.write("  " + line)
                sys.stderr.flush()

    t = threading.Thread(target=pump_stderr, daemon=True)
    t.start()
    shown_every = 1
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            for line in proc.stdout:
                line = line.rstrip("\n")
                lines.append(line)
                log.write(line + "\n")
                rec = parse_step(line)
                if rec is None:
                    m = TOTAL_RE.search(line)
                    if m:
                        shown_every = max(1, int(m.group(1)) // 12)  # about a dozen progress lines per stage
                    say("  " + line)
                elif rec["step"] % shown_every == 0 or rec["step"] == rec["total"]:
                    say("  " + line)
        code = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: do not leave a training process behind
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    t.join(timeout=5)
    if code != 0:
        where = f"; its log is {rel(log_path)}"
        if code == 2 and err_lines:
            raise DemoError(f"{script} stopped: {err_lines[-1].removeprefix('error: ')}{where}", 2)
        if code in (130, -signal.SIGINT):
            raise KeyboardInterrupt
        raise DemoError(f"{script} failed with exit code {code} (see its output above){where}", 1)
    records = parse_log(lines)
    if len(records) < 1:
        raise DemoError(f"{script}: found no 'epoch E/N step S/T loss L' lines in its output "
                        f"({rel(log_path)}); the demo cannot read its losses", 1)
    took = time.time() - t0
    say(f"  done in {fmt_time(took)}: {loss_story(records)}; "
        f"weights {rel(os.path.join(args.out_dir, f'{save}_{args.dim}.pth'))}")
    return records, took


def load_stage_log(args, stage):
    """Records of a stage an earlier run did (for --from_stage)."""
    name = stage[0]
    path = os.path.join(args.out_dir, "logs", f"{name}.log")
    weights = os.path.join(args.out_dir, f"{stage[2]}_{args.dim}.pth")
    if not os.path.exists(weights):
        raise DemoError(f"{rel(weights)}: not found; --from_stage needs an earlier demo run with the same "
                        f"--out_dir and --dim (or start from {name}: --from_stage {name})")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return parse_log(f.read().splitlines())
