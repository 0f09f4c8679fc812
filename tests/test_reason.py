"""Reasoning (issue 14): trainer/reasoning.py's split and stream, the tag-weighted loss,
train_distill_reason.py end to end / resume / DDP, eval_model.py --model_mode 3, the server's
reasoning_content."""
import os
import random
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainer.reasoning import (THINK_TAGS, ReasoningStream, is_well_formed, split_reasoning,  # noqa: E402
                               tag_spans)

R1 = "<think>\nWopp lives in Sunmar.\nSunmar is the capital of Tarnis.\n</think>\n<answer>\nTarnis\n</answer>"


@pytest.mark.parametrize("text,expected", [
    (R1, ("Wopp lives in Sunmar.\nSunmar is the capital of Tarnis.", "Tarnis")),
    ("plain answer", (None, "plain answer")),
    ("<think>a</think>b", ("a", "b")),
    ("<think>cut off mid tho", ("cut off mid tho", "")),
    ("<think></think><answer></answer>", ("", "")),
    ("  <answer> x </answer>  ", (None, "x")),
    ("1 < 2 and <thinking> is no tag", (None, "1 < 2 and <thinking> is no tag")),
])
def test_split_reasoning(text, expected):
    assert split_reasoning(text) == expected


def test_tags_and_well_formed():
    assert THINK_TAGS == ("<think>", "</think>", "<answer>", "</answer>")
    assert [R1[a:b] for a, b in tag_spans(R1)] == list(THINK_TAGS)
    assert is_well_formed(R1) and is_well_formed("<think></think><answer>x</answer>\n")
    for bad in ("<think>a</think>b", "<answer>x</answer>", "<think>a</think><answer> </answer>",
                "<think>a<think>b</think><answer>x</answer>", "x<think>a</think><answer>y</answer>",
                "<think>a</think><answer>y</answer><answer>z</answer>"):
        assert not is_well_formed(bad), bad


def _stream(chunks):
    s, out = ReasoningStream(), []
    for c in chunks:
        got = s.feed(c)
        assert all(a[0] != b[0] for a, b in zip(got, got[1:])), got   # one piece per kind change
        out += got
    out += s.flush()
    return out


@pytest.mark.parametrize("text", [R1, "plain answer", "<think>a</think>b", "<think>cut off <ans",
                                  "a < b <th", "x<think> y </think>\n<answer>\n z \n</answer>\n tail",
                                  "<<think>>", "</answer>", "<think>\n\n</think>  <answer>  </answer>"])
def test_stream_equals_split_at_every_chunking(text):
    reasoning, answer = split_reasoning(text)
    rng = random.Random(0)
    chunkings = [[text], list(text)] + [
        [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
        for cuts in (sorted(rng.sample(range(1, len(text)), min(3, len(text) - 1))) for _ in range(20))]
    for chunks in chunkings:
        out = _stream(chunks)
        assert all(t for _, t in out), out
        assert "".join(t for k, t in out if k == "reasoning") == (reasoning or ""), chunks
        assert "".join(t for k, t in out if k == "answer") == answer, chunks
        assert not any(tag in t for _, t in out for tag in THINK_TAGS)


def test_stream_emits_early_and_holds_only_partial_tags():
    s = ReasoningStream()
    assert s.feed("<thi") == []
    assert s.feed("nk>\nstep one") == [("reasoning", "step one")]
    assert s.feed(" </th") == []          # the space waits: trailing whitespace of a block is dropped
    assert s.feed("ink>\n<answer>\nTar") == [("answer", "Tar")]
    assert s.feed("nis a<b") == [("answer", "nis a<b")]
    assert s.feed("\n</answer>") == []
    assert s.flush() == []
