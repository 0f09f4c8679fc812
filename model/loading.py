"""Loading a trained model from whatever a front end names: a checkpoint, a folder, a LoRA on top.

Every front end (eval_model.py, the server, the chat page, the converter, the benchmarks, the demo)
finds its weights through this module, so they all read the same flags and fail the same way:

    add_source_args(parser)         the model-selection flags (--model_mode, --weight, --model_path, ...)
    checkpoint_file(args)           {out_dir}/{pretrain|full_sft|rlhf|reason}_{dim}[_moe].pth, or --weight
    load_source(args, dtype)        -> (model in eval mode on the CPU, tokenizer, where it came from)
    load_pth(path, size)            a .pth into a MiniMindForCausalLM of that size
    load_dir_model(path)            a transformers folder (MiniMind or Llama)
    as_minimind(model)              the same weights in a MiniMindForCausalLM (a Llama re-housed)

A mistake the user can fix (missing weights, a folder without config.json, a tokenizer larger than
the model) is a UserError: one line that says what was expected and what to do.
"""
import argparse
import os
import re

import torch

from trainer.args import add_model_args, add_out_dir_arg, build_config, load_tokenizer
from trainer.checkpoint import check_compatible, describe_checkpoints, load_weights, made_by, read_name, weight_path
from trainer.errors import UserError, one_line

# --model_mode -> checkpoint name, as MiniMind2's eval_model.py numbers them
MODEL_MODES = {0: "pretrain", 1: "full_sft", 2: "rlhf", 3: "reason"}
REASON_MODE = 3
# the tokenizer the repo ships, wherever a front end is run from
REPO_TOKENIZER = os.path.dirname(os.path.abspath(__file__))


def add_source_args(p, model_path=None):
    """The model-selection flags of the server, the converter and the benchmarks.

    eval_model.py spells the same flags itself (MiniMind2's help texts and --load 0 default)."""
    add_model_args(p)
    add_out_dir_arg(p)
    p.add_argument("--model_mode", type=int, choices=sorted(MODEL_MODES), default=1,
                   help="0: pretrain, 1: full_sft, 2: rlhf (DPO), 3: reason weights (default 1)")
    p.add_argument("--weight", type=str, default=None,
                   help="checkpoint to read instead of the --model_mode one: NAME reads "
                        "{out_dir}/NAME_{dim}[_moe].pth; a path ending in .pth is read as is")
    p.add_argument("--load", type=int, choices=[0, 1], default=None,
                   help="0: .pth weights (with --dim/--n_layers/--use_moe), 1: a transformers directory "
                        "(--model_path); default 1 when --model_path is given")
    p.add_argument("--model_path", type=str, default=model_path,
                   help="transformers directory (save_pretrained or scripts/convert_model.py's output) to read")
    p.add_argument("--tokenizer_path", type=str, default=None,
                   help="tokenizer directory (default: the --model_path directory when it has one, else ./model)")
    p.add_argument("--lora_name", type=str, default=None,
                   help="merge the LoRA adapter {out_dir}/lora/NAME_{dim}[_moe].pth (train_lora.py) into the "
                        "model; a path ending in .pth is read as is")
    add_rope_scaling_arg(p)
    return p


def add_rope_scaling_arg(p):
    p.add_argument("--inference_rope_scaling", action="store_true",
                   help="YaRN at inference, as MiniMind's 2025-10 release: RoPE stretched 16x from 2048 trained "
                        "positions (transformers' rope_type yarn; exports carry it)")


def checkpoint_file(args) -> str:
    """The .pth the flags name: --weight (a name or a path), else the --model_mode checkpoint."""
    if args.weight and (args.weight.endswith(".pth") or os.sep in args.weight):
        return args.weight
    name = read_name(args.out_dir, args.weight or MODEL_MODES[args.model_mode], args.dim, args.use_moe)
    return weight_path(args.out_dir, name, args.dim, args.use_moe)


