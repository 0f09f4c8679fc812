"""User errors under `torchrun --nproc_per_node 2` (gloo): the one line is printed once, every rank
exits 2, no rank prints a traceback or a gloo error, and torchrun's summary names the message as the
root cause (trainer/elastic.py). Also the tutorial's DPO command with its four dashes."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train_common import WORDS, tokenizer_dir, write_data  # noqa: E402

sys.path.insert(0, ROOT)
from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from trainer.checkpoint import save_weights  # noqa: E402

SMALL = ["--device", "cpu", "--dim", "32", "--n_layers", "1", "--max_seq_len", "64", "--batch_size", "4",
         "--epochs", "1", "--num_workers", "0", "--log_interval", "1"]


def torchrun(script, *args, timeout=300):
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        os.path.join(ROOT, script), *args],
                       capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false"))
    return r, r.stdout + r.stderr


def rank_exit_codes(out):
    """{rank: exit code} from torchrun's failure summary."""
    return {int(r): int(c) for r, c in re.findall(r"rank\s*:\s*(\d+) \(local_rank: \d+\)\n\s*exitcode\s*:\s*(-?\d+)", out)}


def root_cause(out):
    return out.split("Root Cause (first observed failure):", 1)[1]


def assert_one_clean_line(r, out, fragment):
    """The message once from the ranks, the ranks exit 2, torchrun's root cause naming it, no rank traceback."""
    assert r.returncode != 0, out
    ours = [ln for ln in out.splitlines() if ln.startswith(("error: ", "train_")) and fragment in ln]
    assert len(ours) == 1, out  # printed by one rank only
    codes = rank_exit_codes(out)
    # every rank refuses with 2; one that torchrun stopped (SIGTERM, -15) after a sibling's exit 2 is torchrun's
    # doing, a race on a loaded machine (CI, stop 41), not the rank's
    assert codes.keys() == {0, 1} and 2 in codes.values() and set(codes.values()) <= {2, -15}, out
    assert fragment in root_cause(out), out
    assert "To enable traceback" not in out, out
    # torchrun's own launcher traceback is its business; none comes from a rank (our files, gloo)
    assert not re.search(r'File "[^"]*(train_\w+\.py|/trainer/|/dataset/|/model/)', out), out
    assert "gloo" not in out.lower() and "Connection closed by peer" not in out, out
    return ours[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(str(tmp_path_factory.mktemp("data")), n_pretrain=40, n_sft=24, n_dpo=16)


def test_missing_data_file(data, tmp_path):
    missing = str(tmp_path / "nope.jsonl")
    r, out = torchrun("train_full_sft.py", *SMALL, "--tokenizer_path", tokenizer_dir(), "--from_weight", "none",
                      "--data_path", missing, "--out_dir", str(tmp_path / "out"))
    assert_one_clean_line(r, out, missing)


def test_bad_line_only_in_rank_1s_shard(tmp_path):
    """--streaming 1 splits the shards between the ranks: rank 1 alone reads the second one."""
    shards = tmp_path / "shards"
    shards.mkdir()
    rng = __import__("random").Random(0)
    for name, bad in (("a.jsonl", False), ("b.jsonl", True)):
        with open(shards / name, "w", encoding="utf-8") as f:
            for i in range(12000):  # over a MiB each: the tokens-per-pass estimate reads a.jsonl's head only
                f.write(json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(20))}) + "\n")
                if bad and i == 200:
                    f.write('{"text": "an unterminated string\n')
    r, out = torchrun("train_pretrain.py", *SMALL, "--tokenizer_path", tokenizer_dir(), "--streaming", "1",
                      "--data_path", str(shards), "--out_dir", str(tmp_path / "out"), "--save_interval", "100000")
    line = assert_one_clean_line(r, out, "b.jsonl:202")
    assert "a.jsonl" not in line


def test_checkpoint_with_other_dims(data, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    torch.manual_seed(0)
    save_weights(MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=2)), str(out_dir / "pretrain_32.pth"))
    r, out = torchrun("train_full_sft.py", *SMALL, "--tokenizer_path", tokenizer_dir(), "--data_path", data["sft"],
                      "--out_dir", str(out_dir))
    assert_one_clean_line(r, out, "pretrain_32.pth")


def test_unknown_flag(data, tmp_path):
    r, out = torchrun("train_dpo.py", *SMALL, "--tokenizer_path", tokenizer_dir(), "--data_path", data["dpo"],
                      "--out_dir", str(tmp_path / "out"), "--bacth_size", "4")
    line = assert_one_clean_line(r, out, "--bacth_size")
    assert "did you mean --batch_size?" in line


def test_the_tutorials_dpo_command_with_four_dashes(data, tmp_path):
    """README's tutorial (and MiniMind's) has `----batch_size 4`: it is read as --batch_size."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    torch.manual_seed(0)
    save_weights(MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1)), str(out_dir / "full_sft_32.pth"))
    args = [a for a in SMALL if a not in ("--batch_size", "4")]
    r, out = torchrun("train_dpo.py", *args, "--tokenizer_path", tokenizer_dir(), "--data_path", data["dpo"],
                      "--out_dir", str(out_dir), "----batch_size", "3")
    assert r.returncode == 0, out
    assert out.count("note: read ----batch_size as --batch_size") == 1, out  # said once, not per rank
    assert "batches of 3 per process" in out, out
    assert (out_dir / "rlhf_32.pth").is_file()
