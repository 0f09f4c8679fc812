"""White-box knowledge distillation: a frozen teacher's token distributions train a student.

The loss, over the assistant tokens of SFT conversations (the SFT masks), is MiniMind2's

    alpha * CE(student, data) + (1 - alpha) * T^2 * KL(softmax(z_teacher / T) || softmax(z_student / T))

with both terms means over the target tokens (MiniMind's `batchmean` over the masked rows). It is
computed by trainer.fused_loss.fused_distill_loss from the two models' final hidden states, in chunks
of target rows: neither model's (B, T, V) logits are ever made. `plain_distill_loss` below is the
same thing over full logits (MiniMind's way), for tests and the benchmark.

The teacher is a MiniMind .pth (--teacher_dim/--teacher_n_layers/--teacher_use_moe/--teacher_weight)
or any transformers causal LM folder sharing the student's tokenizer (--teacher_model_path). It is
frozen, in eval mode, runs under no_grad inside the trainer's autocast, and is never wrapped in DDP.
A teacher with another vocabulary or tokenizer is refused (MiniMind cut its logits silently).
"""
import inspect
import os

import torch
import torch.nn.functional as F

from trainer.checkpoint import (check_compatible, describe_state_dict, made_by, read_state_dict, unwrap,
                                weight_path)
from trainer.errors import UserError
from trainer.fused_loss import DEFAULT_KL_CHUNK, fused_distill_loss
from trainer.stages import Stage, add_aux_loss


def plain_distill_loss(student_logits, teacher_logits, targets, mask, alpha=0.0, temperature=1.0):
    """(loss, {"kl", "ce", "agreement"}) from full (B, T, V) logits: the reference fused_distill_loss equals."""
    V = student_logits.shape[-1]
    sel = mask.reshape(-1) != 0
    zs = student_logits.reshape(-1, V)[sel].float()
    zt = teacher_logits.reshape(-1, V)[sel].float().detach()
    n = max(int(sel.sum()), 1)
    ce = F.cross_entropy(zs, targets.reshape(-1)[sel], reduction="sum") / n
    T = float(temperature)
    kl = F.kl_div(F.log_softmax(zs / T, dim=-1), F.softmax(zt / T, dim=-1), reduction="sum") / n
    loss = alpha * ce + (1.0 - alpha) * T * T * kl
    agreement = (zs.argmax(-1) == zt.argmax(-1)).float().sum() / n
    return loss, {"kl": kl.detach(), "ce": ce.detach(), "agreement": agreement}


# ----------------------------------------------------------------------------------------------
# The teacher

class Teacher:
    """A frozen causal LM seen as (final hidden states, LM head weight)."""

    def __init__(self, model, where, fingerprint):
        self.model = model.eval().requires_grad_(False)
        self.where, self.fingerprint = where, fingerprint
        head = model.get_output_embeddings()
        self.weight = head.weight
        self.vocab_size = int(self.weight.shape[0])
        self.n_params = sum(p.numel() for p in {p.data_ptr(): p for p in model.parameters()}.values())
        self._skip_logits = "skip_logits" in inspect.signature(model.forward).parameters

    @torch.no_grad()
    def hidden(self, X):
        if self._skip_logits:  # MiniMind: hidden states only, the head is applied in chunks
            return self.model(X, skip_logits=True).hidden_states[-1]
        base = getattr(self.model, self.model.base_model_prefix)  # transformers' decoder without the head
        return base(input_ids=X, use_cache=False).last_hidden_state


TEACHER_FLAGS = "--teacher_weight/--teacher_dim/--teacher_n_layers/--teacher_use_moe/--out_dir"


def _teacher_flags(info):
    return (f"--teacher_dim {info.get('dim', '?')} --teacher_n_layers {info.get('n_layers', '?')} "
            f"--teacher_use_moe {int(bool(info.get('use_moe')))}")


def teacher_weight_path(args):
    w = args.teacher_weight
    if w.endswith(".pth") or os.sep in w:
        return w
    return weight_path(args.out_dir, w, args.teacher_dim, args.teacher_use_moe)


