"""README.md's relative links and #anchors resolve, and it holds no placeholder."""
import os
import re

from readme_parsing import ROOT, read_readme


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
