"""Command-line flags shared by the training scripts, eval_model.py, the server and the converter.

MiniMind2's flag names are kept (--dim/--n_layers, with the newer --hidden_size/--num_hidden_layers
as aliases). Every value is checked by argparse, so a bad value is argparse's one-line error, exit 2.
"""
import argparse
import os
import re

import torch

from trainer.errors import UserError, fail


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no multi-line usage dump), still exit code 2; once under torchrun.

    A flag written with extra dashes (`----batch_size 4`, as MiniMind's tutorial has it) is read as
    the flag it names, with a note on stderr; an unknown flag's error suggests the closest real one."""

    def error(self, message):
        fail(f"{self.prog}: error: {' '.join(message.split())}{self._suggestion(message)} "
             f"(see {self.prog} --help)", prefix="")

    def parse_known_args(self, args=None, namespace=None):
        import sys
        args = list(sys.argv[1:] if args is None else args)
        if getattr(self, "_stage_family", None):  # the script's own flags exist by now: mark them too
            family_defaults(self, self._stage_family)
            self._stage_family = None
        parsed, rest = super().parse_known_args([self._fewer_dashes(a) for a in args], namespace)
        return plain_sizes(parsed), rest

    def _fewer_dashes(self, arg):
        m = re.fullmatch(r"-{3,}([A-Za-z][\w-]*)(=.*)?", arg) if isinstance(arg, str) else None
        if m and "--" + m.group(1) in self._option_string_actions:
            if os.environ.get("RANK", "0") == "0":  # once under torchrun
                import sys
                print(f"note: read {arg.split('=')[0]} as --{m.group(1)}", file=sys.stderr, flush=True)
            return "--" + m.group(1) + (m.group(2) or "")
        return arg

    def _suggestion(self, message):
        import difflib
        m = re.match(r"unrecognized arguments: (-\S+)", message)
        if not m:
            return ""
        flag = "--" + m.group(1).lstrip("-").split("=")[0]
        close = difflib.get_close_matches(flag, [o for o in self._option_string_actions if o.startswith("--")], n=1)
        return f"; did you mean {close[0]}?" if close else ""


def str2bool(v) -> bool:
    """A real boolean: MiniMind's `type=bool` turned the string "False" into True."""
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "y", "on"):
        return True
    if s in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (1/0/true/false), got {v!r}")


def positive_int(v) -> int:
    try:
        i = int(v)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v!r}")
    if i <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v!r}")
    return i


def nonneg_int(v) -> int:
    try:
        i = int(v)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v!r}")
    if i < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v!r}")
    return i


def positive_float(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v!r}")
    if not f > 0 or f != f or f == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v!r}")
    return f


def nonneg_float(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v!r}")
    if not f >= 0 or f == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v!r}")
    return f


def unit_float(v) -> float:
    """A share: a number in [0, 1]."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {v!r}")
    if not 0 <= f <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {v!r}")
    return f


# The model families (model/model_minimind.py's FAMILIES). A script's defaults are MiniMind2's; with
# --model_family minimind3 (or MINIMIND_MODEL_FAMILY=minimind3 in the environment, so that MiniMind-3's own
# commands run as its README types them) the flags that MiniMind-3's scripts default otherwise take its
# values: 768 x 8 everywhere, and each stage's data file, lengths and the like (STAGE_DEFAULTS). A flag
# given on the command line always wins.
MODEL_FAMILIES = ("minimind2", "minimind3")
FAMILY_ENV = "MINIMIND_MODEL_FAMILY"
FAMILY_SIZES = {"minimind3": {"dim": 768, "n_layers": 8}}
# MiniMind-3's script defaults (its trainer/*.py at HEAD) where they differ from the MiniMind2 ones here;
# learning rates only where ours are not a fix of a MiniMind loss (DPO's, the RL scripts' stay ours)
STAGE_DEFAULTS = {"minimind3": {
    "pretrain": dict(data_path="./dataset/pretrain_t2t_mini.jsonl", max_seq_len=340, epochs=2),
    "sft": dict(data_path="./dataset/sft_t2t_mini.jsonl", max_seq_len=768, epochs=2, batch_size=16,
                learning_rate=1e-5),
    "dpo": dict(max_seq_len=1024, epochs=1, batch_size=4, save_weight="dpo"),
    "lora": dict(max_seq_len=340, from_weight="full_sft"),
    "distill": dict(data_path="./dataset/sft_t2t_mini.jsonl", max_seq_len=340),
    "grpo": dict(data_path="./dataset/rlaif.jsonl", max_seq_len=768, from_weight="full_sft", max_gen_len=1024,
                 num_generations=6, thinking_ratio=0.9),
    "ppo": dict(data_path="./dataset/rlaif.jsonl", max_seq_len=768, from_weight="full_sft", max_gen_len=1024,
                thinking_ratio=0.9),
    "spo": dict(data_path="./dataset/rlaif.jsonl", max_seq_len=768, from_weight="full_sft"),
    "agent": dict(max_gen_len=768, num_generations=4),
}}


class _Marked:
    """A default that --model_family may replace: an int, float or str subclass, or None's stand-in."""