def source_name(args, with_lora=True) -> str:
    """The model's own name: the folder's, or the checkpoint's (rlhf_512), `+adapter` with a LoRA."""
    if source_is_dir(args):
        return os.path.basename(os.path.normpath(args.model_path))
    name = os.path.basename(checkpoint_file(args))[:-len(".pth")]
    if with_lora and getattr(args, "lora_name", None):
        name += "+" + os.path.basename(args.lora_name).removesuffix(".pth")
    return name


def checkpoint_maker(path) -> str:
    """The script that writes this checkpoint: out/full_sft_768_moe.pth -> train_full_sft.py."""
    return made_by(re.sub(r"(_\d+)?(_moe)?\.pth$", "", os.path.basename(path)))


def source_is_dir(args) -> bool:
    """Whether the flags name a transformers folder (--load 1, or --model_path without --load)."""
    if args.load is None:
        return args.model_path is not None
    if args.load == 1 and args.model_path is None:
        raise UserError("--load 1 needs --model_path DIR (a transformers directory)")
    return args.load == 1


def load_dir_model(path, dtype=torch.float32, rope_scaling=False):
    """A transformers directory as the model it holds (MiniMind through the project's own class);
    rope_scaling=True: with MiniMind's YaRN (--inference_rope_scaling), whatever the folder says."""
    import model  # noqa: F401  (registers MiniMind with the Auto classes: no remote code needed here)
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise UserError(f"{os.path.join(path, 'config.json')}: not found; --model_path must be a directory written "
                        "by save_pretrained or scripts/convert_model.py (or drop it to read .pth weights)")
    from model.reward import is_reward_dir
    if is_reward_dir(path):
        raise UserError(f"{path}: is a reward model (a sequence classifier): it scores conversations, it does not "
                        "generate; pass it to train_grpo.py or train_ppo.py --reward_model_path")
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # a bar on stderr for a one-file load is noise in a chat
    try:
        cfg = AutoConfig.from_pretrained(path)
        if rope_scaling:
            from model.model_minimind import MINIMIND_YARN
            theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", getattr(cfg, "rope_theta", 1e6))
            cfg.rope_parameters = dict(MINIMIND_YARN, rope_theta=theta)
        return AutoModelForCausalLM.from_pretrained(path, config=cfg, dtype=dtype)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{path}: could not load the model ({type(e).__name__}: {one_line(e)[:200]})")


def missing_weights(path) -> UserError:
    """The error for a checkpoint that is not there: who writes it, and what its folder holds instead."""
    return UserError(f"{path}: weights not found; they are written by {checkpoint_maker(path)} (run that first), "
                     "or pass the --out_dir/--dim/--n_layers/--use_moe/--weight it was trained with "
                     "(or --model_path DIR for a transformers directory); "
                     + describe_checkpoints(os.path.dirname(path) or "."))


def load_pth(path, size, dtype=torch.float32, vocab_size=None, rope_scaling=False):
    """A .pth checkpoint in a MiniMindForCausalLM of `size` (an object with dim, n_layers, use_moe);
    rope_scaling=True: with MiniMind's YaRN (--inference_rope_scaling)."""
    if not os.path.exists(path):
        raise missing_weights(path)
    from model import MiniMindForCausalLM
    extra = {"vocab_size": vocab_size} if vocab_size else {}
    net = MiniMindForCausalLM(build_config(size, inference_rope_scaling=bool(rope_scaling), **extra))
    load_weights(net, path, made_by=checkpoint_maker(path))
    return net.to(dtype)


def tokenizer_for(net, tokenizer_path=None, folder=None, fix="pass the --tokenizer_path the model was trained with"):
    """The tokenizer that goes with `net`: --tokenizer_path, else the model folder's own, else the repo's.

    A tokenizer with more tokens than the model's embedding would index past it: a UserError."""
    if tokenizer_path is None and folder and os.path.isfile(os.path.join(folder, "tokenizer.json")):
        tokenizer_path = folder
    path = tokenizer_path or REPO_TOKENIZER
    tokenizer = load_tokenizer(path, getattr(net.config, "model_family", None))
    if len(tokenizer) > net.config.vocab_size:
        raise UserError(f"{path}: tokenizer has {len(tokenizer)} tokens but the model only "
                        f"{net.config.vocab_size}; {fix}")
    return tokenizer


