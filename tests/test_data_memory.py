"""Resident memory does not grow with the data file's size (light version of
scripts/bench_data_memory.py; run that script for a few-hundred-MB file).

Building has a fixed cost (tokenizer threads and buffers, ~20 MB) that would hide the trend in a
small file, so this measures two files and compares: memory per MB of data must be near zero while
loading the lines into Python lists (MiniMind's way) costs more than a MB per MB.
"""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_MB, BIG_MB = 2, int(os.environ.get("MINIMIND_MEMTEST_MB", "20"))
sys.path.insert(0, ROOT)

from benchmarks import data_memory as bench  # noqa: E402


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
def test_memory_does_not_grow_with_file_size(tmp_path):
    tok = next((d for d in (os.path.join(ROOT, "model"),
                            os.path.join(ROOT, "..", "shared", "minimind_tokenizer"))
                if os.path.exists(os.path.join(d, "tokenizer.json"))), None)
    if tok is None:
        pytest.skip("no tokenizer present")
    runs = {}
    for mb in (SMALL_MB, BIG_MB):
        path = str(tmp_path / str(mb) / "pretrain.jsonl")
        os.makedirs(os.path.dirname(path))
        size = bench.generate(path, mb, "pretrain") / 2 ** 20
        # num_proc=1: one process does all the tokenizing, so its peak is the whole build's
        runs[mb] = dict(size=size,
                        build=bench.run_child("build", path, "pretrain", tok, 512, 0, 1),
                        reuse=bench.run_child("reuse", path, "pretrain", tok, 512, 5000, 1),
                        lists=bench.run_child("lists", path, "pretrain", tok, 512, 0, 1)
                        if mb == BIG_MB else {"growth_mb": "-"})
    small, big = runs[SMALL_MB], runs[BIG_MB]
    delta = big["size"] - small["size"]

    def per_mb(mode, key="growth_mb"):
        return (big[mode][key] - small[mode][key]) / delta

    report = "; ".join(
        f"{r['size']:.1f} MiB file: build +{r['build']['growth_mb']} MiB peak RSS "
        f"({r['build']['seconds']}s), reuse +{r['reuse']['growth_mb']} MiB "
        f"(RssAnon {r['reuse']['end_rss_anon_mb']}), lists +{r['lists']['growth_mb']} MiB"
        for r in runs.values())
    print(report)
    assert big["build"]["samples"] == big["reuse"]["samples"] == big["lists"]["samples"] > 10000
    assert big["lists"]["growth_mb"] > 0.7 * big["size"], report  # it does see a file-sized load
    assert per_mb("build") < 0.25, report
    # reading touches memory-mapped pages (file-backed, reclaimable); allocations must stay flat
    assert per_mb("reuse", "end_rss_anon_mb") < 0.25, report
    assert big["build"]["growth_mb"] < 3 * big["size"] and big["build"]["growth_mb"] < 64, report
