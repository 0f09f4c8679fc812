"""Checkpoint files: MiniMind2 naming, atomic writes, strict loads with one-line errors.

Weights are a plain state_dict with MiniMind2's key names ({out_dir}/{name}_{dim}[_moe].pth),
so MiniMind2's own code and `torch.load(path, weights_only=True)` both read them.
"""
import os
import re
import tempfile

import torch

from trainer.errors import UserError

# Which script writes a checkpoint of a given name (for "run X first" hints).
MADE_BY = {
    "pretrain": "train_pretrain.py",
    "full_sft": "train_full_sft.py",
    "rlhf": "train_dpo.py",
    "reason": "train_distill_reason.py",
}


def weight_path(out_dir, name, dim, use_moe=False) -> str:
    return os.path.join(out_dir, f"{name}_{dim}{'_moe' if use_moe else ''}.pth")


def resume_path(out_dir, name, dim, use_moe=False) -> str:
    return os.path.join(out_dir, f"{name}_{dim}{'_moe' if use_moe else ''}_resume.pth")


def made_by(name: str) -> str:
    """The script that writes checkpoint `name` (full_sft_2048 -> train_full_sft.py)."""
    for prefix, script in MADE_BY.items():
        if name == prefix or name.startswith(prefix + "_"):
            return script
    return "the training script that saved it (--save_weight " + name + ")"


def atomic_save(obj, path: str):
    """torch.save to a temp file in the same directory, fsync, then os.replace.

    A crash (or SIGKILL) at any moment leaves either the old file or the new one, never a
    truncated mix.
    """
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the weights from other users
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_stale_temps(path: str):
    """Delete temp files a killed atomic_save(path) left behind (they are never the real file)."""
    d = os.path.dirname(os.path.abspath(path))
    prefix = "." + os.path.basename(path) + "."
    try:
        names = os.listdir(d)
    except OSError:
        return
    for n in names:
        if n.startswith(prefix) and n.endswith(".tmp"):
            try:
                os.unlink(os.path.join(d, n))
            except OSError:
                pass


def unwrap(model):
    """The bare module under DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def export_state_dict(model, dtype=torch.float16):
    """CPU state_dict in `dtype` (MiniMind2 ships half-precision weights).

    Tied tensors (lm_head.weight is embed_tokens.weight) stay one storage in the file.
    """
    out, seen = {}, {}
    for k, v in unwrap(model).state_dict().items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if key not in seen:
            t = v.detach().to("cpu")
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            seen[key] = t
        out[k] = seen[key]
    return out


def save_weights(model, path: str, dtype=torch.float16):
    atomic_save(export_state_dict(model, dtype), path)


def _strip_prefixes(state):
    # Files saved from a DDP or compiled model carry wrapper prefixes; the weights are the same.
    fixed = {}
    for k, v in state.items():
        for p in ("module.", "_orig_mod."):
            while k.startswith(p):
                k = k[len(p):]
        fixed[k] = v
    return fixed


def describe_state_dict(state) -> dict:
    """Infer the architecture a MiniMind2 state_dict holds: dim, n_layers, use_moe, vocab."""
    info = {}
    emb = state.get("model.embed_tokens.weight")
    if emb is None:
        emb = state.get("lm_head.weight")
    if emb is not None and emb.dim() == 2:
        info["vocab_size"], info["dim"] = int(emb.shape[0]), int(emb.shape[1])
    layers = {int(m.group(1)) for k in state for m in [re.match(r"model\.layers\.(\d+)\.", k)] if m}
    info["n_layers"] = (max(layers) + 1) if layers else 0
    info["use_moe"] = any(".mlp.experts." in k for k in state)
    return info


def _fmt(info) -> str:
    s = f"--dim {info.get('dim', '?')} --n_layers {info.get('n_layers', '?')} --use_moe {int(bool(info.get('use_moe')))}"
    if "vocab_size" in info:
        s += f" (vocab {info['vocab_size']})"
    return s


def read_state_dict(path: str, made_by_script: str = None):
    """torch.load(weights_only=True) with one-line errors for a missing or unreadable file."""
    if not os.path.exists(path):
        hint = f"it is written by {made_by_script}; run that first" if made_by_script else "check the path"
        raise UserError(f"{path}: checkpoint not found; {hint} (or point --out_dir/--from_weight at an existing file)")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, expected a .pth state_dict file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:160]}); re-create it with the training script")
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a resume file also holds the weights
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"{path}: expected a state_dict of tensors, got {type(state).__name__}; "
                        "pass a weights file such as out/full_sft_512.pth")
    return _strip_prefixes(state)


def check_compatible(model, state, path: str):
    """Raise a one-line UserError unless `state` fits `model` exactly (same keys, same shapes)."""
    own = unwrap(model).state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if not (missing or unexpected or wrong):
        return
    held, asked = describe_state_dict(state), describe_state_dict(own)
    if held != asked:
        raise UserError(f"{path}: holds a model with {_fmt(held)}, but the flags ask for {_fmt(asked)}; "
                        "pass the flags it was trained with, or choose another checkpoint")
    detail = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected
              else f"{wrong[0]} is {tuple(state[wrong[0]].shape)}, model wants {tuple(own[wrong[0]].shape)}")
    raise UserError(f"{path}: does not match the model ({detail}; {len(missing)} missing, "
                    f"{len(unexpected)} unexpected, {len(wrong)} mis-shaped keys); not a MiniMind2 checkpoint of this size")


def load_weights(model, path: str, made_by: str = None):
    """Strictly load a weights file into `model` (never strict=False). Returns the model."""
    state = read_state_dict(path, made_by)
    check_compatible(model, state, path)
    unwrap(model).load_state_dict(state, strict=True)
    return model


def list_checkpoints(out_dir: str) -> list:
    """The weights files in `out_dir` with the model each holds, read from the tensors' shapes:
    [{"file", "path", "dim", "n_layers", "use_moe"}] sorted by file name. Resume files, unreadable
    files and other .pth files (adapters) are left out. Tensors are memory-mapped, not read."""
    found = []
    try:
        names = sorted(os.listdir(out_dir))
    except OSError:
        return found
    for name in names:
        path = os.path.join(out_dir, name)
        if not name.endswith(".pth") or name.endswith("_resume.pth") or not os.path.isfile(path):
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:
            continue
        if not isinstance(state, dict) or "model.embed_tokens.weight" not in state:
            continue
        info = describe_state_dict(state)
        found.append({"file": name, "path": path, "dim": info["dim"], "n_layers": info["n_layers"],
                      "use_moe": info["use_moe"]})
    return found


def describe_checkpoints(out_dir: str) -> str:
    """'out/demo holds rlhf_128.pth (--dim 128 --n_layers 4), ...' or 'out/demo holds no weights'."""
    found = list_checkpoints(out_dir)
    if not found:
        return f"{out_dir} holds no weights files"
    def flags(c):
        return f"--dim {c['dim']} --n_layers {c['n_layers']}" + (" --use_moe 1" if c["use_moe"] else "")
    return f"{out_dir} holds " + ", ".join(f"{c['file']} ({flags(c)})" for c in found)