def load_source(args, dtype=torch.float32, merge_lora=True):
    """(model in eval mode on the CPU, tokenizer, description) as the source flags ask.

    With --lora_name the adapter is merged in (unless merge_lora=False: --to peft exports it apart)."""
    folder, scaling = None, getattr(args, "inference_rope_scaling", False)
    if source_is_dir(args):
        folder = args.model_path
        net, where = load_dir_model(folder, dtype, rope_scaling=scaling), folder
    else:
        where = checkpoint_file(args)
        net = load_pth(where, args, dtype, rope_scaling=scaling)
    if getattr(args, "lora_name", None) and merge_lora:
        from model.lora import merge_lora_flag
        net, adapter = merge_lora_flag(net, args.out_dir, args.lora_name)
        args.lora_file = adapter
        where = f"{where} + LoRA {adapter}"
    tokenizer = tokenizer_for(net, args.tokenizer_path, folder)
    return net.eval(), tokenizer, where


def minimind_config_from(cfg, path="the model"):
    """MiniMindConfig for a transformers config of either format (MiniMind or Llama)."""
    from model import MiniMindConfig
    if cfg.model_type == "minimind":
        return MiniMindConfig(**{k: v for k, v in cfg.to_dict().items() if k not in ("architectures", "auto_map")})
    if cfg.model_type != "llama":
        raise UserError(f"{path}: model_type {cfg.model_type!r} is not MiniMind or Llama; nothing to convert")
    rope = getattr(cfg, "rope_parameters", None) or {}
    problems = []
    if rope.get("rope_type", "default") not in ("default", "yarn"):
        problems.append(f"rope_type {rope.get('rope_type')}")
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        problems.append("biases")
    if cfg.hidden_act != "silu":
        problems.append(f"activation {cfg.hidden_act}")
    if getattr(cfg, "head_dim", None) not in (None, cfg.hidden_size // cfg.num_attention_heads):
        problems.append(f"head_dim {cfg.head_dim}")
    if problems:
        raise UserError(f"{path}: this Llama model has {', '.join(problems)}, which MiniMind2 does not; "
                        "only Llamas exported by scripts/convert_model.py (or of the same shape) convert back")
    return MiniMindConfig(
        hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads, num_key_value_heads=cfg.num_key_value_heads,
        intermediate_size=cfg.intermediate_size, vocab_size=cfg.vocab_size, rms_norm_eps=cfg.rms_norm_eps,
        rope_theta=rope.get("rope_theta", getattr(cfg, "rope_theta", 1e6)),
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={k: v for k, v in rope.items() if k != "rope_theta"} if rope.get("rope_type") == "yarn" else None,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id)


def as_minimind(net, where="the model"):
    """The same weights in a MiniMindForCausalLM (a Llama source is re-housed, strictly)."""
    from model import MiniMindForCausalLM
    if isinstance(net, MiniMindForCausalLM):
        return net
    cfg = minimind_config_from(net.config, where)
    mm = MiniMindForCausalLM(cfg).to(next(net.parameters()).dtype)
    state = net.state_dict()
    check_compatible(mm, state, where)
    mm.load_state_dict(state, strict=True)
    return mm.eval()


def model_size(dim, n_layers, use_moe=False, model_family="minimind2"):
    """The size object load_pth takes, for callers that know the size without flags."""
    return argparse.Namespace(dim=dim, n_layers=n_layers, use_moe=use_moe, model_family=model_family)


def load_model(args):
    """(model in eval mode on --device in --dtype, tokenizer): load_source for the chat front ends."""
    from trainer.args import check_device, resolve_dtype
    device = check_device(args.device)
    net, tokenizer, _ = load_source(args, resolve_dtype(args.dtype, device))
    return net.to(device), tokenizer
