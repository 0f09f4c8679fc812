"""README.md read as text: its ``` blocks as commands and snippets in order, shell tokens, tables.

Also the two facts about the machine that the README's checks consult: whether .ci/run runs a
command, and whether a package is installed. Used by tests/test_readme_*.py and readme_session.py.
"""
import os
import re
import shlex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


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
