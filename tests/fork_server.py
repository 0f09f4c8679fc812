"""A fork server: one process that has imported torch and transformers forks a child per script run.

The child takes the request's argv, cwd, env, stdin and log file and runs the script with runpy as
`__main__` (the same interpreter), which saves seconds of imports per README command; with
parse_only the script's argparse only checks the options and prints PARSED with the unknown ones.
"""
import json
import os
import select
import signal
import subprocess
import sys

TIMEOUT = 600


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
