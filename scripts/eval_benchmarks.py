"""Benchmarks through EleutherAI's lm-evaluation-harness, the way MiniMind2 publishes its scores.

    python scripts/eval_benchmarks.py --dim 512 --n_layers 8             # C-Eval, CMMLU, A-CLUE, TMMLU+
    python scripts/eval_benchmarks.py --out_dir out/demo --dim 128 --n_layers 2 --tasks demo_world
    python scripts/eval_benchmarks.py --model_path MiniMind2 --tasks cmmlu,arc_easy --apply_chat_template

A thin layer over lm_eval.simple_evaluate with lm-eval's own `hf` model. The model is chosen as in
eval_model.py and scripts/convert_model.py (--model_mode/--weight/--lora_name with --dim/--n_layers,
or --model_path DIR); .pth weights are first exported to a temporary transformers folder (plain
Llama for a dense MiniMind2 model, the MiniMind folder with its modelling code for MoE, plain Qwen3 / Qwen3-MoE
for the MiniMind-3 family), exactly the folders
scripts/convert_model.py writes, so the scores are those `lm_eval --model hf` gets on an export.

The bundled offline tasks in dataset/demo/lm_eval/ (demo_world, demo_world_en/_zh, demo_world_gen,
demo_world_ppl) are always on the task path; --include_path adds more. Hub data sets (C-Eval, ...)
are downloaded by the harness into the Hugging Face cache on the first run; with
HF_DATASETS_OFFLINE=1 a data set that is not there yet is one error line (exit 2).

Prints a table (task, metric, value, stderr, chance level) and writes the numbers as JSON to
--output (default {out_dir}/eval/{model}.json).
"""
import argparse
import json
import math
import os
import re
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from model.export import export_llama, export_minimind, export_qwen3  # noqa: E402
from model.loading import add_source_args, load_source, source_is_dir, source_name  # noqa: E402
from trainer.args import (ArgumentParser, add_device_args, check_device, nonneg_int,  # noqa: E402
                          positive_int, resolve_dtype)
from trainer.errors import UserError, run_main  # noqa: E402

BUNDLED_TASKS = os.path.join(REPO, "dataset", "demo", "lm_eval")
# MiniMind2's published suites (its README): C-Eval 26.52, CMMLU 24.42, A-CLUE 24.97, TMMLU+ 25.27
DEFAULT_TASKS = "ceval-valid,cmmlu,aclue,tmmluplus"
PIP_HINT = "pip install -r requirements-eval.txt (lm-eval and accelerate)"


def limit_value(v):
    """--limit: N documents per task, or a fraction (0, 1) of each task."""
    try:
        f = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of documents or a fraction, got {v!r}")
    if f <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v!r}")
    return f if f < 1 else int(f)


def batch_size_value(v):
    return v if v.startswith("auto") else positive_int(v)


def get_parser():
    p = ArgumentParser(description="Run lm-evaluation-harness benchmarks (C-Eval, CMMLU, ...) on a MiniMind model",
                       conflict_handler="resolve")
    add_source_args(p)
    add_device_args(p)
    p.add_argument("--max_seq_len", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--tasks", default=DEFAULT_TASKS,
                   help="comma-separated lm-eval tasks or groups (`lm_eval ls tasks` lists them) "
                        f"(default {DEFAULT_TASKS}: MiniMind2's four Chinese suites)")
    p.add_argument("--num_fewshot", type=nonneg_int, default=None,
                   help="examples in each prompt (default: each task's own, 0 for most)")
    p.add_argument("--limit", type=limit_value, default=None,
                   help="only the first N documents of each task (or a fraction < 1): for quick checks")
    p.add_argument("--batch_size", type=batch_size_value, default=8,
                   help="documents per forward pass, or auto (default %(default)s)")
    p.add_argument("--apply_chat_template", action="store_true",
                   help="wrap each prompt in the model's chat template (as MiniMind's later README does)")
    p.add_argument("--include_path", action="append", default=[],
                   help="a folder of extra task YAMLs (repeatable); dataset/demo/lm_eval is always included")
    p.add_argument("--max_length", type=positive_int, default=None,
                   help="longest context the harness feeds the model (default: the model's "
                        "max_position_embeddings); rolling perplexity tasks cut documents into windows of it")
    p.add_argument("--output", default=None,
                   help="JSON file for the results (default {out_dir}/eval/{model}.json)")
    return p


# ------------------------------------------------------------------------------------ the model

