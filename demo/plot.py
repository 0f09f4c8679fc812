"""The demo's loss-curve PNG: one panel per training stage (and GRPO's reward curve with --rl)."""
from demo.stages import STAGES


def plot_losses(logs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    titles = {"pretrain": "Pretraining (cross-entropy)", "sft": "SFT (cross-entropy on answers)",
              "dpo": "DPO (loss; reward accuracy dashed)", "reason": "Reasoning (tag-weighted cross-entropy)"}
    names = [s[0] for s in STAGES] + (["grpo"] if logs.get("grpo") else [])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.2))
    for ax, name in zip(axes, names):
        recs = logs.get(name) or []
        if name == "grpo":
            plot_rewards(ax, recs)
            continue
        ax.set_title(titles.get(name, name))
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        if not recs:
            ax.text(0.5, 0.5, "no log", ha="center", va="center", transform=ax.transAxes)
            continue
        steps = [r["step"] for r in recs]
        loss = [r["loss"] for r in recs]
        lines = ax.plot(steps, loss, color="tab:blue", lw=0.8, alpha=0.4, label="loss (each step)")
        k = max(1, len(loss) // 20) | 1
        if k > 1:  # a centred running mean shows the trend through the per-batch noise
            h = k // 2
            smooth = [sum(loss[max(0, i - h):i + h + 1]) / len(loss[max(0, i - h):i + h + 1]) for i in range(len(loss))]
            lines += ax.plot(steps, smooth, color="tab:blue", lw=2, label=f"loss (mean of {k} steps)")
        if name != "dpo" and min(loss) > 0:
            ax.set_yscale("log")  # pretraining falls over two orders of magnitude
        ax.set_ylabel("loss")
        if name == "dpo" and any("rewards/accuracies" in r for r in recs):
            ax2 = ax.twinx()
            acc = [r.get("rewards/accuracies", float("nan")) for r in recs]
            lines += ax2.plot(steps, acc, color="tab:orange", lw=1, ls="--", label="reward accuracy")
            ax2.set_ylim(-0.05, 1.05)
            ax2.set_ylabel("reward accuracy")
        ax.legend(lines, [l.get_label() for l in lines], loc="lower left" if name == "dpo" else "upper right",
                  fontsize=8)
    fig.suptitle("MiniMind demo: loss curves of the training stages" + (" and GRPO's reward" if "grpo" in names else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_rewards(ax, recs):
    """GRPO's panel: the sampled answers' mean reward per step (the gt part, and gt + format)."""
    ax.set_title("GRPO (mean reward of the samples)")
    ax.set_xlabel("optimizer step")
    ax.grid(alpha=0.3)
    steps = [r["step"] for r in recs]
    for key, label, color in (("rewards/gt/mean", "gt: answer names the keyword", "tab:green"),
                              ("reward", "reward (gt + format)", "tab:purple")):
        vals = [r.get(key, float("nan")) for r in recs]
        ax.plot(steps, vals, color=color, lw=1, alpha=0.45)
        k = max(1, len(vals) // 10) | 1
        h = k // 2
        smooth = [sum(vals[max(0, i - h):i + h + 1]) / len(vals[max(0, i - h):i + h + 1]) for i in range(len(vals))]
        ax.plot(steps, smooth, color=color, lw=2, label=f"{label} (mean of {k} steps)")
    ax.set_ylabel("reward")
    ax.legend(fontsize=8, loc="lower right")
