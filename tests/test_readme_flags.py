"""README.md's flag tables are each script's argparse (every flag listed, no stale flag, every literal
default equal), and every --flag the prose names exists.
"""
import functools
import json
import os
import re
import subprocess
import sys

import pytest

from readme_parsing import ROOT, _importable, read_readme, script_key, tables


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
    from streamlit import config as st_config  # `streamlit run --server.address ...`: Streamlit's own options
    known |= {"--" + k for k in st_config.get_config_options()}
    for m in re.finditer(r"(?<![\w-])(--[A-Za-z][\w.-]*)", text):
        flag = m.group(1).rstrip(".")
        line = text.count("\n", 0, m.start()) + 1
        assert flag in known, f"README.md:{line}: {flag} is no flag of any script (or tool) it documents"
