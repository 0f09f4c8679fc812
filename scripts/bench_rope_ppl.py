"""Perplexity past the trained length, with and without YaRN (benchmarks/rope_ppl.py).

A model trained at a short length (the demo's: 128 tokens) is asked held-out text in windows of 1x, 2x,
4x and 8x that length, as trained (plain RoPE), with YaRN from the trained length (factor 8), and with
MiniMind's fixed --inference_rope_scaling (16x from 2048). Writes a table, a JSON and a PNG.

    python scripts/bench_rope_ppl.py --out_dir out/demo --dim 128 --n_layers 2 --model_mode 0 --trained_len 128
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import rope_ppl  # noqa: E402
from model.loading import add_source_args, load_source  # noqa: E402
from trainer.args import ArgumentParser, positive_int  # noqa: E402
from trainer.errors import UserError, run_main  # noqa: E402


def get_parser():
    p = ArgumentParser(description="Perplexity at 1x-8x the trained length, with and without YaRN",
                       conflict_handler="resolve")
    add_source_args(p)
    p.add_argument("--max_seq_len", type=int, default=None, help=argparse.SUPPRESS)  # --trained_len says it here
    p.add_argument("--trained_len", type=positive_int, default=128,
                   help="the --max_seq_len the model was trained with (default %(default)s: the demo's)")
    p.add_argument("--data_path", default=None,
                   help="JSONL of held-out text: each line's \"text\", or else its \"answer\" (default: the demo's "
                        "held-out answers)")
    p.add_argument("--windows", type=positive_int, default=4, help="windows per length (default %(default)s)")
    p.add_argument("--output_dir", default=None, help="where rope_ppl.json and rope_ppl.png go (default {out_dir})")
    return p


def read_texts(path):
    texts = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    row = json.loads(line)
                    text = row.get("text") or row.get("answer")
                    if not isinstance(text, str):
                        raise UserError(f"{path}:{n}: expected a \"text\" or \"answer\" string; fix the line")
                    texts.append(text)
    except FileNotFoundError:
        raise UserError(f"{path}: not found; pass --data_path to a JSONL of held-out text")
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not JSON lines ({e}); pass a JSONL file")
    if not texts:
        raise UserError(f"{path}: no text in it")
    return texts


def main(argv=None):
    args = get_parser().parse_args(argv)
    if args.inference_rope_scaling:
        raise UserError("--inference_rope_scaling: this benchmark compares with and without it itself; drop the flag")
    args.data_path = args.data_path or os.path.join(ROOT, "dataset", "demo", "heldout.jsonl")
    texts = read_texts(args.data_path)
    model, tokenizer, where = load_source(args)
    print(f"{where}: perplexity on {os.path.relpath(args.data_path)} at "
          + ", ".join(str(args.trained_len * m) for m in rope_ppl.MULTIPLES) + " tokens", flush=True)
    result = rope_ppl.run(model, tokenizer, texts, args.trained_len, args.windows)
    out = args.output_dir or args.out_dir
    os.makedirs(out, exist_ok=True)
    rope_ppl.save(result, os.path.join(out, "rope_ppl.json"))
    rope_ppl.plot(result, os.path.join(out, "rope_ppl.png"))
    print(rope_ppl.table(result))
    print(f"wrote {os.path.join(out, 'rope_ppl.json')} and {os.path.join(out, 'rope_ppl.png')}")
    return 0


if __name__ == "__main__":
    run_main(main)
