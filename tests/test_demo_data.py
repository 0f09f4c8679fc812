"""The bundled demo corpus: reproducible, well-formed, and honest about what is held out."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "dataset" / "demo"
SCRIPT = ROOT / "scripts" / "make_demo_data.py"
FILES = ["pretrain.jsonl", "sft.jsonl", "dpo.jsonl", "heldout.jsonl", "README.md",
         "lm_eval/demo_world_train.jsonl", "lm_eval/demo_world_test.jsonl",
         "tool_sft.jsonl", "agent_rl.jsonl", "tool_heldout.jsonl"]


def load(name):
    rows = []
    with open(DEMO / name, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            assert line.endswith("\n") and line.strip(), f"{name}:{n}: blank or unterminated line"
            rows.append(json.loads(line))
    assert rows, f"{name} is empty"
    return rows


def has_zh(s):
    return any("\u4e00" <= ch <= "\u9fff" for ch in s)


def check_messages(msgs, where):
    assert isinstance(msgs, list) and len(msgs) >= 2, where
    roles = [m["role"] for m in msgs]
    assert set(roles) <= {"system", "user", "assistant"}, where
    assert "system" not in roles[1:], f"{where}: system turn not first"
    turns = roles[1:] if roles[0] == "system" else roles
    # user/assistant alternate, starting with the user and ending with the assistant
    assert turns == ["user", "assistant"] * (len(turns) // 2) and len(turns) % 2 == 0, where
    for m in msgs:
        assert set(m) == {"role", "content"}, where
        assert isinstance(m["content"], str) and m["content"].strip(), where


def test_generator_is_deterministic_and_matches_bundled_files(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, str(SCRIPT), "--out_dir", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for name in FILES:
        assert (out / name).read_bytes() == (DEMO / name).read_bytes(), (
            f"dataset/demo/{name} differs from what scripts/make_demo_data.py writes; re-run it")


def test_other_seed_gives_other_world(tmp_path):
    # guards against a generator that ignores its randomness (and so tests nothing)
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, str(SCRIPT), "--out_dir", str(out), "--seed", "7"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (out / "heldout.jsonl").read_bytes() != (DEMO / "heldout.jsonl").read_bytes()


def test_unwritable_out_dir_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = subprocess.run([sys.executable, str(SCRIPT), "--out_dir", str(blocker / "demo")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "--out_dir" in r.stderr


def test_formats():
    for i, r in enumerate(load("pretrain.jsonl"), 1):
        assert set(r) == {"text"} and isinstance(r["text"], str) and r["text"].strip(), i
    for i, r in enumerate(load("sft.jsonl"), 1):
        assert set(r) == {"conversations"}, i
        check_messages(r["conversations"], f"sft.jsonl:{i}")
    for i, r in enumerate(load("dpo.jsonl"), 1):
        assert set(r) == {"chosen", "rejected"}, i
        check_messages(r["chosen"], f"dpo.jsonl:{i}")
        check_messages(r["rejected"], f"dpo.jsonl:{i}")
        assert r["chosen"][:-1] == r["rejected"][:-1], f"dpo.jsonl:{i}: prompts differ"
        assert r["chosen"][-1]["content"] != r["rejected"][-1]["content"], i
    for i, r in enumerate(load("heldout.jsonl"), 1):
        assert set(r) >= {"question", "answer", "keywords", "distractors", "lang"}, i
        assert r["lang"] in ("en", "zh") and r["keywords"], i
        for k in r["keywords"]:
            assert k.lower() in r["answer"].lower(), f"heldout.jsonl:{i}: keyword not in answer"
        for d in r["distractors"]:
            assert d.lower() not in r["answer"].lower(), f"heldout.jsonl:{i}: distractor in answer"


def test_sft_has_multi_turn_and_system_turns():
    convs = [r["conversations"] for r in load("sft.jsonl")]
    assert sum(sum(m["role"] == "assistant" for m in c) >= 2 for c in convs) >= 20
    assert sum(c[0]["role"] == "system" for c in convs) >= 20
    assert sum(c[0]["role"] != "system" for c in convs) >= 20


def test_heldout_questions_are_not_trained_on():
    held = load("heldout.jsonl")
    sft_text = "\n".join(m["content"] for r in load("sft.jsonl") for m in r["conversations"])
    dpo_text = "\n".join(m["content"] for r in load("dpo.jsonl")
                         for side in ("chosen", "rejected") for m in r[side])
    for r in held:
        # neither the question nor its answer sentence, nor any question about the same
        # fact: the entity and the attribute's answer never meet in an SFT/DPO answer
        assert r["question"] not in sft_text and r["answer"] not in sft_text, r["question"]
        assert r["question"] not in dpo_text and r["answer"] not in dpo_text, r["question"]
    # no answer anywhere -- SFT, DPO, or the Q/A pages in pretraining -- names a held-out
    # fact's entity together with its value (names never hide inside other names)
    answers = [m["content"] for r in load("sft.jsonl") for m in r["conversations"]
               if m["role"] == "assistant"]
    answers += [m["content"] for r in load("dpo.jsonl") for side in ("chosen", "rejected")
                for m in r[side] if m["role"] == "assistant"]
    pretrain = [r["text"] for r in load("pretrain.jsonl")]
    qa_lines = [ln for t in pretrain for ln in t.split("\n") if ln.startswith(("Q: ", "问："))]
    assert qa_lines, "expected Q/A pages in pretrain.jsonl"
    for r in held:
        assert not any(r["question"] in t for t in pretrain), r["question"]
        for text in answers + qa_lines:
            assert not (r["entity"] in text and r["keywords"][0] in text), (text, r["question"])


def test_heldout_answers_are_words_sft_teaches_to_say():
    # every held-out answer word is the answer to some trained question too: a word no SFT answer
    # holds is pushed down by every SFT step, so the model could not say it however well it had
    # read the fact (the bundled corpus once held out Velmora's frog, the world's only frog)
    answers = [m["content"] for r in load("sft.jsonl") for m in r["conversations"] if m["role"] == "assistant"]
    for r in load("heldout.jsonl"):
        assert any(r["keywords"][0] in a for a in answers), (r["keywords"][0], r["question"])


@pytest.mark.parametrize("attr,lang,index,template", [
    ("job", "en", 1, "{n} is {a} {v} by trade."),  # reads like species' "{n} is {a} {v}." up to the value
    ("colour", "zh", 1, "{n}最爱{v}。"),  # the start of food's "{n}最爱吃{v}。"
    ("dish", "zh", 3, "{n}的{v}最有名。"),  # the start of capital's "{n}的首都是{v}。"
])
def test_generator_refuses_statements_that_read_alike_up_to_the_value(monkeypatch, attr, lang, index, template):
    sys.path.insert(0, str(ROOT))
    from demo import world
    import random
    said = list(world.ATTRS[attr][lang + "_say"])
    world.build_world(random.Random(0))  # the templates as they are pass
    said[index] = template
    monkeypatch.setitem(world.ATTRS[attr], lang + "_say", said)
    with pytest.raises(AssertionError):
        world.build_world(random.Random(0))


def test_heldout_facts_are_in_pretraining():
    texts = [r["text"] for r in load("pretrain.jsonl")]
    for r in load("heldout.jsonl"):
        # the reference answer sentence itself is stated, and more than once
        hits = sum(r["answer"] in t for t in texts)
        assert hits >= 2, r["answer"]


def test_heldout_question_wording_is_taught_in_sft():
    # each held-out question is worded like SFT questions about other entities: only the
    # fact is new to the chat model, not the way it is asked
    sft_questions = {m["content"] for r in load("sft.jsonl") for m in r["conversations"]
                     if m["role"] == "user"}
    for r in load("heldout.jsonl"):
        pre, found, post = r["question"].partition(r["entity"])
        assert found
        same_wording = [q for q in sft_questions
                        if q.startswith(pre) and q.endswith(post) and q != r["question"]
                        and len(q) > len(pre) + len(post)]
        assert len(same_wording) >= 3, r["question"]


def test_both_languages_everywhere():
    assert {r["lang"] for r in load("heldout.jsonl")} == {"en", "zh"}
    for name, text in (("pretrain", [r["text"] for r in load("pretrain.jsonl")]),
                       ("sft", [r["conversations"][-1]["content"] for r in load("sft.jsonl")]),
                       ("dpo", [r["chosen"][-1]["content"] for r in load("dpo.jsonl")])):
        zh = sum(map(has_zh, text))
        assert 0.3 < zh / len(text) < 0.7, (name, zh, len(text))


def test_size_bound():
    total = sum(os.path.getsize(DEMO / n) for n in FILES)
    assert total < 2 * 1024 * 1024, total


def test_tool_sets_call_the_right_tool_and_hold_out_their_numbers():
    """tool_sft.jsonl: each conversation calls its task's tool, and the tool result and the answer are what
    the project's tool gives; agent_rl.jsonl's gt likewise; no held-out question's numbers are trained on
    for its task."""
    import re
    from model.tools import ToolRegistry
    registry = ToolRegistry()

    def task_of(call):
        args = call["arguments"]
        if call["name"] == "calculate_math":
            return "multiply" if "*" in args["expression"] else "add"
        return {"km": "km_miles", "kg": "kg_pounds"}[args["from_unit"]]

    def key(task, question):
        return task, tuple(re.findall(r"\d+", question))

    seen = set()
    for row in load("tool_sft.jsonl"):
        system, user, call, tool, answer = row["conversations"]
        (made,) = json.loads(call["tool_calls"])
        offered = [t["function"]["name"] for t in json.loads(system["tools"])]
        assert offered == [made["name"]]
        result = registry.execute(made["name"], made["arguments"])
        assert json.loads(tool["content"]) == result and str(result["result"]) in answer["content"]
        seen.add(key(task_of(made), user["content"]))
    for row in load("agent_rl.jsonl"):
        assert row["conversations"][-1] == {"role": "assistant", "content": ""} and len(row["gt"]) == 1
        seen.add(key(row["task"], row["conversations"][1]["content"]))
    held = load("tool_heldout.jsonl")
    assert {r["lang"] for r in held} == {"en", "zh"} and len({r["task"] for r in held}) == 4
    assert not {key(r["task"], r["question"]) for r in held} & seen