class _MarkedInt(int, _Marked):
    pass


class _MarkedFloat(float, _Marked):
    pass


class _MarkedStr(str, _Marked):
    pass


class _MarkedNone(_Marked):
    """None's stand-in (None cannot be subclassed): false, and shown as None in --help and errors."""

    def __bool__(self):
        return False

    def __repr__(self):
        return "None"

    __str__ = __repr__


def _mark(value):
    if value is None:
        return _MarkedNone()
    for kind, marked in ((bool, None), (int, _MarkedInt), (float, _MarkedFloat), (str, _MarkedStr)):
        if isinstance(value, kind):
            return value if marked is None else marked(value)
    return value


def _unmark(value):
    if isinstance(value, _MarkedNone):
        return None
    for kind in (int, float, str):
        if isinstance(value, _Marked) and isinstance(value, kind):
            return kind(value)
    return value


class FamilyDefault(_MarkedInt):
    """A size flag's default, which --model_family may replace (an explicit --dim never is)."""


def family_defaults(parser, family_values):
    """Record, per family, the values the parser's flags default to (MiniMind2's are the parser's own) and
    mark the current defaults as replaceable; with MINIMIND_MODEL_FAMILY set they start as that family's."""
    table = getattr(parser, "_family_values", {f: {} for f in MODEL_FAMILIES})
    for fam, values in family_values.items():
        table.setdefault(fam, {}).update(values)
    parser._family_values = table
    env = os.environ.get(FAMILY_ENV)
    for action in parser._actions:
        if action.dest in table.get("minimind3", {}) or action.dest in ("dim", "n_layers"):
            table["minimind2"].setdefault(action.dest, _unmark(action.default))
            value = table.get(env, {}).get(action.dest, table["minimind2"][action.dest]) if env else action.default
            action.default = _mark(value)
    return parser