def model_folder(args, tmp):
    """(transformers folder for lm-eval's hf model, its format: "minimind" (needs trust_remote_code), "llama" or
    "qwen3", description)."""
    if source_is_dir(args) and not getattr(args, "lora_name", None) and not args.inference_rope_scaling:
        cfg_path = os.path.join(args.model_path, "config.json")
        if not os.path.isfile(cfg_path):
            raise UserError(f"{cfg_path}: not found; --model_path must be a transformers directory "
                            "(scripts/convert_model.py --to minimind or --to llama writes one)")
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        remote = cfg.get("model_type") == "minimind"
        if remote and not os.path.isfile(os.path.join(args.model_path, "model_minimind.py")):
            raise UserError(f"{args.model_path}: a MiniMind folder without model_minimind.py (lm-eval loads it "
                            "with trust_remote_code); re-export it with scripts/convert_model.py --to minimind")
        if not os.path.isfile(os.path.join(args.model_path, "tokenizer.json")):
            raise UserError(f"{args.model_path}: holds no tokenizer.json; lm-eval reads the tokenizer (EOS, pad, "
                            "chat template) from the model folder: export it with scripts/convert_model.py")
        return args.model_path, "minimind" if remote else cfg.get("model_type", "llama"), args.model_path
    net, tokenizer, where = load_source(args)
    folder = os.path.join(tmp, "model")
    if getattr(net.config, "model_family", "minimind2") == "minimind3":  # Qwen3 / Qwen3-MoE, dense or not
        export_qwen3(net, tokenizer, folder, outtype="f32")
        return folder, "qwen3", where
    if getattr(net.config, "use_moe", False):
        export_minimind(net, tokenizer, folder, outtype="f32")
        return folder, "minimind", where
    export_llama(net, tokenizer, folder, outtype="f32")
    return folder, "llama", where


# ------------------------------------------------------------------------------------ the tasks

def task_manager(include_paths, names):
    """A TaskManager that knows the bundled tasks and --include_path; lm-eval's own ~15k task
    configs are indexed (tens of seconds) only when a requested task is not among those."""
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import pattern_match
    for path in include_paths:
        if not os.path.isdir(path):
            raise UserError(f"--include_path {path}: not a folder of task YAML files")
    paths = [BUNDLED_TASKS] + list(include_paths)
    tm = TaskManager(include_path=paths, include_defaults=False)
    if all(pattern_match([n], tm.all_tasks) for n in names):
        return tm
    return TaskManager(include_path=paths)


def resolve_tasks(tm, names):
    from lm_eval.utils import pattern_match
    out = []
    for n in names:
        hits = pattern_match([n], tm.all_tasks)
        if not hits:
            raise UserError(f"--tasks {n}: lm-eval {_lm_eval_version()} has no task or group of that name; "
                            "`lm_eval ls tasks` lists them, or pass --include_path DIR for your own YAMLs")
        out += [h for h in sorted(hits) if h not in out]
    return out


def _lm_eval_version():
    try:
        from importlib.metadata import version
        return version("lm_eval")
    except Exception:
        return "?"


DATA_ERRORS = ("ConnectionError", "DatasetNotFoundError", "OfflineModeIsEnabled", "LocalEntryNotFoundError",
               "HfHubHTTPError", "DataFilesNotFoundError", "EmptyDatasetError")


def _is_data_error(e):
    names = {c.__name__ for c in type(e).__mro__}
    return bool(names & set(DATA_ERRORS)) or "OfflineModeIsEnabled" in str(e)


def missing_data_error(tm, tasks, err):
    """The one-line UserError for a data set the harness could not get: which task, how to fetch it."""
    from lm_eval.tasks import get_task_dict
    culprit = None
    if len(tasks) > 1:
        for t in tasks:  # the error does not say which task it was: load them one at a time
            try:
                get_task_dict([t], tm)
            except Exception as e:  # noqa: BLE001 (any failure to build the task names it)
                if _is_data_error(e):
                    culprit = t
                    break
    culprit = culprit or tasks[0]
    m = re.search(r"reach '([^']+)'", str(err))
    what = f"its data set {m.group(1)}" if m else "its data set"
    offline = os.environ.get("HF_DATASETS_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    where = "is not in the local Hugging Face cache" + (" (HF_DATASETS_OFFLINE=1)" if offline else
                                                         " and could not be downloaded")
    return UserError(f"--tasks {culprit}: {what} {where} ({type(err).__name__}); download it once with "
                     f"HF_DATASETS_OFFLINE unset and network access: HF_DATASETS_OFFLINE= python "
                     f"scripts/eval_benchmarks.py --tasks {culprit} --limit 1 (plus your model flags), then "
                     "offline runs find it")


# ------------------------------------------------------------------------------------ the table

def chance_levels(samples):
    """{task: chance accuracy} for multiple-choice tasks: the mean of 1 / choices over the documents."""
    out = {}
    for task, rows in (samples or {}).items():
        fracs = []
        for r in rows:
            args = r.get("arguments") or {}
            n = len(args) if isinstance(args, (dict, list)) else 0
            if n > 1:
                fracs.append(1.0 / n)
        if fracs and len(fracs) == len(rows):
            out[task] = sum(fracs) / len(fracs)
    return out


def _group_chance(results, chance):
    """Chance of each group: its subtasks' chance weighted by their sizes."""
    for group, subs in (results.get("group_subtasks") or {}).items():
        pairs = [(chance[s], results["n-samples"][s]["effective"]) for s in subs
                 if s in chance and s in results.get("n-samples", {})]
        if pairs and group not in chance:
            n = sum(w for _, w in pairs)
            chance[group] = sum(c * w for c, w in pairs) / max(n, 1)
    return chance