def _vocab_refusal(where, teacher_vocab, student_vocab):
    return UserError(f"{where}: the teacher's vocabulary has {teacher_vocab} tokens, the student's {student_vocab}; "
                     "distillation compares the two distributions token by token, so the teacher must use the "
                     "student's tokenizer (--tokenizer_path)")


def load_pth_teacher(args, student_vocab, device):
    from model import MiniMindForCausalLM
    from trainer.args import build_config
    if args.teacher_weight.lower() == "none":
        raise UserError("--teacher_weight none: a teacher needs trained weights; pass a checkpoint name, a .pth "
                        "path, or --teacher_model_path DIR")
    path = teacher_weight_path(args)
    if not os.path.exists(path):
        name = os.path.basename(path)[:-4] if path.endswith(".pth") else args.teacher_weight
        raise UserError(f"{path}: teacher checkpoint not found; it is written by {made_by(args.teacher_weight)} "
                        f"(run it with --dim {args.teacher_dim} --n_layers {args.teacher_n_layers}), or pass the "
                        f"{TEACHER_FLAGS} of an existing checkpoint (asked for {name}), or --teacher_model_path DIR")
    state = read_state_dict(path)
    info = describe_state_dict(state)
    if "vocab_size" in info and info["vocab_size"] != student_vocab:
        raise _vocab_refusal(path, info["vocab_size"], student_vocab)
    asked = {"dim": args.teacher_dim, "n_layers": args.teacher_n_layers, "use_moe": bool(args.teacher_use_moe)}
    if any(info.get(k) != v for k, v in asked.items()):
        raise UserError(f"{path}: the teacher checkpoint holds a model with {_teacher_flags(info)}, but the flags "
                        f"ask for {_teacher_flags(asked)}; pass the sizes it was trained with")
    try:
        cfg = build_config(args, hidden_size=args.teacher_dim, num_hidden_layers=args.teacher_n_layers,
                           use_moe=bool(args.teacher_use_moe), vocab_size=student_vocab)
    except ValueError as e:
        raise UserError(f"--teacher_dim {args.teacher_dim} --teacher_n_layers {args.teacher_n_layers}: {e}")
    model = MiniMindForCausalLM(cfg)
    check_compatible(model, state, path)
    model.load_state_dict(state, strict=True)
    st = os.stat(path)
    fp = {"teacher_weight": f"{os.path.abspath(path)} ({st.st_size} bytes)", "teacher_dim": args.teacher_dim,
          "teacher_n_layers": args.teacher_n_layers, "teacher_use_moe": bool(args.teacher_use_moe)}
    return Teacher(model.to(device), path, fp)


def _same_tokenizer(a, b):
    """None when a and b tokenize alike (same vocabulary and special tokens), else what differs."""
    va, vb = a.get_vocab(), b.get_vocab()
    if va != vb:
        diff = sorted(set(va.items()) ^ set(vb.items()), key=lambda kv: kv[1])
        return f"{len(vb)} tokens against {len(va)}" + (f", e.g. {diff[0][0]!r} -> {diff[0][1]}" if diff else "")
    for k in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(a, k, None) != getattr(b, k, None):
            return f"{k} {getattr(b, k, None)} against {getattr(a, k, None)}"
    return None


