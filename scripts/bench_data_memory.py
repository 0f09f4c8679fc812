"""Build time, peak memory, reopening and a DataLoader epoch of the data sets, against the file's size;
optionally side by side with another checkout of the code (--compare_with, e.g. a git worktree of an
earlier commit), interleaved in the same run.

Generates a MiniMind-format JSONL file of --size_mb (pretrain {"text"} or SFT {"conversations"}),
then, for each implementation (old, new: one after the other, in the same order each time), each in a
fresh subprocess so the peaks do not mix:
  build  - construct the data set with no cache (validate, tokenize, write the cache)
  reuse  - construct it again (a cache hit: "open") and read --reads random items
  epoch  - one DataLoader epoch over the cache: shuffled, batches of 32, padded by the project's collate
           (pretraining: PackedPretrainDataset rows, the training default; SFT: SFTDataset)
  lists  - (--compare_lists) MiniMind's way: json.loads every line into a Python list
Peak RSS is VmHWM (ru_maxrss, but not inherited over exec); "growth" is how much the peak rose above
the peak after imports (torch, transformers, datasets, the tokenizer). Tokenizing worker processes
(--num_proc > 1; forked, so their RSS counts the parent's shared pages) are sampled every 0.5 s for the
sum of their Private_Dirty. Reading memory-maps the cache: pages touched count in RSS but are
file-backed page cache (RssFile), not allocations (RssAnon); both are shown at the end.

    python scripts/bench_data_memory.py --size_mb 300 --kind pretrain --compare_lists
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.data_memory import run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size_mb", type=int, default=300)
    ap.add_argument("--kind", choices=("pretrain", "sft", "both"), default="pretrain")
    ap.add_argument("--tokenizer_path", default=None)
    ap.add_argument("--max_length", type=int, default=512)
    ap.add_argument("--reads", type=int, default=20000, help="random items read after a cache hit")
    ap.add_argument("--num_proc", type=int, default=None, help="tokenizing processes (default: auto)")
    ap.add_argument("--compare_lists", action="store_true", help="also load it MiniMind's way")
    ap.add_argument("--compare_with", default=None, metavar="DIR",
                    help="another checkout of this repository (e.g. `git worktree add /tmp/old COMMIT`), "
                         "measured first in every step")
    ap.add_argument("--epoch_rounds", type=int, default=1,
                    help="DataLoader epochs per implementation, interleaved (with --compare_with: the per-round ratio)")
    ap.add_argument("--workdir", default=None, help="where to write the file (default: a temp dir)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    run(args)


if __name__ == "__main__":
    main()
