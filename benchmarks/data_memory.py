"""The data layer's memory benchmark: a generated MiniMind-format JSONL file (pretrain or SFT), and each
measurement (build, reuse, epoch, or MiniMind's lists) run in a fresh Python subprocess that reports its
peak RSS, time and memory split as one JSON line; run() measures one or two checkouts side by side, as
scripts/bench_data_memory.py's docstring describes."""
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
def rss_mb():
    # VmHWM, the peak RSS of this process's memory: ru_maxrss would do, except that Linux carries
    # it over execve, so a child of a big process (pytest) would start at its parent's peak
    try:
        return status_mb("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
def status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")
def children_anon_mb():
    # tokenizing workers are forked: their RSS counts the parent's shared pages, so sum what
    # they wrote themselves (Private_Dirty: own allocations and copy-on-write copies)
    me, total = str(os.getpid()), 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{{pid}}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] != me:
                    continue
            with open(f"/proc/{{pid}}/smaps_rollup") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("Private_Dirty:")) / 1024
        except (OSError, StopIteration, IndexError):
            pass
    return total
import threading
workers_peak = [0.0]
def sample():
    while True:
        workers_peak[0] = max(workers_peak[0], children_anon_mb())
        time.sleep(0.5)
threading.Thread(target=sample, daemon=True).start()
mode, path, kind, tok_path, max_length, reads, num_proc, cache_dir = {args!r}
import numpy as np, torch
from transformers import AutoTokenizer
from dataset.lm_dataset import PackedPretrainDataset, PretrainDataset, SFTDataset, pad_collate
try:
    import datasets  # a fixed cost of the library (the new code imports it on first use), not of the data
except ImportError:
    pass
tok = AutoTokenizer.from_pretrained(tok_path)
torch.set_num_threads(1)
base = rss_mb()  # peak so far: imports and tokenizer
t0 = time.time()
out = {{}}
if mode == "lists":  # what MiniMind's loaders do
    samples = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            samples.append(json.loads(line))
    n = len(samples)
else:
    cls = (PackedPretrainDataset if mode == "epoch" else PretrainDataset) if kind == "pretrain" else SFTDataset
    ds = cls(path, tok, max_length, num_proc=num_proc, verbose=False, cache_dir=cache_dir)
    n = len(ds)
    assert ds.cache.built == (mode == "build"), "cache state not as expected"
    out["open_seconds"] = round(time.time() - t0, 3)
    if reads:
        rng = np.random.default_rng(0)
        tokens, t1 = 0, time.time()
        for i in rng.integers(0, n, reads):
            tokens += len(ds[int(i)][0])
        out["read_us"] = round((time.time() - t1) / reads * 1e6, 1)
    if mode == "epoch":
        loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, collate_fn=pad_collate(0),
                                             generator=torch.Generator().manual_seed(0))
        t1, c1, batches = time.time(), time.process_time(), 0
        for X, Y, M in loader:
            batches += 1
        # CPU seconds too: on a shared machine they move far less with the other programs than wall time
        out.update(epoch_seconds=round(time.time() - t1, 2), epoch_cpu_seconds=round(time.process_time() - c1, 2),
                   batches=batches)
elapsed = time.time() - t0
print(json.dumps(dict(out, mode=mode, samples=n, seconds=round(elapsed, 2), rss_after_imports_mb=round(base, 1),
                      peak_rss_mb=round(rss_mb(), 1), growth_mb=round(rss_mb() - base, 1),
                      end_rss_anon_mb=round(status_mb("RssAnon"), 1), end_rss_file_mb=round(status_mb("RssFile"), 1),
                      workers_peak_private_mb=round(workers_peak[0], 1))))