def load_dir_teacher(args, student_vocab, student_tokenizer, device, log=print):
    import model  # noqa: F401  (registers MiniMind with the Auto classes: its folders load without remote code)
    from trainer.args import load_tokenizer
    path = args.teacher_model_path
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise UserError(f"{os.path.join(path, 'config.json')}: not found; --teacher_model_path must be a transformers "
                        "folder (save_pretrained, or scripts/convert_model.py --to minimind/llama), or drop it and "
                        f"pass {TEACHER_FLAGS} for a .pth teacher")
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    try:
        net = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: could not load a causal LM from --teacher_model_path ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:200]})")
    head = net.get_output_embeddings()
    if head is None or getattr(head, "weight", None) is None:
        raise UserError(f"{path}: the model has no output embedding (LM head); the teacher must be a causal LM")
    if getattr(head, "bias", None) is not None or getattr(net.config, "final_logit_softcapping", None) \
            or getattr(net.config, "logit_scale", None) not in (None, 1, 1.0):
        raise UserError(f"{path}: the teacher's logits are not hidden @ lm_head.weight (bias, scaling or soft-capping); "
                        "such teachers are not supported")
    if int(head.weight.shape[0]) != student_vocab:
        raise _vocab_refusal(path, int(head.weight.shape[0]), student_vocab)
    if os.path.isfile(os.path.join(path, "tokenizer.json")) or os.path.isfile(os.path.join(path, "tokenizer_config.json")):
        diff = _same_tokenizer(student_tokenizer, load_tokenizer(path))
        if diff:
            raise UserError(f"{path}: the teacher's tokenizer differs from the student's --tokenizer_path ({diff}); "
                            "distillation needs one tokenizer for both models")
    else:
        log(f"note: {path} holds no tokenizer; assuming the teacher was trained with --tokenizer_path's")
    fp = {"teacher_model_path": os.path.abspath(path)}
    return Teacher(net.to(device), path, fp)


def load_teacher(trainer, student):
    """The teacher the flags name, on the trainer's device, checked against the student."""
    args = trainer.args
    vocab = int(unwrap(student).lm_head.weight.shape[0])
    if args.teacher_model_path:
        teacher = load_dir_teacher(args, vocab, trainer.tokenizer, trainer.device, trainer.log)
    else:
        teacher = load_pth_teacher(args, vocab, trainer.device)
    trainer.log(f"teacher params: {teacher.n_params / 1e6:.3f} M, loaded {teacher.where}")
    return teacher


# ----------------------------------------------------------------------------------------------
# The stage

class DistillStage(Stage):
    """Student forward + teacher forward (no grad) -> fused distillation loss on the SFT targets."""
    name, title = "distill", "Dist-SFT"
    eval_keys = ("kl_sum", "ce_sum", "agree_sum", "tokens")

    def __init__(self, teacher, alpha=0.0, temperature=1.0, chunk_size=DEFAULT_KL_CHUNK):
        self.teacher, self.alpha, self.temperature, self.chunk_size = teacher, float(alpha), float(temperature), chunk_size

    def fingerprint(self):
        return {"alpha": self.alpha, "temperature": self.temperature, **self.teacher.fingerprint}

    def _forward(self, model, batch):
        X, Y, M = batch
        th = self.teacher.hidden(X)  # first: its activations are gone before the student's are made
        out = model(X, skip_logits=True)
        loss, tok = fused_distill_loss(out.hidden_states[-1], unwrap(model).lm_head.weight, th, self.teacher.weight,
                                       Y, M, self.alpha, self.temperature, self.chunk_size)
        return loss, tok, out

    def loss(self, model, batch):
        loss, tok, out = self._forward(model, batch)
        # per-token values: the logged kl, ce and agreement are means over every target token since the last line
        metrics = {"kl": tok["kl"], "ce": tok["ce"], "agreement": tok["agree"].float()}
        return add_aux_loss(loss, out, metrics)

    def eval_sums(self, model, batch):
        _, tok, _ = self._forward(model, batch)
        return {"kl_sum": tok["kl"].double().sum(), "ce_sum": tok["ce"].double().sum(),
                "agree_sum": tok["agree"].double().sum(),
                "tokens": torch.tensor(float(len(tok["kl"])), dtype=torch.float64)}

    def eval_metrics(self, s):
        n = max(s["tokens"], 1.0)
        kl, ce = s["kl_sum"] / n, s["ce_sum"] / n
        return {"val/loss": self.alpha * ce + (1.0 - self.alpha) * self.temperature ** 2 * kl,
                "val/kl": kl, "val/ce": ce, "val/agreement": s["agree_sum"] / n}
