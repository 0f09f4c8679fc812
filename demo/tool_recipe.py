"""The data of the recipe that teaches the demo's 2-layer model the tool task, and leaves agentic RL room to
raise it (stop 40; demo/tool_sets.py's docstring has the measurements). Written at run time from a seed, not
bundled: about 8 MB of text.

The task: 'Compute "37 * 58".' -> <tool_call> {"name": "calculate_math", "arguments": {"expression": "37 * 58"}}
-> {"result": "2146"} -> 'The result is "2146".' Every number follows the token ' "' wherever it is written, so
that copying it is one skill. The demo's model learns that skill from text before it sees a conversation:

    numbers     '"4821" is "4821". Repeat "97": "97". ...'  (train_pretrain.py, 128-token rows): the digits,
                which the demo's corpus never writes, come apart, and the model learns to repeat a quoted number
    preamble    the chat template's tool preamble, then such pairs (512-token rows): copying still works
                ~300 tokens into a row, where the questions of the tool prompts stand
    calls       three calls written out as plain text, without the template (128-token rows): the number moves
                from the question into the call, and from the result into the answer
    tool SFT    conversations in MiniMind's tool format: every addition, and only a few multiplications
    agent RL    prompts of both, with the result as "gt"; the multiplications are what RL has left to learn

No number pair of the held-out questions is in any of the other sets.
"""
import json
import os

from demo.tool_sets import DEMO_TOOLS, run_tool

SYSTEM = "You can use tools."
CALC_TOOLS = [t for t in DEMO_TOOLS if t["function"]["name"] == "calculate_math"]
OPERATORS = {"add": "+", "multiply": "*"}
PAIR_WORDINGS = ['"{n}" is "{n}".', 'Repeat "{n}": "{n}".', 'Say "{n}". "{n}".', 'The number "{n}" reads "{n}".']
# (what each set holds): sized by the runs in demo/tool_sets.py's docstring
SIZES = {"numbers": 20000, "preamble": 1700, "calls": 14000, "sft_add": 768, "sft_multiply": 48,
         "rl_per_task": 96, "heldout_per_task": 30}


def question(expr):
    return f'Compute "{expr}".'


def answer(result):
    return f'The result is "{result}".'


def _number(rng):
    return str(rng.randint(0, 10 ** rng.randint(1, 4) - 1))


def _pairs(rng, count):
    return " ".join(rng.choice(PAIR_WORDINGS).format(n=_number(rng)) for _ in range(count))


def _case(task, a, b):
    expr = f"{a} {OPERATORS[task]} {b}"
    return {"task": task, "expr": expr, "result": str(run_tool("calculate_math", {"expression": expr})["result"])}


def _draw(rng, avoid):
    while True:
        pair = (rng.randint(11, 99), rng.randint(11, 99))
        if pair not in avoid:
            return pair


def _call_text(case):
    call = json.dumps({"name": "calculate_math", "arguments": {"expression": case["expr"]}})
    return f'{question(case["expr"])} {call} {json.dumps({"result": case["result"]})} {answer(case["result"])}'


def _system():
    return {"role": "system", "content": SYSTEM, "tools": json.dumps(CALC_TOOLS)}


def _conversation(case):
    call = [{"name": "calculate_math", "arguments": {"expression": case["expr"]}}]
    return {"conversations": [_system(), {"role": "user", "content": question(case["expr"])},
                              {"role": "assistant", "content": "", "tool_calls": json.dumps(call)},
                              {"role": "tool", "content": json.dumps({"result": case["result"]})},
                              {"role": "assistant", "content": answer(case["result"])}]}


def tool_preamble(tokenizer):
    """The system turn with the tool's signature, as the chat template renders it for every tool prompt."""
    return tokenizer.apply_chat_template([{"role": "system", "content": SYSTEM}], tools=CALC_TOOLS, tokenize=False)


def make_recipe_sets(rng, tokenizer, sizes=SIZES):
    """{name: rows}: "numbers", "preamble", "calls" ({"text"} rows for train_pretrain.py), "tool_sft"
    (train_full_sft.py), "agent_rl" (train_agent.py) and "heldout" ({"task", "expr", "result", "question"})."""
    used = set()

    def fresh(task, count):  # cases with number pairs no earlier set has
        out = []
        for _ in range(count):
            pair = _draw(rng, used)
            used.add(pair)
            out.append(_case(task, *pair))
        return out

    held = [c for task in OPERATORS for c in fresh(task, sizes["heldout_per_task"])]
    held_pairs = set(used)
    rl = fresh("add", sizes["rl_per_task"]) + fresh("multiply", sizes["rl_per_task"])
    sft = fresh("add", sizes["sft_add"]) + fresh("multiply", sizes["sft_multiply"])
    rng.shuffle(rl)
    rng.shuffle(sft)
    preamble = tool_preamble(tokenizer)
    calls = [" ".join(_call_text(_case(rng.choice(list(OPERATORS)), *_draw(rng, held_pairs))) for _ in range(3))
             for _ in range(sizes["calls"])]
    return {
        "numbers": [{"text": _pairs(rng, 6)} for _ in range(sizes["numbers"])],
        "preamble": [{"text": preamble + _pairs(rng, 16)} for _ in range(sizes["preamble"])],
        "calls": [{"text": text} for text in calls],
        "tool_sft": [_conversation(c) for c in sft],
        "agent_rl": [{"conversations": [_system(), {"role": "user", "content": question(c["expr"])},
                                        {"role": "assistant", "content": ""}], "gt": [c["result"]], "task": c["task"]}
                     for c in rl],
        "heldout": [dict(c, question=question(c["expr"])) for c in held],
    }


FILE_NAMES = {"numbers": "tool_numbers.jsonl", "preamble": "tool_preamble.jsonl", "calls": "tool_calls.jsonl",
              "tool_sft": "tool_sft.jsonl", "agent_rl": "agent_rl.jsonl", "heldout": "tool_heldout.jsonl"}


def write_recipe_sets(sets, folder):
    """{name: path} of the sets written as JSONL into `folder`."""
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, rows in sets.items():
        paths[name] = os.path.join(folder, FILE_NAMES[name])
        with open(paths[name], "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return paths