"""

EN = ("the model learns from data and every token counts while the loss goes down slowly "
      "small language models can be trained on one machine in a few hours with care").split()
ZH = list("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经")


def make_line(rng, kind):
    def sentence():
        if rng.random() < 0.5:
            return " ".join(rng.choices(EN, k=rng.randint(6, 30))) + ". "
        return "".join(rng.choices(ZH, k=rng.randint(10, 60))) + "。"
    text = "".join(sentence() for _ in range(rng.randint(3, 25)))
    if kind == "pretrain":
        return {"text": text}
    cut = len(text) // 3
    return {"conversations": [{"role": "user", "content": text[:cut]},
                              {"role": "assistant", "content": text[cut:]}]}


def generate(path, size_mb, kind, seed=0):
    rng = random.Random(seed)
    pool = [json.dumps(make_line(rng, kind), ensure_ascii=False) + "\n" for _ in range(4000)]
    target, written = size_mb * 2 ** 20, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            line = rng.choice(pool)
            f.write(line)
            written += len(line.encode("utf-8"))
    return os.path.getsize(path)


def run_child(mode, path, kind, tok_path, max_length, reads, num_proc, root=ROOT, cache_dir=None):
    code = _CHILD.format(root=root, args=(mode, path, kind, tok_path, max_length, reads, num_proc, cache_dir))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    if out.returncode != 0:
        raise RuntimeError(f"{mode} ({root}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def default_tokenizer():
    for d in (os.path.join(ROOT, "model"), os.path.join(ROOT, "..", "shared", "minimind_tokenizer")):
        if os.path.exists(os.path.join(d, "tokenizer.json")):
            return d
    sys.exit("no tokenizer found: pass --tokenizer_path")


def _dir_mb(d):
    return round(sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f != ".gitignore") / 2 ** 20, 1)


def _line(name, mode, r, size):
    extra = ""
    if "open_seconds" in r and mode != "build":
        extra += f"  open {r['open_seconds']:.2f}s"
    if "read_us" in r:
        extra += f"  {r['read_us']:.0f} us/item"
    if "epoch_seconds" in r:
        extra += f"  epoch {r['epoch_seconds']:.1f}s, {r['epoch_cpu_seconds']:.1f} CPU s ({r['batches']} batches)"
    return (f"{name:4s} {mode:6s} {r['seconds']:7.1f}s  peak RSS {r['peak_rss_mb']:7.1f} MiB  growth "
            f"{r['growth_mb']:7.1f} MiB ({r['growth_mb'] * 2**20 / size:.1%} of file)  RssAnon/RssFile "
            f"{r['end_rss_anon_mb']:.0f}/{r['end_rss_file_mb']:.0f} MiB  workers' private peak "
            f"{r['workers_peak_private_mb']:.1f} MiB  samples {r['samples']}{extra}")


def run(args):
    """The whole measurement for scripts/bench_data_memory.py's parsed args: printed, and JSON with --json."""
    tok_path = args.tokenizer_path or default_tokenizer()
    impls = ([("old", os.path.abspath(args.compare_with))] if args.compare_with else []) + [("new", ROOT)]
    results = {"impls": dict(impls), "tokenizer": tok_path, "num_proc": args.num_proc or "auto"}
    for kind in (("pretrain", "sft") if args.kind == "both" else (args.kind,)):
        with tempfile.TemporaryDirectory(dir=args.workdir) as d:
            path = os.path.join(d, f"{kind}.jsonl")
            t0 = time.time()
            size = generate(path, args.size_mb, kind)
            print(f"generated {path}: {size / 2**20:.1f} MiB in {time.time() - t0:.1f}s", flush=True)
            res = results[kind] = {"file_mb": round(size / 2 ** 20, 1)}
            for mode in ("build", "reuse", "epoch") + (("lists",) if args.compare_lists else ()):
                for rnd in range(args.epoch_rounds if mode == "epoch" else 1):
                    # epochs alternate which implementation goes first, so neither always has the warmer page cache
                    order = impls if mode != "lists" else impls[-1:]
                    for name, root in order[::-1] if rnd % 2 else order:
                        cache = os.path.join(d, f"cache_{name}")
                        r = run_child(mode, path, kind, tok_path, args.max_length,
                                      args.reads if mode == "reuse" else 0, args.num_proc, root, cache)
                        if mode == "epoch":
                            res.setdefault(name, {}).setdefault("epochs", []).append(r)
                        res.setdefault(name, {})[mode] = r
                        print(_line(name, mode, r, size), flush=True)
            if len(impls) == 2:
                for key in ("epoch_seconds", "epoch_cpu_seconds"):
                    old, new = ([e[key] for e in res[n]["epochs"]] for n, _ in impls)
                    ratios = sorted(b / a for a, b in zip(old, new))
                    res[f"{key}_ratio_new_old"] = {"median": round(statistics.median(ratios), 3),
                                                   "min": round(ratios[0], 3), "max": round(ratios[-1], 3)}
                    print(f"{kind} {key} over {len(old)} interleaved rounds: old median {statistics.median(old):.2f}, "
                          f"new median {statistics.median(new):.2f}; new/old per round median "
                          f"{statistics.median(ratios):.3f} ({ratios[0]:.2f}-{ratios[-1]:.2f})", flush=True)
            for name, _ in impls:
                res[name]["cache_mb"] = _dir_mb(os.path.join(d, f"cache_{name}"))
                print(f"{name:4s} cache on disk: {res[name]['cache_mb']} MiB", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)

