"""--streaming 1 (dataset/streaming.py) on the demo data: a datasets IterableDataset split by rank,
packed like PackedPretrainDataset, resumable; and under torchrun (2 processes, gloo) kill-then-resume."""
import itertools
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset.streaming as streaming  # noqa: E402
from dataset.lm_dataset import PackedPretrainDataset  # noqa: E402
from dataset.sources import DataError  # noqa: E402
from dataset.streaming import StreamingPretrainDataset  # noqa: E402
from test_lm_dataset import write_jsonl  # noqa: E402
from test_train_common import tokenizer_dir  # noqa: E402
from test_train_scripts import logged, user_error  # noqa: E402

DEMO = os.path.join(ROOT, "dataset", "demo", "pretrain.jsonl")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if not os.path.exists(DEMO):
        pytest.skip("dataset/demo not generated")
    d = tmp_path_factory.mktemp("demo")
    shutil.copy(DEMO, d / "pretrain.jsonl")
    return str(d / "pretrain.jsonl")


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tokenizer_dir())


def stream(path, tok, rank=0, world_size=1, L=64):
    return StreamingPretrainDataset(path, tok, L, rank=rank, world_size=world_size, verbose=False)


def test_ranks_read_disjoint_pieces_that_cover_the_data(demo, tok, monkeypatch):
    monkeypatch.setattr(streaming, "PIECE_BYTES", 16 << 10)  # several pieces per rank
    ranks = [stream(demo, tok, r, 2) for r in (0, 1)]
    assert len(ranks[0].pieces) >= 8 and len(ranks[0].pieces) % 2 == 0
    docs = [Counter(tuple(d["ids"]) for d in ds.docs) for ds in ranks]
    everything = Counter(tuple(d["ids"]) for d in stream(demo, tok).docs)
    assert docs[0] and docs[1] and docs[0] + docs[1] == everything  # each document read once, by one rank
    assert sum(everything.values()) == sum(1 for line in open(demo, encoding="utf-8") if line.strip())


def test_rows_are_the_packed_rows_and_resume_continues_across_passes(demo, tok, tmp_path):
    packed = PackedPretrainDataset(demo, tok, 64, cache_dir=str(tmp_path), verbose=False)
    ds = stream(demo, tok)
    assert abs(len(ds) - len(packed)) <= 0.02 * len(packed)  # the estimate of one pass
    it = iter(ds)
    for r in range(len(packed) - 1):  # the packed set pads its last row; the stream goes on
        assert all(torch.equal(a, b) for a, b in zip(next(it), packed[r])), r
    a = stream(demo, tok)
    head = list(itertools.islice(iter(a), 100))
    saved = a.state_dict()
    torch.save(saved, tmp_path / "state.pth")  # as the trainer keeps it, in the resume file
    rest = list(itertools.islice(iter(a), len(packed) + 20))  # through the end of the pass, into the next
    assert a._pass == 1
    b = stream(demo, tok)
    b.load_state_dict(torch.load(tmp_path / "state.pth", weights_only=True))
    again = list(itertools.islice(iter(b), len(rest)))
    assert all(torch.equal(x, y) for r, s in zip(rest, again) for x, y in zip(r, s))
    assert len(head) == 100 and not torch.equal(head[-1][0], rest[0][0])


def test_a_bad_line_stops_at_its_line(tmp_path, tok, monkeypatch):
    rows = [{"text": f"document {i} " * 20} for i in range(300)]
    rows[250] = '{"text": "broken'
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(DataError, match=r"p\.jsonl:251: expected one JSON object per line, got invalid JSON "
                                        r"\(unterminated string starting at column 10\)"):
        stream(path, tok)  # the estimate reads the first MiB: an early bad line stops before training
    monkeypatch.setattr(streaming, "SAMPLE_BYTES", 4096)
    monkeypatch.setattr(streaming, "PIECE_BYTES", 8192)
    ds = stream(path, tok, 1, 2)
    with pytest.raises(DataError, match=r"p\.jsonl:251: expected one JSON object"):
        list(itertools.islice(iter(ds), 10000))


def test_streaming_needs_packing(capsys):
    import train_pretrain
    line = user_error(train_pretrain, ["--streaming", "1", "--packed", "0"], capsys)
    assert "--streaming 1 packs documents" in line


def _cmd(data, out, *extra):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            os.path.join(ROOT, "train_pretrain.py"), "--device", "cpu", "--dim", "32", "--n_layers", "1",
            "--max_seq_len", "64", "--batch_size", "8", "--accumulation_steps", "1", "--epochs", "1",
            "--log_interval", "1", "--save_interval", "5", "--num_workers", "0", "--streaming", "1",
            "--val_data_path", data, "--eval_interval", "100000", "--tokenizer_path", tokenizer_dir(),
            "--data_path", data, "--out_dir", str(out), *extra]


def _descendants(pid):
    children = {}
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out, todo = out + kids, todo + kids
    return out


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds torchrun's workers in /proc")
def test_torchrun_kill_then_resume_continues_from_the_saved_position(demo, tok, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    # SIGKILL the whole torchrun group at the first step line after its first save
    p = subprocess.Popen(_cmd(demo, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=env, cwd=ROOT, )
    seen, saved = [], False
    for line in p.stdout:
        seen.append(line)
        saved = saved or line.startswith("saved ")
        if saved and line.startswith("epoch "):
            for pid in [p.pid] + _descendants(p.pid):  # torchrun starts its workers in their own sessions
                os.kill(pid, signal.SIGKILL)
            break
    p.wait(timeout=60)
    log = "".join(seen)
    assert p.returncode == -signal.SIGKILL, log[-3000:]
    assert log.count("tokenized ") == 1, log  # the map-style validation file: rank 0 built it, rank 1 loaded it
    first = torch.load(out / "pretrain_32_resume.pth", weights_only=True)
    k, total = first["step"], int(log.split(" optimizer steps")[0].split()[-1])
    assert first["config"]["streaming"] and k % 5 == 0 and 0 < k < total - 10, log[-2000:]
    # each rank's saved position is exactly k batches of 8 rows into its own share of the pieces
    for r in (0, 1):
        ds = stream(demo, tok, r, 2)
        list(itertools.islice(iter(ds), 8 * k))
        assert ds.state_dict() == first["rng"][r]["data"], r
    assert first["rng"][0]["data"] != first["rng"][1]["data"]

    res = subprocess.run(_cmd(demo, out, "--from_resume", "1"), capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert f"resumed from epoch 1 step {k}" in res.stdout and "tokenized " not in res.stderr
    assert sorted(logged(res.stdout)) == list(range(k + 1, total + 1))
    last = torch.load(out / "pretrain_32_resume.pth", weights_only=True)
    for r in (0, 1):  # ... and it went on from there: the rows after the saved position, no more, no fewer
        ds = stream(demo, tok, r, 2)
        ds.load_state_dict(first["rng"][r]["data"])
        list(itertools.islice(iter(ds), 8 * (total - k)))
        assert ds.state_dict() == last["rng"][r]["data"], r
