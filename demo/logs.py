"""Reading the training scripts' logs: their step lines, a stage's loss in one line, DPO's reward accuracy."""
import re

STEP_RE = re.compile(r"^epoch (\d+)/(\d+) step (\d+)/(\d+) loss (\S+)")
METRIC_RE = re.compile(r"([A-Za-z_][\w/]*) (-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)\b")
TOTAL_RE = re.compile(r"(\d+) optimizer steps?\b")


def parse_step(line):
    """A trainer log line -> {"epoch", "step", "loss", metric: value, ...}, or None."""
    m = STEP_RE.match(line.strip())
    if not m:
        return None
    rec = {"epoch": int(m.group(1)), "step": int(m.group(3)), "total": int(m.group(4)), "loss": float(m.group(5))}
    rest = line.strip()[m.end():]
    for k, v in METRIC_RE.findall(rest):
        if k not in ("lr", "grad_norm", "tok"):
            rec[k] = float(v)
    for k in ("lr", "grad_norm"):
        mm = re.search(rf"\b{k} (\S+)", rest)
        if mm:
            try:
                rec[k] = float(mm.group(1))
            except ValueError:
                pass
    return rec


def parse_log(lines):
    return [r for r in (parse_step(l) for l in lines) if r is not None]


def loss_story(records):
    """'training loss 8.805 at step 1 -> 0.010 (mean of its last 20 steps)'.

    One batch's loss is noisy, and a set that mixes what the model knows with what it learns (LoRA's
    replayed SFT answers beside the new ones) can start low on a batch of the known: so a run of 10 or
    more logged steps compares the mean of its first fifth (20 at most) with the mean of its last."""
    k = min(20, max(1, len(records) // 5))
    head = sum(r["loss"] for r in records[:k]) / k
    tail = sum(r["loss"] for r in records[-k:]) / k
    if k == 1:
        return f"training loss {head:.3f} at step 1 -> {tail:.3f} at the last step"
    return f"training loss {head:.3f} (mean of its first {k} steps) -> {tail:.3f} (mean of its last {k} steps)"


def dpo_reward_accuracy(recs):
    """Mean logged rewards/accuracies over DPO's last epoch (every pair once), and at its first step."""
    accs = [(r["epoch"], r["rewards/accuracies"]) for r in recs if "rewards/accuracies" in r]
    if not accs:
        return None, None
    last_epoch = accs[-1][0]
    final = [a for e, a in accs if e == last_epoch]
    return sum(final) / len(final), accs[0][1]
