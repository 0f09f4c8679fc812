"""LoRA through peft, stored in MiniMind2's LoRA file format.

The adapter layers are peft's (`LoraConfig` + `get_peft_model`); this module only decides where they
go, reads and writes MiniMind2's files, and turns every mismatch into one line.

Files: {out_dir}/lora/{name}_{dim}[_moe].pth, a plain state dict of the LoRA tensors only, under
MiniMind2's names (its model/model_lora.py):

    model.layers.0.self_attn.q_proj.lora.A.weight   (rank x in_features)
    model.layers.0.self_attn.q_proj.lora.B.weight   (out_features x rank)

MiniMind adds B(A(x)) to the layer's output with no scaling, so a file always holds the
adapter with peft's alpha / rank scaling folded into B: it reads back (here or in MiniMind) as
rank = alpha, scale 1, the same function. The rank is read from the shapes.

    lora_path(out_dir, name, dim, use_moe)   where an adapter lives
    list_adapters(out_dir)                   what {out_dir}/lora holds
    find_adapter(out_dir, name, dim, ...)    --lora_name -> path, or one line listing what there is
    add_lora(model, rank, alpha, targets)    a new, trainable adapter (train_lora.py)
    apply_lora(model, path)                  a saved adapter on top of a model (peft-wrapped)
    merge_lora(model, path)                  the same, merged into the model's weights
    lora_state_dict(peft_model)              the adapter in MiniMind2's format
"""
import os
import re
import warnings

import torch
from torch import nn

from trainer.checkpoint import unwrap
from trainer.errors import UserError

# MiniMind2's choice: its apply_lora adapts every square nn.Linear, which in MiniMind2's
# attention (8 query heads, 2 key/value heads) are the query and output projections.
DEFAULT_TARGETS = "q_proj,o_proj"
KEY_RE = re.compile(r"^(?P<module>.+)\.lora\.(?P<ab>[AB])\.weight$")
FILE_RE = re.compile(r"^(?P<name>.+)_(?P<dim>\d+)(?P<moe>_moe)?\.pth$")


def lora_path(out_dir, name, dim, use_moe=False) -> str:
    return os.path.join(out_dir, "lora", f"{name}_{dim}{'_moe' if use_moe else ''}.pth")


# ------------------------------------------------------------------------------ reading files

def _strip(key):
    for p in ("module.", "_orig_mod."):  # saved from a DDP / compiled model
        while key.startswith(p):
            key = key[len(p):]
    return key


