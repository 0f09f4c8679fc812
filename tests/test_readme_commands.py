"""README.md cannot rot: every command in it is run here (or, where it cannot run here, checked).

Convention. Every line of a ```bash block is one command (a trailing backslash continues it on
the next line; blank lines and lines starting with # are skipped). ```python blocks are client
snippets run against the README's server; ```json blocks are data-format examples, each line fed
to the data set class it documents; ```text blocks are not run. Any other fence is an error.

The README reads as one session typed in a fresh clone, top to bottom, so the commands run in
order, in a sandbox copy of the repo where ./dataset holds tiny stand-ins (cut from the demo
corpus) of MiniMind's files. Each command line is kept verbatim; small-scale flags are APPENDED
(argparse keeps the last value), e.g. `--n_layers 1 --max_seq_len 64 --epochs 1 --device cpu`.
`--dim` is left alone, so checkpoint names (out/full_sft_768.pth, which `mv` renames) stay the
README's.

How each kind of command is checked:
- python SCRIPT ...      run (exit 0, plus what it promises: a checkpoint saved, an answer, ...).
                         Python scripts run in a fork of a process that has already imported
                         torch and transformers (same interpreter, argv, cwd, env, stdin), which
                         saves seconds of imports per command; pipes (printf ... | python ...)
                         feed the left side's output as stdin.
- torchrun (one node)    the torchrun options are parsed by torchrun's own parser and the script
                         runs as one process (the scripts work either way); the first such
                         command also runs under real torchrun with 2 processes (gloo).
- torchrun (multi-node)  torchrun's parser and the script's parser accept every option.
- mv / rm                run in the sandbox; the source must have existed.
- server + curl/python   the server runs in the background on a free port; curl and the openai
                         snippet are sent to it (port rewritten), and so is a question from
                         scripts/chat_openai_api.py (--base_url appended).
- streamlit run PAGE     Streamlit's options must be its config options and the page's own flags
                         (after --) must parse; the page's runs (AppTest, Chromium) are
                         tests/test_web_demo.py.
- lm_eval --model hf      lm-eval's parser takes the options; the folder is one the README wrote.
- pip / pytest / wandb sync / ollama / vllm
                         files and options they name must exist (requirements files, what
                         .ci/run runs, offline-run folders, the Modelfile and its GGUF, the
                         Llama folder); the packages they pin must be the ones the code names.
- scripts/demo.py, scripts/bench*.py, scripts/eval_benchmarks.py
                         their parser accepts the README's flags; the runs themselves are
                         tests/test_demo.py, tests/test_bench.py, tests/test_data_memory.py and
                         tests/test_eval_benchmarks.py.
A command that fits none of these fails the test: add a check (tests/readme_session.py) before
adding such a command. The tokenizer's compression table must also be what the documented command
prints. The flag tables are tests/test_readme_flags.py's, the links tests/test_readme_links.py's.
"""
import os
import re
import subprocess
import sys

import pytest

from readme_parsing import (_ci_runs, fences, read_readme, script_key, split_env, steps, tables, tokens,
                            torchrun_split)
from readme_session import SMALL, TIMEOUT, Session, classify, copy_repo, make_stand_ins

STEPS = steps()


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    s = Session(tmp_path_factory.mktemp("readme"))
    yield s
    s.stop_server()
    s.fork.close()


def test_readme_has_the_commands_it_must():
    cmds = [s.text for s in STEPS if s.kind == "bash"]
    for must in (
        "pip install -r requirements.txt",
        "python scripts/demo.py",
        "pip install -r requirements-test.txt",
        "python -m pytest -q",
        "torchrun --nproc_per_node 2 train_pretrain.py --n_layers 16 --dim 768 --use_wandb",
        'torchrun --nproc_per_node 2 train_full_sft.py --data_path "./dataset/sft_512.jsonl" --n_layers 16 --dim 768 --use_wandb',
        "python eval_model.py --model_mode 1 --n_layers 16 --dim 768",
        "torchrun --nproc_per_node 2 train_dpo.py --n_layers 16 --dim 768 --batch_size 4 --use_wandb",
        "mv out/full_sft_768.pth out/pretrain_768.pth",
    ):
        assert must in cmds, f"README lost the command: {must}"
    assert any("--from_weight full_sft --save_weight full_sft_2048" in c for c in cmds)
    assert any("--from_resume 1" in c for c in cmds)
    assert any(c.startswith("WANDB_MODE=offline ") for c in cmds)
    assert any(c.startswith("wandb sync ") for c in cmds)
    assert any("--nnodes" in c and "--node_rank" in c for c in cmds)


