"""The shape of the repository: the import graph (no script imports a script, no library module
imports a script), README's Layout section against the tree, package docstrings, file lengths."""
import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the top-level folders that are Python packages: the library every script stands on
PACKAGES = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())
LONGEST = {"library": 600, "tests": 800}


def tracked(pattern="*.py"):
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", pattern],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / f for f in out.stdout.split() if (ROOT / f).is_file()]


def is_script(path):
    rel = path.relative_to(ROOT)
    return len(rel.parts) == 1 or rel.parts[0] == "scripts"


def script_names():
    """Names a script is imported by: scripts/x.py as x or scripts.x, a top-level y.py as y."""
    names = set()
    for f in tracked():
        rel = f.relative_to(ROOT)
        if is_script(f):
            names.add(f.stem if len(rel.parts) == 1 else f"scripts.{f.stem}")
            if len(rel.parts) == 2 and f.stem not in PACKAGES:
                names.add(f.stem)  # scripts/ on sys.path (a script run as python scripts/x.py)
        elif rel.parts[0] != "tests" and '__name__ == "__main__"' in f.read_text(encoding="utf-8"):
            names.add(".".join(rel.with_suffix("").parts))  # a CLI inside a package (python -m demo.figures)
    return names


def imported_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for a in node.names:  # from scripts import convert_model
                yield node.lineno, f"{node.module}.{a.name}"
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("import_module",) and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            yield node.lineno, node.args[0].value


def test_no_script_or_library_module_imports_a_script():
    scripts = script_names()
    bad = []
    for f in tracked():
        rel = f.relative_to(ROOT)
        if rel.parts[0] == "tests":
            continue
        for line, name in imported_modules(f):
            if name in scripts or name == "scripts":
                bad.append(f"{rel}:{line} imports {name}")
    assert not bad, "scripts are command lines over the library; move what is shared into a package:\n" + \
        "\n".join(bad)


def test_the_graph_check_sees_a_script_import(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import eval_model\nfrom scripts import convert_model\nfrom scripts.web_demo import a\n")
    names = {n for _, n in imported_modules(f)}
    assert {"eval_model", "scripts.convert_model", "scripts.web_demo"} <= names
    assert {"eval_model", "scripts.convert_model", "scripts.web_demo", "train_dpo", "demo.figures"} <= script_names()


def layout_lines():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout", 1)[1]
    block = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    return [ln for ln in block.splitlines() if ln.strip()]


def layout_paths():
    """Every path a Layout line names: the words before its description (three spaces or more);
    an indented line continues the description above it."""
    paths = []
    for ln in layout_lines():
        if ln[0].isspace():
            continue
        head = re.split(r"\s{3,}", ln.strip(), maxsplit=1)[0]
        paths += head.split()
    return paths


def test_readme_layout_names_what_is_there():
    missing = [p for p in layout_paths() if not list(ROOT.glob(p.rstrip("/")))]
    assert not missing, f"README's Layout names paths that are not in the tree: {missing}"


def test_every_folder_and_package_is_in_the_layout():
    named = {p.rstrip("/") for p in layout_paths()}
    folders = {f.relative_to(ROOT).parts[0] for f in tracked("*") if len(f.relative_to(ROOT).parts) > 1}
    folders = {d for d in folders if not d.startswith(".")}
    subpackages = {str(f.parent.relative_to(ROOT)) for f in tracked("*/__init__.py")
                   if len(f.relative_to(ROOT).parts) > 2}
    unnamed = sorted(d for d in folders | subpackages
                     if not any(n == d or n.startswith(d + "/") for n in named))
    assert not unnamed, f"README's Layout says nothing of {unnamed}"


def test_every_package_says_what_it_holds():
    for pkg in [p for p in tracked("*__init__.py")]:
        doc = ast.get_docstring(ast.parse(pkg.read_text(encoding="utf-8")))
        assert doc and doc.splitlines()[0].strip(), f"{pkg.relative_to(ROOT)}: no docstring saying what it holds"


def test_files_stay_readable():
    long = []
    for f in tracked():
        rel = f.relative_to(ROOT)
        limit = LONGEST["tests" if rel.parts[0] == "tests" else "library"]
        n = len(f.read_text(encoding="utf-8").splitlines())
        if n > limit:
            long.append(f"{rel}: {n} lines (at most ~{limit}; split it along a seam a reader would name)")
    assert not long, "\n".join(long)