def read_lora(path):
    """{module name: (A, B)} from a MiniMind-format LoRA file, with one-line errors."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: LoRA adapter not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: not a readable PyTorch file ({type(e).__name__}); re-create it with train_lora.py")
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"{path}: expected a state dict of LoRA tensors (as train_lora.py writes)")
    parts, stray = {}, []
    for k, v in state.items():
        m = KEY_RE.match(_strip(k))
        if m is None:
            stray.append(k)
            continue
        parts.setdefault(m.group("module"), {})[m.group("ab")] = v
    if stray:
        what = "a full model checkpoint" if any(k.endswith("embed_tokens.weight") for k in stray) else "not a LoRA adapter"
        raise UserError(f"{path}: {what}: key {stray[0]} is not MODULE.lora.A.weight / MODULE.lora.B.weight "
                        "(MiniMind's LoRA format); pass an adapter written by train_lora.py")
    adapters, ranks = {}, set()
    for module, ab in sorted(parts.items(), key=lambda kv: _natural(kv[0])):
        if set(ab) != {"A", "B"}:
            missing = ({"A", "B"} - set(ab)).pop()
            raise UserError(f"{path}: {module} has no lora.{missing}.weight; the file is incomplete")
        A, B = ab["A"], ab["B"]
        if A.dim() != 2 or B.dim() != 2:
            raise UserError(f"{path}: {module}: lora.A and lora.B must be matrices, got shapes "
                            f"{tuple(A.shape)} and {tuple(B.shape)}")
        if A.shape[0] != B.shape[1]:
            raise UserError(f"{path}: {module}: rank mismatch, lora.A is {tuple(A.shape)} (rank {A.shape[0]}) "
                            f"but lora.B is {tuple(B.shape)} (rank {B.shape[1]}); the file is corrupt")
        ranks.add(int(A.shape[0]))
        adapters[module] = (A, B)
    if len(ranks) > 1:
        raise UserError(f"{path}: rank mismatch, the adapters have ranks {sorted(ranks)}; "
                        "one file holds one rank (train_lora.py --lora_rank)")
    return adapters


def _natural(s):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def adapter_rank(adapters) -> int:
    return int(next(iter(adapters.values()))[0].shape[0])


def list_adapters(out_dir):
    """[dict(name, path, rank, dim, use_moe)] for every adapter file in {out_dir}/lora (rank None if unreadable)."""
    d = os.path.join(out_dir, "lora")
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return []
    out = []
    for f in names:
        m = FILE_RE.match(f)
        if m is None or f.endswith("_resume.pth") or f.startswith("."):
            continue
        path = os.path.join(d, f)
        try:
            rank = adapter_rank(read_lora(path))
        except UserError:
            rank = None
        out.append(dict(name=m.group("name"), path=path, rank=rank, dim=int(m.group("dim")),
                        use_moe=bool(m.group("moe"))))
    return out


def describe_adapters(out_dir) -> str:
    have = list_adapters(out_dir)
    if not have:
        return f"{os.path.join(out_dir, 'lora')} holds no adapters"
    items = [f"{a['name']} (--dim {a['dim']}{' --use_moe 1' if a['use_moe'] else ''}, "
             f"rank {a['rank'] if a['rank'] is not None else '?'})" for a in have]
    return f"{os.path.join(out_dir, 'lora')} holds: " + ", ".join(items)


def check_lora_name(name):
    """--lora_name for writing: a plain name (the file is {out_dir}/lora/{name}_{dim}[_moe].pth)."""
    if not name or os.sep in name or (os.altsep and os.altsep in name) or name.endswith(".pth") or name.startswith("."):
        raise UserError(f"--lora_name {name!r}: expected a plain name such as lora_medical "
                        "(it is saved as {out_dir}/lora/{name}_{dim}.pth)")
    return name


def find_adapter(out_dir, name, dim, use_moe=False) -> str:
    """--lora_name NAME -> {out_dir}/lora/NAME_{dim}[_moe].pth (a path ending in .pth is used as is)."""
    path = name if name.endswith(".pth") or os.sep in name else lora_path(out_dir, name, dim, use_moe)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such LoRA adapter; {describe_adapters(out_dir)}; train one with "
                        f"train_lora.py --lora_name {name if not name.endswith('.pth') else 'NAME'} (same --dim/--use_moe)")
    return path


# ------------------------------------------------------------------------------ targets

def block_linears(model):
    """{full name: nn.Linear} of every linear layer inside the transformer blocks (of a peft model too)."""
    base = unwrap(model)
    if hasattr(base, "get_base_model"):
        base = base.get_base_model()
    out = {}
    for n, m in base.named_modules():
        if not re.match(r"^model\.layers\.\d+\.", n) or n.endswith(".base_layer"):
            continue
        m = getattr(m, "base_layer", m)  # peft's LoRA layer wraps the original Linear
        if isinstance(m, nn.Linear):
            out[n] = m
    return out


def resolve_targets(model, spec):
    """--lora_targets ("q_proj,o_proj", "all" or a comma list) -> the full module names it selects."""
    linears = block_linears(model)
    if spec.strip() == "all":
        return sorted(linears, key=_natural)
    wanted = [t.strip() for t in spec.split(",") if t.strip()]
    known = sorted({n.rsplit(".", 1)[-1] for n in linears})

    def picks(t, n):  # a name (q_proj) or the end of a path (1.mlp.down_proj: layer 1's only)
        return n.rsplit(".", 1)[-1] == t if "." not in t else n.endswith("." + t)
    unknown = [t for t in wanted if not any(picks(t, n) for n in linears)]
    if not wanted or unknown:
        raise UserError(f"--lora_targets {spec}: {'no' if not wanted else unknown[0]} is not a linear layer of the "
                        f"blocks; choose from {','.join(known)} (or LAYER.mlp.down_proj-style paths) or 'all'")
    return sorted((n for n in linears if any(picks(t, n) for t in wanted)), key=_natural)


def _peft_model(model, names, rank, alpha):
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(names), lora_dropout=0.0, bias="none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecation notes peft triggers
        return get_peft_model(model, cfg)


def add_lora(model, rank, alpha, targets=DEFAULT_TARGETS):
    """A new adapter (peft's init: A random, B zero, so training starts at the base model); base frozen."""
    return _peft_model(model, resolve_targets(model, targets), rank, alpha)


def trainable_line(peft_model) -> str:
    trainable, total = peft_model.get_nb_trainable_parameters()
    return (f"LoRA: trainable {trainable / 1e6:.3f}M of {total / 1e6:.1f}M parameters "
            f"({100 * trainable / total:.2f}%)")


# ------------------------------------------------------------------------------ checking a file against a model

def check_fits(model, adapters, path):
    """One-line UserError unless every adapter sits on a linear layer of `model` of its shape and the
    file covers the model's layers (an adapter for a base of another size is refused)."""
    linears = block_linears(model)
    n_layers = len(unwrap(model).model.layers)
    cfg = getattr(unwrap(model), "config", None)
    for module, (A, B) in adapters.items():
        lin = linears.get(module)
        if lin is None:
            m = re.match(r"^model\.layers\.(\d+)\.", module)
            if m and int(m.group(1)) >= n_layers:
                break  # reported below with the layer count
            moe = ".experts." in module or ".shared_experts." in module
            hint = (" (an adapter for a --use_moe 1 base)" if moe else
                    " (an adapter for a dense base)" if getattr(cfg, "use_moe", False) and ".mlp." in module else "")
            raise UserError(f"{path}: {module} is not a linear layer of this model{hint}; "
                            "use the adapter with the base it was trained on")
        if A.shape[1] != lin.in_features or B.shape[0] != lin.out_features:
            held = _adapter_dim(adapters)
            base = f"a --dim {held} base, this model is --dim {cfg.hidden_size}" if held and cfg is not None \
                else "a base of another size"
            raise UserError(f"{path}: dims mismatch at {module}: the adapter maps {A.shape[1]} -> {B.shape[0]}, the "
                            f"layer {lin.in_features} -> {lin.out_features}; an adapter for {base}; pass the "
                            "--dim/--n_layers it was trained with")
    per_layer = {}
    for k in adapters:
        m = re.match(r"^model\.layers\.(\d+)\.(.+)$", k)
        if m:
            per_layer.setdefault(int(m.group(1)), set()).add(m.group(2))
    layers = sorted(per_layer)
    # The same layers on every block from 0 up, but fewer blocks than this model has: the adapter was
    # trained on a shallower base (an adapter of chosen layers, such as 1.mlp.down_proj, is not flagged).
    uniform = len({frozenset(v) for v in per_layer.values()}) == 1
    if layers and (layers[-1] >= n_layers or (uniform and layers == list(range(len(layers))) and len(layers) < n_layers)):
        raise UserError(f"{path}: adapts layers {layers[0]}-{layers[-1]} (a {layers[-1] + 1}-layer base), this model "
                        f"has {n_layers} layers; pass the --n_layers it was trained with")


def _adapter_dim(adapters):
    """The hidden size of the base an adapter was trained on, from its attention projections."""
    for module, (A, B) in adapters.items():
        if module.endswith("self_attn.q_proj"):
            return int(A.shape[1])
        if module.endswith("self_attn.o_proj"):
            return int(B.shape[0])
    return None


# ------------------------------------------------------------------------------ apply / merge / save

def apply_lora(model, path):
    """The adapter in `path` on top of `model` (changed in place): a peft model, base frozen."""
    adapters = read_lora(path)
    check_fits(model, adapters, path)
    rank = adapter_rank(adapters)
    pm = _peft_model(unwrap(model), list(adapters), rank, rank)  # MiniMind's files: scale 1
    mods = dict(pm.base_model.model.named_modules())
    with torch.no_grad():
        for module, (A, B) in adapters.items():
            layer = mods[module]
            a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
            a.copy_(A.to(a.dtype))
            b.copy_(B.to(b.dtype))
    return pm


def merge_lora(model, path):
    """`model` (changed in place) with the adapter in `path` merged into its weights: a plain model again."""
    return apply_lora(model, path).merge_and_unload()


def merge_lora_flag(net, out_dir, name):
    """--lora_name NAME on a loaded model (eval, server, converter): the adapter found in
    {out_dir}/lora for the model's size, checked, and merged in float32; returns (model, adapter path)."""
    cfg = net.config
    path = find_adapter(out_dir, name, cfg.hidden_size, bool(getattr(cfg, "use_moe", False)))
    dtype = next(net.parameters()).dtype
    return merge_lora(net.float(), path).to(dtype), path


def lora_state_dict(peft_model, dtype=torch.float32):
    """The adapter in MiniMind2's format: {MODULE.lora.A.weight, MODULE.lora.B.weight}, alpha/rank folded into B."""
    pm = unwrap(peft_model)
    out = {}
    for name, mod in pm.base_model.model.named_modules():
        if hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
            A = mod.lora_A["default"].weight.detach()
            B = mod.lora_B["default"].weight.detach() * mod.scaling["default"]
            out[f"{name}.lora.A.weight"] = A.to("cpu", dtype).clone()
            out[f"{name}.lora.B.weight"] = B.to("cpu", dtype).clone()
    return out