class SetFamily(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        setattr(namespace, self.dest, value)
        table = getattr(parser, "_family_values", {})
        for dest, mm2 in table.get("minimind2", {}).items():
            if isinstance(getattr(namespace, dest, None), _Marked):
                setattr(namespace, dest, _mark(table.get(value, {}).get(dest, mm2)))


def plain_sizes(args):
    """The parsed values as plain types (the marks of replaceable defaults are for parsing only)."""
    for dest, value in vars(args).items():
        if isinstance(value, _Marked):
            setattr(args, dest, _unmark(value))
    return args


def add_model_args(parser, dim=512, n_layers=8, max_seq_len=512, use_moe=False):
    g = parser.add_argument_group("model")
    family = os.environ.get(FAMILY_ENV) or "minimind2"
    if family not in MODEL_FAMILIES:
        fail(f"{FAMILY_ENV}={family}: expected one of {', '.join(MODEL_FAMILIES)}; unset it or fix it", prefix="")
    g.add_argument("--model_family", choices=MODEL_FAMILIES, default=family, action=SetFamily,
                   help="minimind2 (default: MiniMind2, a small Llama) or minimind3 (MiniMind-3, aligned with "
                        "Qwen3: 4 key/value heads, q/k norms, a wider MLP, a top-1 MoE; its sizes default to "
                        "768 x 8)")
    g.add_argument("--dim", "--hidden_size", dest="dim", type=positive_int, default=FamilyDefault(dim),
                   help=f"hidden size (default {dim}; 768 with --model_family minimind3)")
    g.add_argument("--n_layers", "--num_hidden_layers", dest="n_layers", type=positive_int,
                   default=FamilyDefault(n_layers),
                   help=f"number of transformer layers (default {n_layers}; 8 with --model_family minimind3)")
    g.add_argument("--use_moe", type=str2bool, default=use_moe, metavar="{1,0,true,false}",
                   help="mixture-of-experts feed-forward (a real boolean; default %(default)s)")
    g.add_argument("--max_seq_len", type=positive_int, default=max_seq_len,
                   help=f"samples are cut to this many tokens (default {max_seq_len})")
    return family_defaults(parser, FAMILY_SIZES)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_device_args(parser):
    parser.add_argument("--device", type=str, default=default_device(),
                        help="cuda, cuda:N or cpu (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", choices=list(DTYPES), default=None,
                        help="compute dtype (default bfloat16 on CUDA, float32 on CPU, where bf16 matmuls are ~500x slower)")
    return parser


def add_tokenizer_arg(parser, default="./model"):
    parser.add_argument("--tokenizer_path", type=str, default=default,
                        help="directory with tokenizer.json / tokenizer_config.json (default %(default)s)")
    return parser


def add_out_dir_arg(parser, default="out"):
    # --save_dir: MiniMind's later name (its 2025-10 scripts)
    parser.add_argument("--out_dir", "--save_dir", dest="out_dir", type=str, default=default,
                        help="where checkpoints are read and written (default %(default)s)")
    return parser


def add_seed_arg(parser, default=1337):
    parser.add_argument("--seed", type=nonneg_int, default=default, help="random seed (default %(default)s)")
    return parser


def add_common_args(parser, out_dir="out", tokenizer_path="./model", seed=1337):
    """--device --dtype --tokenizer_path --out_dir --seed in one call."""
    add_device_args(parser)
    add_tokenizer_arg(parser, tokenizer_path)
    add_out_dir_arg(parser, out_dir)
    add_seed_arg(parser, seed)
    return parser


def check_device(device: str) -> torch.device:
    """Validate --device, with a one-line UserError for a device this machine does not have."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {device!r}: expected cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type not in ("cpu", "mps"):
        raise UserError(f"--device {device!r}: expected cpu, cuda or cuda:N")
    return dev


def resolve_dtype(dtype, device) -> torch.dtype:
    """--dtype name (or None for the default) -> torch dtype, refusing what the device cannot do."""
    dev_type = torch.device(device).type
    if dtype is None:
        return torch.bfloat16 if dev_type == "cuda" else torch.float32
    if dtype == "float16" and dev_type == "cpu":
        raise UserError("--dtype float16: needs a CUDA device; use --dtype float32 (or bfloat16) on CPU")
    return DTYPES[dtype]


def build_config(args, **overrides):
    """MiniMindConfig from the model flags (MiniMind2 field names)."""
    from model import MiniMindConfig
    kw = dict(hidden_size=int(args.dim), num_hidden_layers=int(args.n_layers), use_moe=bool(args.use_moe),
              model_family=getattr(args, "model_family", "minimind2"))
    kw.update(overrides)
    return MiniMindConfig(**kw)


def family_template(tokenizer, family):
    """The tokenizer with its family's chat template: for MiniMind-3, the project's rendering of its layout
    (model/chat_template_minimind3.jinja) unless the tokenizer's own template already renders it (MiniMind-3's
    tokenizer does: every assistant turn opens a think block). MiniMind2's family keeps the tokenizer's."""
    if family != "minimind3" or not getattr(tokenizer, "chat_template", None):
        return tokenizer
    probe = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    try:
        if "<|im_start|>assistant\n<think>\n\n</think>\n\na<|im_end|>" in tokenizer.apply_chat_template(
                probe, tokenize=False):
            return tokenizer
    except Exception:
        pass
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model",
                        "chat_template_minimind3.jinja")
    with open(here, encoding="utf-8") as f:
        tokenizer.chat_template = f.read()
    return tokenizer


def load_tokenizer(path: str, family: str | None = None):
    """AutoTokenizer from --tokenizer_path, with a one-line error when it is not there; with its model family's
    chat template (family_template)."""
    if not os.path.isdir(path) or not os.path.exists(os.path.join(path, "tokenizer.json")) and \
            not os.path.exists(os.path.join(path, "tokenizer_config.json")):
        raise UserError(f"{os.path.join(path, 'tokenizer.json')}: tokenizer not found; pass --tokenizer_path "
                        "to a directory holding tokenizer.json (the repo ships one in ./model)")
    from transformers import AutoTokenizer
    try:
        return family_template(AutoTokenizer.from_pretrained(path), family)
    except Exception as e:
        raise UserError(f"{path}: could not load the tokenizer ({type(e).__name__}: {' '.join(str(e).split())[:160]})")


def make_parser(description, *, stage, epochs, batch_size, learning_rate, accumulation_steps,
                max_seq_len, data_path, from_weight, save_weight, wandb_project, dim=512, n_layers=8,
                log_interval=100, save_interval=100, lr_help=None):
    """The flags every training script shares, with that stage's MiniMind2 defaults (and MiniMind-3's, for
    --model_family minimind3: STAGE_DEFAULTS, applied to the script's own flags too when it parses)."""
    p = ArgumentParser(description=description)
    p._stage_family = {fam: values.get(stage, {}) for fam, values in STAGE_DEFAULTS.items()}
    add_common_args(p)
    add_model_args(p, dim=dim, n_layers=n_layers, max_seq_len=max_seq_len)
    g = p.add_argument_group("training")
    g.add_argument("--data_path", type=str, default=data_path, help="training JSONL (default %(default)s)")
    g.add_argument("--epochs", type=positive_int, default=epochs, help="default %(default)s")
    g.add_argument("--batch_size", type=positive_int, default=batch_size, help="samples per micro-batch per process (default %(default)s)")
    g.add_argument("--learning_rate", type=positive_float, default=learning_rate,
                   help=lr_help or "peak learning rate (default %(default)s)")
    g.add_argument("--accumulation_steps", type=positive_int, default=accumulation_steps,
                   help="micro-batches per optimizer step (default %(default)s)")
    g.add_argument("--grad_clip", type=nonneg_float, default=1.0, help="max grad norm, 0 = no clipping")
    g.add_argument("--max_bad_steps", type=nonneg_int, default=10,
                   help="a step with a non-finite loss or gradient norm is skipped; stop (exit code 2) after "
                        "this many in a row, 0 = never (default %(default)s)")
    g.add_argument("--warmup_iters", type=nonneg_int, default=0, help="linear warmup, in optimizer steps")
    g.add_argument("--log_interval", type=positive_int, default=log_interval, help="log every N optimizer steps")
    g.add_argument("--save_interval", type=positive_int, default=save_interval,
                   help="save weights + resume file every N optimizer steps (and at the end)")
    g.add_argument("--num_workers", type=nonneg_int, default=1, help="DataLoader worker processes")
    g.add_argument("--compile", "--use_compile", dest="compile", type=str2bool, default=False, metavar="{1,0}",
                   help="torch.compile the model (the first steps compile; a new sequence length may recompile once)")
    g.add_argument("--group_by_length", type=str2bool, default=True, metavar="{1,0}",
                   help="batch samples of similar length together, so padding to the batch's longest wastes little")
    g.add_argument("--from_weight", type=str, default=from_weight,
                   help="start from {out_dir}/{from_weight}_{dim}[_moe].pth ('none' = from scratch; "
                        "a path ending in .pth is used as is) (default %(default)s)")
    if save_weight is not None:  # None: the stage names its own output (train_lora.py: --lora_name)
        g.add_argument("--save_weight", type=str, default=save_weight,
                       help="write {out_dir}/{save_weight}_{dim}[_moe].pth (default %(default)s)")
    g.add_argument("--from_resume", type=int, choices=[0, 1], default=0,
                   help="1 = continue from {out_dir}/{save_weight}_{dim}[_moe]_resume.pth if it exists"
                   if save_weight is not None else "1 = continue from the resume file beside the weights, if it exists")
    g.add_argument("--val_data_path", type=str, default=None, help="held-out JSONL for validation loss/perplexity")
    g.add_argument("--eval_interval", type=positive_int, default=None,
                   help="validate every N optimizer steps (default: --save_interval) and at the end")
    g = p.add_argument_group("logging")
    g.add_argument("--use_wandb", action="store_true", help="log to Weights & Biases (WANDB_MODE=offline works)")
    g.add_argument("--wandb_project", type=str, default=wandb_project)
    # MiniMind's inference-time YaRN switch: refused here (trainer/loop.py) with one line
    p.add_argument("--inference_rope_scaling", action="store_true", help=argparse.SUPPRESS)
    # MiniMind's launch flags: torchrun's environment decides, these are accepted and ignored.
    p.add_argument("--ddp", action="store_true", help=argparse_suppress())
    p.add_argument("--local_rank", type=int, default=-1, help=argparse_suppress())
    p.set_defaults(stage=stage)
    return p


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS
