"""Checkpoint files: MiniMind2 naming, atomic writes, strict loads with one-line errors.

Weights are a plain state_dict with MiniMind2's key names ({out_dir}/{name}_{dim}[_moe].pth),
so MiniMind2's own code and `torch.load(path, weights_only=True)` both read them.
"""
import os
import random
import re
import tempfile

import numpy as np
import torch

from trainer.errors import UserError

# Which script writes a checkpoint of a given name (for "run X first" hints).
MADE_BY = {
    "pretrain": "train_pretrain.py",
    "full_sft": "train_full_sft.py",
    "rlhf": "train_dpo.py",
    "dpo": "train_dpo.py",  # MiniMind's later name for rlhf
    "reason": "train_distill_reason.py",
    "full_dist": "train_distillation.py",
    "reward": "train_reward.py",
    "ppo_actor": "train_ppo.py",
}


def weight_path(out_dir, name, dim, use_moe=False) -> str:
    return os.path.join(out_dir, f"{name}_{dim}{'_moe' if use_moe else ''}.pth")


def read_name(out_dir, name, dim, use_moe=False) -> str:
    """The checkpoint name to read: MiniMind's later releases call DPO's output `dpo`, this project (as
    MiniMind2) `rlhf`; `dpo` reads dpo_{dim}.pth when there is one, else rlhf_{dim}.pth."""
    if name == "dpo" and not os.path.exists(weight_path(out_dir, "dpo", dim, use_moe)):
        return "rlhf"
    return name


def resume_path(out_dir, name, dim, use_moe=False) -> str:
    return os.path.join(out_dir, f"{name}_{dim}{'_moe' if use_moe else ''}_resume.pth")


def made_by(name: str) -> str:
    """The script that writes checkpoint `name` (full_sft_2048 -> train_full_sft.py)."""
    for prefix, script in MADE_BY.items():
        if name == prefix or name.startswith(prefix + "_"):
            return script
    return "the training script that saved it (--save_weight " + name + ")"


class SaveError(UserError):
    """A checkpoint could not be written (disk full, read-only or unwritable directory, quota)."""

    def __init__(self, path, error):
        self.path, self.error = path, error
        reason = error.strerror or str(error)
        super().__init__(f"{path}: could not write it: {reason} (errno {error.errno}); the previous file, "
                         "if any, is unchanged and no temporary file is left")


class _RecordingWriter:
    """The file object torch.save writes to; keeps the OSError a failed write raised, which
    torch.save itself turns into a RuntimeError without the reason."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, b):
        try:
            return self.f.write(b)
        except OSError as e:
            self.error = e
            raise

    def flush(self):
        return self.f.flush()


def _write_temp(obj, path: str) -> str:
    """torch.save `obj` to a fsynced temp file beside `path`; returns its name. On any failure
    the temp file is gone; an OS error (disk full, read-only) is raised as that OSError."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the weights from other users
        with os.fdopen(fd, "wb") as f:
            w = _RecordingWriter(f)
            try:
                torch.save(obj, w)
            except RuntimeError as e:
                cause = w.error or e.__context__
                if isinstance(cause, OSError):
                    raise cause from None
                raise
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return tmp


def atomic_save_many(items):
    """Write every (obj, path): each to a temp file beside it, fsynced, and only when all are
    written, moved into place with os.replace.

    A failure or a crash (SIGKILL, Ctrl-C) at any moment leaves the previous files, never a
    truncated one or a new weights file beside an old resume file; no temp file stays behind
    (a SIGKILL's is removed by the next run's remove_stale_temps). An OS error (disk full,
    read-only or unwritable directory) is raised as SaveError naming the file.
    """
    temps, path = [], None
    try:
        for obj, path in items:
            temps.append((_write_temp(obj, path), path))
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException as e:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(e, OSError):
            raise SaveError(path, e) from None
        raise


def atomic_save(obj, path: str):
    """torch.save to a temp file in the same directory, fsync, then os.replace.

    A crash (or SIGKILL) at any moment leaves either the old file or the new one, never a
    truncated mix; an OS error is a SaveError naming `path`.
    """
    atomic_save_many([(obj, path)])


def nonfinite_tensor(state):
    """(key, what) of the first floating tensor in `state` holding NaN or inf, else None."""
    for k, v in state.items():
        if torch.is_tensor(v) and v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all()):
            what = "nan" if bool(torch.isnan(v).any()) else "inf"
            return k, what
    return None


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
    # MiniMind-3's attention norms each head's queries and keys: its checkpoints (MiniMind's own too) say so
    info["model_family"] = "minimind3" if any(".self_attn.q_norm." in k for k in state) else "minimind2"
    return info


FAMILY_NAMES = {"minimind2": "MiniMind2", "minimind3": "MiniMind-3"}


def _fmt(info) -> str:
    s = f"--dim {info.get('dim', '?')} --n_layers {info.get('n_layers', '?')} --use_moe {int(bool(info.get('use_moe')))}"
    if info.get("model_family", "minimind2") != "minimind2":
        s = f"--model_family {info['model_family']} " + s
    if "vocab_size" in info:
        s += f" (vocab {info['vocab_size']})"
    return s


def _damage(path: str, error) -> str:
    """What is wrong with a file torch.load(weights_only=True) refused, in a few words."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        return f"cannot read it ({e.strerror or e})"
    if size == 0:
        return "the file is empty (0 bytes), the remains of a save or a copy that was cut short"
    msg = " ".join(str(error).split())
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg)
    if m:
        what = f"a Python object ({m.group(1)})"
        return (f"it holds {what} that torch.load reads only with weights_only=False, which can run code "
                "hidden in the file, so it is not loaded; if you trust where it came from, load it yourself once "
                "and torch.save just its state_dict of tensors")
    if "magic number" in msg or "Unsupported operand" in msg:
        return f"not a file written by torch.save (it starts with {head!r})"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save's zip archive / legacy pickle
        return (f"the file is truncated or damaged ({size} bytes; {msg.split('. ')[0][:100]}), e.g. "
                "copied or downloaded while it was still being written")
    return f"not a file written by torch.save (it starts with {head!r})"


def torch_load(path: str, fix: str):
    """torch.load(path, weights_only=True) on the CPU; never weights_only=False.

    A damaged file is one UserError line: the file, what is wrong with it (empty, truncated,
    not a torch file, needs weights_only=False) and `fix`, what to do about it.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: not a readable PyTorch checkpoint: {_damage(path, e)}; {fix}") from None


def read_state_dict(path: str, made_by_script: str = None):
    """torch.load(weights_only=True) with one-line errors for a missing or unreadable file."""
    if not os.path.exists(path):
        hint = f"it is written by {made_by_script}; run that first" if made_by_script else "check the path"
        raise UserError(f"{path}: checkpoint not found; {hint} (or point --out_dir/--from_weight at an existing file)")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, expected a .pth state_dict file")
    fix = (f"re-create it with {made_by_script}" if made_by_script else "re-create it with the training script") \
        + " or copy it again from a complete original"
    state = torch_load(path, fix)
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
    if "score.weight" in state and "score.weight" not in own:
        raise UserError(f"{path}: is a reward model (train_reward.py): it scores conversations, it does not "
                        "generate; pass it to train_grpo.py or train_ppo.py --reward_model_path, or export it "
                        "with scripts/convert_model.py --to llama")
    held, asked = describe_state_dict(state), describe_state_dict(own)
    if held["model_family"] != asked["model_family"]:
        h, a = held["model_family"], asked["model_family"]
        raise UserError(f"{path}: holds a {FAMILY_NAMES[h]} model, but the flags build a {FAMILY_NAMES[a]} one "
                        f"(--model_family {a}); pass --model_family {h}, or keep each family's checkpoints in its own "
                        "--out_dir (both write the same file names)")
    if held != asked:
        raise UserError(f"{path}: holds a model with {_fmt(held)}, but the flags ask for {_fmt(asked)}; "
                        "pass the flags it was trained with, or choose another checkpoint")
    detail = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected
              else f"{wrong[0]} is {tuple(state[wrong[0]].shape)}, model wants {tuple(own[wrong[0]].shape)}")
    raise UserError(f"{path}: does not match the model ({detail}; {len(missing)} missing, "
                    f"{len(unexpected)} unexpected, {len(wrong)} mis-shaped keys); not a MiniMind checkpoint of this size")


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


def rng_state():
    """This process's RNG states (torch, Python, NumPy, CUDA): what a resume file holds per rank."""
    st = {"torch": torch.get_rng_state(), "python": random.getstate()}
    name, keys, pos, has_gauss, cached = np.random.get_state()
    st["numpy"] = (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st):
    """Restore rng_state()."""
    torch.set_rng_state(st["torch"])
    random.setstate(_as_tuple(st["python"]))
    name, keys, pos, has_gauss, cached = st["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