def table_rows(results, chance):
    """(task, metric, value, stderr, chance) for every metric lm-eval reports, groups first."""
    rows = []
    seen = set()
    blocks = [results.get("groups") or {}, results.get("results") or {}]
    for block in blocks:
        for task, metrics in block.items():
            if task in seen:
                continue
            seen.add(task)
            for key, value in metrics.items():
                if "," not in key or key.startswith("alias") or "_stderr," in key:
                    continue
                metric, filt = key.split(",", 1)
                if not isinstance(value, (int, float)):
                    continue
                se = metrics.get(f"{metric}_stderr,{filt}")
                se = se if isinstance(se, (int, float)) and not (isinstance(se, float) and math.isnan(se)) else None
                c = chance.get(task) if metric in ("acc", "acc_norm") else None
                rows.append((task, metric, float(value), se, c))
    return rows


def format_table(rows):
    head = ("task", "metric", "value", "stderr", "chance")
    body = [(t, m, f"{v:.4f}", "-" if s is None else f"{s:.4f}", "-" if c is None else f"{c:.4f}")
            for t, m, v, s, c in rows]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(5)]
    line = lambda r: "  ".join(x.ljust(w) if i < 2 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([line(head), line(tuple("-" * w for w in widths))] + [line(r) for r in body])


# ------------------------------------------------------------------------------------ main

def evaluate(args, log_samples=False):
    """Run the harness as the flags ask: (lm-eval's results dict, summary dict for the JSON)."""
    import importlib.util
    for mod in ("lm_eval", "accelerate"):  # lm-eval's hf model imports accelerate; lm-eval does not install it
        if importlib.util.find_spec(mod) is None:
            raise UserError(f"{mod}: not installed; scripts/eval_benchmarks.py needs it: {PIP_HINT}")
    import lm_eval
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not names:
        raise UserError("--tasks: give at least one task, e.g. --tasks demo_world")
    device = check_device(args.device)
    dtype = str(resolve_dtype(args.dtype, device)).replace("torch.", "")
    tm = task_manager(args.include_path, names)
    tasks = resolve_tasks(tm, names)

    with tempfile.TemporaryDirectory(prefix="minimind_eval_") as tmp:
        folder, fmt, where = model_folder(args, tmp)
        remote = fmt == "minimind"
        model_args = dict(pretrained=folder, dtype=dtype, trust_remote_code=remote)
        if args.max_length:
            model_args["max_length"] = args.max_length
        shown = {"minimind": "MiniMind, trust_remote_code", "llama": "Llama", "qwen3": "Qwen3"}.get(fmt, fmt)
        print(f"model: {where} -> lm-eval hf ({shown}, {dtype}, "
              f"{device}); tasks: {', '.join(tasks)}", flush=True)
        t0 = time.time()
        try:
            results = lm_eval.simple_evaluate(
                model="hf", model_args=model_args, tasks=tasks, num_fewshot=args.num_fewshot,
                batch_size=args.batch_size, device=str(device), limit=args.limit,
                apply_chat_template=args.apply_chat_template, task_manager=tm, log_samples=True)
        except Exception as e:  # noqa: BLE001 (a data set the harness cannot get is the user's to fetch)
            if _is_data_error(e):
                raise missing_data_error(tm, tasks, e) from None
            raise
        took = time.time() - t0
    samples = results.get("samples")
    chance = _group_chance(results, chance_levels(samples))
    summary = {
        "model": where, "hf_folder_format": fmt, "tasks": tasks,
        "num_fewshot": args.num_fewshot, "limit": args.limit, "apply_chat_template": args.apply_chat_template,
        "batch_size": args.batch_size, "device": str(device), "dtype": dtype, "seconds": round(took, 2),
        "lm_eval_version": _lm_eval_version(),
        "results": results.get("results"), "groups": results.get("groups"),
        "group_subtasks": results.get("group_subtasks"), "n-samples": results.get("n-samples"),
        "versions": results.get("versions"), "n-shot": results.get("n-shot"),
        "chance": chance, "rows": [dict(task=t, metric=m, value=v, stderr=s, chance=c)
                                   for t, m, v, s, c in table_rows(results, chance)],
    }
    if not log_samples:
        results.pop("samples", None)
    return results, summary


def default_output(args):
    return os.path.join(args.out_dir, "eval", source_name(args) + ".json")


def report(summary, output):
    """Print the table and write the JSON."""
    rows = [(r["task"], r["metric"], r["value"], r["stderr"], r["chance"]) for r in summary["rows"]]
    print(format_table(rows))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    from lm_eval.utils import handle_non_serializable
    with open(output, "w", encoding="utf-8") as f:
        json.dump(summary, f, ensure_ascii=False, indent=2, default=handle_non_serializable)
    print(f"{len(summary['tasks'])} task(s) in {summary['seconds']:.1f} s; wrote {output}")


def main(argv=None):
    args = get_parser().parse_args(argv)
    _, summary = evaluate(args)
    report(summary, args.output or default_output(args))
    return summary


if __name__ == "__main__":
    run_main(main)