# The chat command scripts/demo.py prints at its end (tests/test_demo.py checks it prints this one).
DEMO_CHAT = "python eval_model.py --out_dir out/demo --dim 128 --n_layers 2 --model_mode 2 --device cpu"


def test_quickstart_is_two_commands_the_demo_chat_then_the_ci_test_command():
    text = read_readme()
    m = re.search(r"^## Quickstart\n(.*?)^## ", text, re.M | re.S)
    assert m, "no '## Quickstart' section"
    blocks = [b for lang, _, b in fences(m.group(1)) if lang == "bash"]
    assert [b.split("\n") for b in blocks] == [
        ["pip install -r requirements.txt", "python scripts/demo.py"],
        [DEMO_CHAT],
        ["pip install -r requirements-test.txt", "python -m pytest -q"]]
    assert _ci_runs("pip install -r requirements-test.txt") and _ci_runs("python -m pytest -q")


def test_every_fence_has_a_known_language():
    for lang, line, _ in fences(read_readme()):
        assert lang in ("bash", "python", "json", "text"), \
            f"README.md:{line - 1}: ```{lang or '(no language)'}: use bash (run by this test), python, json or text"


def test_every_command_is_classified():
    for s in STEPS:
        classify(s)  # raises for a command no check knows
    kinds = [classify(s) for s in STEPS]
    for k in ("python", "torchrun", "multinode", "serve", "curl", "snippet", "json"):
        assert k in kinds, f"no {k} command found: did the README's structure change?"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(STEPS)), ids=[f"line{s.line}" for s in STEPS])
def test_command(session, index):
    r = session.run_through(index)
    if index == len(STEPS) - 1:
        session.stop_server()
    assert r.ok, r.msg
    if r.skipped:
        pytest.skip(r.msg)


@pytest.mark.slow
def test_first_torchrun_command_under_real_torchrun(tmp_path):
    """The README's first torchrun command, with 2 processes on gloo, as typed (plus small flags)."""
    step = next(s for s in STEPS if s.kind == "bash" and classify(s) == "torchrun")
    env, toks = split_env(tokens(step.text))
    _, script, _, _ = torchrun_split(toks[1:])
    sandbox = str(tmp_path / "repo")
    copy_repo(sandbox)
    make_stand_ins(sandbox, read_readme())
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    run_env.update(env, WANDB_MODE=env.get("WANDB_MODE", "disabled"), OMP_NUM_THREADS="1",
                   MINIMIND_DATA_CACHE=str(tmp_path / "cache"))
    # `torchrun` is the console script of torch.distributed.run; -m picks this interpreter's for sure
    cmd = [sys.executable, "-m", "torch.distributed.run"] + toks[1:] + SMALL[script_key(script)]
    p = subprocess.run(cmd, cwd=sandbox, env=run_env, capture_output=True, text=True, timeout=TIMEOUT)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert "2 process(es)" in out, out[-3000:]
    assert re.search(r"^saved \S+\.pth \(step \d+, final\)$", out, re.M), out[-3000:]


@pytest.mark.slow
def test_tokenizer_table_is_what_the_command_prints(session):
    """The compression table in README equals the documented command's output (run when it can)."""
    idx = next((i for i, s in enumerate(STEPS) if s.kind == "bash" and "tokenizer_compression.py" in s.text), None)
    assert idx is not None, "README lost the tokenizer_compression.py command"
    r = session.run_through(idx)
    assert r.ok, r.msg
    if session.compression_output is None:
        pytest.skip(r.msg or "compression command not run")
    printed = [(h, r) for h, r, _ in tables(session.compression_output) if h[0] == "held-out text"]
    documented = [t for t in tables(read_readme()) if t[0][0] == "held-out text"]
    assert printed and documented, "compression table missing"
    (header, rows), (dh, drows, dline) = printed[0], documented[0]
    dmap = {r[0]: dict(zip(dh, r)) for r in drows}
    assert len(drows) == len(rows), f"README.md:{dline}: {len(drows)} rows, the command prints {len(rows)}"
    for row in rows:
        assert row[0] in dmap, f"README.md:{dline}: the table lacks the row {row[0]}"
        for h, v in zip(header, row):
            assert h in dh, f"README.md:{dline}: the table lacks the column {h}"
            assert dmap[row[0]][h] == v, f"README.md:{dline}: {row[0]} / {h}: README {dmap[row[0]][h]}, printed {v}"
