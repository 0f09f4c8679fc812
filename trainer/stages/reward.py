"""A reward model from preference pairs (train_reward.py): Bradley-Terry, as TRL's RewardTrainer.

The model is MiniMindForSequenceClassification with one label (model/model_minimind.py): the starting
chat model's trunk and a fresh linear head, `score` (dim -> 1, no bias), read at each conversation's last
token. The data is DPO's ({"chosen", "rejected"}, an optional "margin"; dataset/lm_dataset.py's
RewardDataset on the same token cache), each conversation whole as the chat template renders it. One
forward scores a batch's chosen and rejected conversations together; the loss is
-log sigmoid(r_chosen - r_rejected - margin), plus --center_rewards_coefficient * (r_chosen + r_rejected)^2.
"""
import torch

from trainer.losses import reward_loss
from trainer.stages import Stage, add_aux_loss


def build_reward_model(trainer):
    """The reward model the flags describe, on the trainer's device, with --from_weight loaded: a chat
    model's trunk (the head starts fresh) or a reward checkpoint whole (model/reward.py)."""
    from model import MiniMindForSequenceClassification
    from model.reward import load_start, reward_config
    from trainer.checkpoint import made_by
    a = trainer.args

    def load(model, src):
        if src is None:
            return "--from_weight none: the trunk and the score head start from random weights"
        if load_start(model, src, made_by(a.from_weight)) == "trunk":
            return (f"loaded the trunk of {src}; the score head (score.weight, {model.config.hidden_size} -> 1) is "
                    f"new, initialised normal(0, {model.config.initializer_range})")
        return f"loaded {src} (a reward model: trunk and score head)"

    return trainer.build_model(MiniMindForSequenceClassification,
                               lambda args: reward_config(args, pad_token_id=trainer.pad_id), load)


def pair_rewards(model, batch):
    """(chosen rewards (B,), rejected rewards (B,), the model's output), float32, from one forward."""
    out = model(batch["input_ids"])
    chosen, rejected = out.logits[:, 0].float().chunk(2)
    return chosen, rejected, out


class RewardStage(Stage):
    name, title = "reward", "Reward"
    eval_keys = ("loss_sum", "acc_sum", "margin_sum", "chosen_sum", "rejected_sum", "pairs")

    def __init__(self, center_rewards_coefficient=None):
        self.center = center_rewards_coefficient

    def fingerprint(self):
        return {"center_rewards_coefficient": self.center}

    def loss(self, model, batch):
        chosen, rejected, out = pair_rewards(model, batch)
        losses, metrics = reward_loss(chosen, rejected, batch["margin"], self.center)
        return add_aux_loss(losses.mean(), out, metrics)

    def eval_sums(self, model, batch):
        chosen, rejected, _ = pair_rewards(model, batch)
        losses, m = reward_loss(chosen, rejected, batch["margin"], self.center)
        return {"loss_sum": losses.double().sum(), "acc_sum": m["accuracy"].double().sum(),
                "margin_sum": m["margin"].double().sum(), "chosen_sum": chosen.double().sum(),
                "rejected_sum": rejected.double().sum(),
                "pairs": torch.tensor(float(len(chosen)), dtype=torch.float64)}

    def eval_metrics(self, s):
        n = max(s["pairs"], 1.0)
        return {"val/loss": s["loss_sum"] / n, "val/accuracy": s["acc_sum"] / n, "val/margin": s["margin_sum"] / n,
                "val/rewards/chosen": s["chosen_sum"] / n, "val/rewards/rejected": s["rejected_sum"] / n}
