"""Reward models: MiniMind's trunk with a scalar head, MiniMindForSequenceClassification with num_labels=1.

    is_reward_state(state)          whether a state dict is a reward model's (it has the head, score.weight)
    reward_config(size, **kw)       the MiniMindConfig of a reward model of that size (num_labels=1)
    load_start(net, path)           train_reward.py's starting weights: a chat model's trunk (the head stays as
                                    initialised) or a reward checkpoint whole
    load_reward_pth(path, size)     a reward_*.pth (train_reward.py's output), its size from the flags or,
                                    without them, from its tensors' shapes

What a reward model reads is the whole conversation as the chat template renders it (TRL's convention,
and what `apply_chat_template(messages)` gives a user of the export), scored at its last token: for
MiniMind's template the newline after the last <|im_end|> (dataset/lm_dataset.py's RewardDataset).
"""
import argparse

from trainer.args import build_config
from trainer.checkpoint import check_compatible, describe_state_dict, read_state_dict
from trainer.errors import UserError

HEAD = "score.weight"


def is_reward_state(state) -> bool:
    return HEAD in state


def reward_config(size, **overrides):
    """MiniMindConfig for a reward model of `size` (an object with dim, n_layers, use_moe)."""
    return build_config(size, num_labels=1, **overrides)


def load_start(net, path, made_by=None):
    """Load train_reward.py's starting weights into `net` (a MiniMindForSequenceClassification), strictly.

    A chat model's checkpoint (full_sft, rlhf, ...) gives the trunk; its LM head is left out and the score
    head keeps its fresh initialisation. A reward checkpoint gives both. Returns "trunk" or "whole"."""
    state = read_state_dict(path, made_by)
    if is_reward_state(state):
        check_compatible(net, state, path)
        net.load_state_dict(state, strict=True)
        return "whole"
    state = {k: v for k, v in state.items() if k != "lm_head.weight"}
    state[HEAD] = net.score.weight.detach().clone()  # the fresh head goes through as it is
    check_compatible(net, state, path)
    net.load_state_dict(state, strict=True)
    return "trunk"


def load_reward_pth(path, size=None, pad_token_id=None):
    """A reward .pth in a MiniMindForSequenceClassification (float32, eval mode, on the CPU).

    `size` (dim, n_layers, use_moe) as the flags give it; None reads it from the tensors' shapes
    (its family from its q/k norms). One-line errors for a missing file or a
    file that is not a reward model."""
    from model import MiniMindForSequenceClassification
    state = read_state_dict(path, "train_reward.py")
    info = describe_state_dict(state)
    if not is_reward_state(state):
        what = "a language model" if "lm_head.weight" in state else "no reward model"
        raise UserError(f"{path}: not a reward model: it has no score head ({HEAD}), it holds {what} "
                        f"(--dim {info.get('dim', '?')} --n_layers {info.get('n_layers', '?')}); "
                        "train one with train_reward.py (it writes reward_{dim}.pth)")
    if "dim" not in info or not info["n_layers"]:
        raise UserError(f"{path}: not a MiniMind reward model (no model.embed_tokens.weight / model.layers.*)")
    if size is None:
        size = argparse.Namespace(dim=info["dim"], n_layers=info["n_layers"], use_moe=info["use_moe"],
                                  model_family=info["model_family"])
    extra = {"pad_token_id": pad_token_id} if pad_token_id is not None else {}
    try:
        cfg = reward_config(size, vocab_size=info["vocab_size"], **extra)
    except ValueError as e:
        raise UserError(f"{path}: {e}")
    net = MiniMindForSequenceClassification(cfg)
    check_compatible(net, state, path)
    net.load_state_dict(state, strict=True)
    return net.eval()



# ----------------------------------------------------------------------------------------------
# Reward models as conversion sources (scripts/convert_model.py)

def is_reward_file(path) -> bool:
    """Whether `path` is a .pth holding a reward model (its tensors memory-mapped, not read)."""
    import os
    import torch
    if not os.path.isfile(path):
        return False
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False  # the regular loader says what is wrong with it
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a resume file
    return isinstance(state, dict) and any(k.split("module.")[-1] == HEAD for k in state)


def is_reward_dir(path) -> bool:
    """Whether `path` is a transformers folder whose config.json names a sequence classifier."""
    import json
    import os
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            archs = json.load(f).get("architectures") or []
    except (OSError, ValueError):
        return False
    return any(str(a).endswith("ForSequenceClassification") for a in archs)


def as_reward_minimind(net, where="the model"):
    """The same weights in a MiniMindForSequenceClassification (a Llama classifier is re-housed, strictly)."""
    from model import MiniMindForSequenceClassification
    from model.loading import minimind_config_from
    if isinstance(net, MiniMindForSequenceClassification):
        return net
    cfg = minimind_config_from(net.config, where)
    cfg.num_labels, cfg.pad_token_id = net.config.num_labels, net.config.pad_token_id
    mm = MiniMindForSequenceClassification(cfg).to(next(net.parameters()).dtype)
    state = net.state_dict()
    check_compatible(mm, state, where)
    mm.load_state_dict(state, strict=True)
    return mm.eval()


def load_reward_source(args, dtype=None):
    """(reward model, tokenizer, where) when the source flags of scripts/convert_model.py name a reward model
    (a reward .pth, or a sequence-classification folder), else None."""
    import torch
    from model.loading import checkpoint_file, source_is_dir, tokenizer_for
    dtype = dtype or torch.float32
    if source_is_dir(args):
        path = args.model_path
        if not is_reward_dir(path):
            return None
        from transformers import AutoModelForSequenceClassification  # MiniMind's own are registered (model/__init__)
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
        try:
            net, folder = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype), path
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{path}: could not load the reward model ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:200]})")
    else:
        path = checkpoint_file(args)
        if not is_reward_file(path):
            return None
        net, folder = load_reward_pth(path, args).to(dtype), None
    if getattr(args, "lora_name", None):
        raise UserError(f"--lora_name: {path} is a reward model; LoRA adapters here are for the chat models")
    return net.eval(), tokenizer_for(net, args.tokenizer_path, folder), path
