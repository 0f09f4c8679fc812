"""demo/tool_recipe.py: the data of the recipe that teaches the demo model the tool task."""
import json
import random
import re
from pathlib import Path

from demo.tool_recipe import make_recipe_sets, tool_preamble, write_recipe_sets

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"numbers": 50, "preamble": 5, "calls": 40, "sft_add": 30, "sft_multiply": 6, "rl_per_task": 8,
         "heldout_per_task": 10}


def _tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(ROOT / "model"))


def _pairs(text):
    return {tuple(map(int, m)) for m in re.findall(r"(\d+) [+*] (\d+)", text)}


def test_the_recipe_sets_hold_out_their_numbers_and_give_the_tools_results(tmp_path):
    from model.tools import ToolRegistry
    registry = ToolRegistry()
    tok = _tokenizer()
    sets = make_recipe_sets(random.Random(0), tok, SMALL)
    assert {k: len(v) for k, v in sets.items()} == {"numbers": 50, "preamble": 5, "calls": 40, "tool_sft": 36,
                                                     "agent_rl": 16, "heldout": 20}
    held = set().union(*(_pairs(h["expr"]) for h in sets["heldout"]))
    assert len(held) == 20
    trained = set()
    for name in ("calls", "tool_sft", "agent_rl"):
        for row in sets[name]:
            trained |= _pairs(json.dumps(row))
    assert trained and not held & trained
    tasks = [("*" in json.loads(r["conversations"][2]["tool_calls"])[0]["arguments"]["expression"])
             for r in sets["tool_sft"]]
    assert sum(tasks) == 6 and len(tasks) - sum(tasks) == 30  # few multiplications: what RL has left to learn
    for row in sets["tool_sft"]:
        system, user, call, tool, answer = row["conversations"]
        (made,) = json.loads(call["tool_calls"])
        # the SFT's tool turn is what the registry gives in the RL rollouts, byte for byte
        assert json.loads(tool["content"]) == registry.execute(made["name"], made["arguments"])
        result = json.loads(tool["content"])["result"]
        # every number follows ' "' in the question, the call, the result and the answer
        assert f'"{made["arguments"]["expression"]}"' in user["content"] and answer["content"].endswith(f'"{result}".')
    for row in sets["agent_rl"]:
        expr = re.search(r'"(.*)"', row["conversations"][1]["content"]).group(1)
        assert row["gt"] == [str(registry.execute("calculate_math", {"expression": expr})["result"])]
    for doc in sets["numbers"]:
        numbers = re.findall(r'"(\d+)"', doc["text"])
        assert len(numbers) == 12 and numbers[0::2] == numbers[1::2]  # each number said twice
    for doc in sets["preamble"]:
        assert doc["text"].startswith(tool_preamble(tok)) and "calculate_math" in doc["text"]
    paths = write_recipe_sets(sets, tmp_path)
    assert [json.loads(l) for l in open(paths["tool_sft"], encoding="utf-8")] == sets["tool_sft"]
    # train_full_sft.py reads them, and trains on the call and the answer, never on the tool's result
    from dataset.lm_dataset import SFTDataset
    ds = SFTDataset(paths["tool_sft"], tok, max_length=512)
    assert len(ds) == 36 and ds.num_truncated == 0
    _, targets, mask = ds[0]
    trained = tok.decode([int(t) for t, keep in zip(targets, mask) if keep])
    (made,) = json.loads(sets["tool_sft"][0]["conversations"][2]["tool_calls"])
    result = json.loads(sets["tool_sft"][0]["conversations"][3]["content"])["result"]
    assert made["arguments"]["expression"] in trained and f'The result is "{result}".' in trained
    assert "<tool_response>" not in trained and '{"result"' not in trained
    again = make_recipe_sets(random.Random(0), tok, SMALL)
    assert again == sets
