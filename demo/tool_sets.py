"""The demo's tool sets: questions only a tool answers, in English and Chinese (demo/corpus.py writes them).

Four tasks, each a question a 1M-parameter model cannot compute and a tool can:

    multiply    "What is 37 times 58?"          calculate_math {"expression": "37 * 58"}
    add         "What is 37 plus 58?"           calculate_math {"expression": "37 + 58"}
    km_miles    "How many miles is 120 km?"     unit_converter {"value": 120, "from_unit": "km", "to_unit": "miles"}
    kg_pounds   "How many pounds is 35 kg?"     unit_converter {"value": 35, "from_unit": "kg", "to_unit": "pounds"}

Each prompt offers its task's tool (a compact schema: the template's tool preamble alone is about 230
tokens, more than the demo model's training rows); the answer repeats the tool's result
("37 times 58 is 2146."). The numbers of the three files never meet: a held-out question
asks about numbers neither the SFT nor the RL set has.

    tool_sft.jsonl      {"conversations": [system with "tools", user, assistant with "tool_calls", tool,
                        assistant]}: MiniMind's tool SFT format
    agent_rl.jsonl      {"conversations": [system with "tools", user, empty assistant], "gt": [the result],
                        "task"}: MiniMind's agent RL format
    tool_heldout.jsonl  {"question", "gt", "task", "lang", "answer"}: asked with the same tools (and without any)

The demo's --tools stage (demo/tool_stage.py) trains on demo/tool_recipe.py's sets instead, written at run
time; these bundled ones are MiniMind's formats for the tests and the tutorial. Measured from the
demo's SFT model (128 x 2, seed 1337; held-out calls generated greedily through train_agent.py's rollout,
128 new tokens per turn), tool SFT with train_full_sft.py --max_seq_len 512 --from_weight full_sft:
  - tool_sft.jsonl, batch 4, lr 2e-3, 3 epochs (50 s): the call format and the right tool every time
    (48/48 calls well formed; a 64-token limit cut the unit_converter calls, which looked like 24/48),
    but the same numbers whatever the question ("94 + 74"), and an answer that does not repeat the
    tool's result: 0/48 right, 0/48 without tools. 10 epochs: the same.
  - The cause under it: the demo's pretraining and SFT text hold no digits, so the tied embeddings of
    the digit tokens all drifted the same way (mean cosine 0.96 between the 20 digit tokens, 0.04
    between common words) and the model cannot tell one digit from another.
  - Wordings that tokenize each number the same in the question, the call, the result and the answer
    (this tokenizer writes " 37" as " 3" "7" but "37" as "3" "7"): questions that open with the
    expression ("37 * 58 = ?"), answers that open with the result ("2146 is the result."): 0/48.
    Twice the conversations (768) for 8 epochs (1536 steps, 5 min, loss 0.36 -> 0.21): the first
    partial copies ("24 * 20" -> "20 * 11"), still 0/48. 2000 short number drills mixed in
    ("Repeat the number 4821.", "Count from 37 to 41."): not learnt either (loss 1.5), 0/48.
  - 96 documents with numbers added to the pretraining text (counting, "59 * 36 = 2124.", "The sign
    says 710. Yes, 710."), the demo's pretraining and SFT rerun on it: the digits come apart (mean
    cosine 0.17), but tool SFT on 384 or 768 conversations (288 and 576 steps) still copies nothing.
  - What does teach copying: from that model, 500 steps (batch 16, 30 s) of SFT on 8000 fresh
    "Repeat the number 4821." -> "The number is 4821." rows take the loss from 8.1 to 0.03; from the
    demo's own model (digits collapsed) the same rows stall at 1.0. Number text alone, pretrained on
    the demo's SFT model for 159 steps, left the digits collapsed (cosine 0.85).
  - With that copier and wordings in which each number follows the same token wherever it is written
    ('Compute "63 * 84".' -> {"expression": "63 * 84"} -> {"result": "5292"} -> 'The result is "5292".';
    "Convert to miles: 247 km" -> "value": 247 -> "result": 153.4787 -> "Result: 153.4787 miles."),
    tool SFT on 384 conversations copies the numbers into the calls often (3 epochs: 0/48 right, some
    calls exact; 8 epochs, 100 s, loss 0.09: 2/48 right, calc answers repeating the result). Agentic RL
    from there (train_agent.py, 48 prompts x 8, 72 steps at 2e-4, 8 min: the 400-token tool prompts made
    a step ~6 s before the rollout and the update ran a group's shared prompt once) raised the training
    reward 0.35 -> 0.54 but not the held-out accuracy (2 -> 1/48).
  - Measured next (stop 39, another machine; the demo's SFT model of seed 1337; calls written as
    'Compute "16 + 44".' -> {"expression": "16 + 44"} -> {"result": "60"} -> 'The result is "60".', in which
    every number follows the token ' "'; 60 held-out questions, add and multiply, 11..99):
    - 838 steps (batch 16 x 128 tokens, 1e-3 to 5e-3) of train_pretrain.py --from_weight full_sft on 20000
      documents of repeated numbers ('"4821" is "4821". Repeat "97": "97". ...') pull the digits apart (mean
      cosine 0.96 -> 0.45-0.57) and teach copying: '"4821" is "' continued with the number 38/40. The same
      copy 296 tokens into a row (after the tool preamble) 6/40: the demo's rows are 128 tokens, and
      copying did not reach that far. 212 more steps on 512-token documents (the tool preamble, then 16
      such pairs): 37/40 after the preamble, 36/40 after 300 tokens of other text.
    - From there, tool SFT (384 conversations x 2 or 4 epochs at 2e-3, or 1536 conversations x 1 epoch at
      1e-3 or 5e-4): 56-60/60 calls well formed, 0/60 right. The calls hold the same numbers whatever the
      question ("54 * 66"), and the answers the same result: the SFT loss stops at 0.27-0.28, about what
      the number tokens cost when guessed. Asked to continue '{"expression": "' after a held-out question,
      the copier itself (before tool SFT) writes no number (0/30): it copies the last quoted number, and
      between the question's number and the call's stand four quoted words ("name", "calculate_math",
      "arguments", "expression"). 300 steps of train_pretrain.py on the 1536 conversations as text (7 to a
      512-token row, ~23000 copies) did not teach it either (0/30; loss 0.26 -> 0.23).
    - What did teach it (same stop): from the copier above, 800 more steps (batch 16 x 128 tokens, 1e-3) of
      train_pretrain.py on 14000 short documents of three calls each, without the chat template
      ('Compute "16 + 44". {"name": "calculate_math", "arguments": {"expression": "16 + 44"}} {"result":
      "60"} The result is "60".'): continuing '{"expression": "' after a held-out question, 4/30 calls
      copied at step 200 and 400 (the first operand right), 29/30 at step 800; inside the chat template
      still 0/30. Then tool SFT (1536 conversations, 1 epoch, 1e-3, 192 steps; loss 0.11 where the
      others stopped at 0.27): 20/60 held-out questions right with the tool (add 19/31, multiply 1/29: the
      calls mostly exact, the 4-digit products copied into the answer with a digit wrong, "5866" for
      "5822"), 0/60 without it, 60/60 calls well formed. Agentic RL from there (train_agent.py, 48 prompts
      x 8 trajectories, 48 steps, 2e-4, beta 0.02, temperature 0.8, 64 new tokens a turn, 4 min):
      training reward 0.73 -> ~1.1 but held-out 20 -> 17/60; a third of the groups had rewards all equal
      (entropy 0.04-0.08).
      With 192 RL prompts, temperature 1.0 and 3e-4 (48 steps): 20 -> 10/60.
    - Shorter paths that did not work: the call documents alone from the SFT model (600 steps at 2e-3:
      27/30 calls copied outside the template), then the same tool SFT: 0/60; the same with the 212 steps
      of long number documents between them: 0/60. So far only the order above (repeated numbers, the
      long documents, the call documents, tool SFT) gave a model that copies inside the template.
    So this 2-layer, 128-wide model can learn the whole task from the demo's SFT model, but only after
    ~1850 steps of number text (about 9 minutes here), and agentic RL had not raised it yet (it lowered it).
  - Stop 40 (the same SFT model, seed 1337; demo/tool_recipe.py now writes these sets; 60 held-out questions,
    30 add and 30 multiply):
    - The same order of number texts (647 steps of repeated numbers at 2e-3, 192 of the 512-token rows, 1428
      of calls as text at 1e-3; ~9 minutes on this machine), then tool SFT of 1536 conversations (half add,
      half multiply; 192 steps, loss 0.004): 60/60 right with the tool, 0/60 without. Nothing left for RL.
    - Fewer SFT conversations, everything else the same: 512 (64 steps) 0/60, 768 (96 steps) 30/60, 832
      (104) 1/60, 896 (112) 52/60, 1024 (128) 57/60. The step at which the copy into the template clicks
      is sharp, and the 96-step model writes every multiplication as an addition ("80 + 48" for "80 * 68").
      Agentic RL from that one (the gt reward, 2e-4, T 1.0, 48 steps): 30 -> 28/60. RL cannot find an
      operator the model gives a 3% chance.
    - Every addition and few multiplications (768 add + 48 multiply, 102 steps): 32/60 (add 30/30,
      multiply 2/30). The calls are right ("22 * 21"); the answers cut the 3-4 digit products the tool
      returned ("46" for "462"). With 96 multiplications 46/60, with 160 53/60.
    - Agentic RL from the 768 + 48 model (train_agent.py, 192 prompts x 1 epoch = 48 steps of 4 prompts x
      G 8, 2e-4, beta 0.02, T 1.0, cispo, 64 new tokens a turn, ~4 min):
        --reward_funcs gt (the final turn's answer holds the result), seed 2:   32 -> 47/60 (multiply 17/30)
        a final-answer reward of the same rule (file plugin), seed 1337:         32 -> 45/60 (multiply 15/30)
        --reward_funcs agent (MiniMind's), seed 1337:                           32 -> 43/60 (multiply 13/30)
      0/60 without the tool before and after, 60/60 calls well formed. So RL raises the held-out accuracy
      by 18-25 points when the SFT model already samples the right call and only copies the result badly;
      last stop's start (20/60) failed differently (wrong numbers in the calls).
    - Not robust yet: the same recipe from demo/tool_recipe.py's own draw (seed 1337; the same formats and
      sizes, other numbers and order; the number texts' losses within 0.01 of the run above) gave a model
      whose calls copy the first number and not the second ("90 + 51" for every "90 + ..."): after 102 SFT
      steps 0/60, after 204 (two epochs, or 1536 add + 48 multiply) 1/60 and 0/60 (SFT loss 0.14-0.15).
      408 steps (4 epochs) 1/60, 594 steps 6/60; 102 steps at 5e-4 or 2e-3 instead of 1e-3: 0/60; 714
      steps of calls as text instead of 1428: 1/60. Outside the template both models copy the call
      ('Compute "47 + 91". {"name": ..., "arguments": {"expression": "' -> 57/60 and 60/60 exact), so what
      depends on the draw is tool SFT moving that copy into the chat template. Swapping the models between
      the two draws (102 SFT steps each): the working draw's call-text model with the failing draw's SFT
      data 40/60 (held-out pairs the call text never had); the failing draw's model 1/60 with the working
      SFT data. One step earlier: the working draw's preamble-row model trained on the failing draw's call
      text 32/60, and the failing draw's model on the working call text 0/60. So what the draw decides is
      in the first two number texts (repeated numbers, the preamble rows), not in the call text or the SFT.
  - Stop 41: the three number texts shuffled into one train_pretrain.py run instead of one after the other
    (512-token rows, batch 4, 1.5e-3, 2456 steps, the same ~5M tokens), then the same tool SFT (768 add + 48
    multiply): 1/60 on tool_recipe's draw of seed 1337, 0/60 on seed 2's. Calls well formed 60/60, but their
    numbers the same whatever the question ("46 + 44", "69 + 24") and the answer the same whatever the result:
    no copy at all, where the ordered phases at least copied the first number. The order is what teaches it.
    - The ordered recipe as demo/tool_stage.py runs it (one epoch of each text), from the demo's SFT models of
      seeds 1337 and 2 with tool_recipe's draws of the same seeds: after tool SFT 0/60 and 0/60 (59-60/60
      calls well formed, the first number copied, the second and the operator not: "90 + 51" for "90 * 37"),
      RL 0 -> 0 (the gt reward 0.00 at every step). 26 minutes for the tool stages, another demo beside them.
    - Two epochs of the preamble rows (384 steps) instead of one, the rest the same: seed 1337's draw 0 -> 26/60
      after tool SFT (add 21/30, multiply 5/30; "47 * 37" now copied), seed 2's still 0/60 (neither number
      copied, the answer not the result). Agentic RL from seed 1337's (the stop-40 settings, gt reward): 26 ->
      28/60 (multiply 5 -> 8, add 21 -> 20), training reward flat at 0.27-0.28 over 48 steps; a quarter to
      three quarters of the groups had equal rewards. Where the calls themselves copy badly, RL does not help.
    - Three epochs of the preamble rows (576 steps) on seed 2's draw: still 0/60 ("64 + 94" whatever the question).
  - Stop 42 (the demo's SFT models of seeds 1337 and 2, rebuilt; experiments outside the stage, not yet in it):
    - The digit tokens' embeddings re-drawn at random (98 tokens, mean cosine 0.96 -> 0.00) before tool SFT, and an
      anchor for the copy: the expression in parentheses ('Compute "(37 * 58)".' -> {"expression": "(37 * 58)"}), so
      that the token before the first digit, "(", stands nowhere else in the prompt (the preamble has ~15 ' "' that
      each precede a word). Tool SFT alone from there: 0/60 on both draws after 102 steps and after 408 (calls well
      formed, numbers the same whatever the question). 863 steps of calls as text first: outside the template seed
      2 copies 41/60, seed 1337 2/60; inside it 0/60 on both, and 0/60 after tool SFT.
    - Recall instead of copy, "arithmetic on the world's numbers": the 16 characters get ages (11-98, drawn from the
      seed), taught by 3000 short documents of age facts ("Fenn is 37 years old.", 6 epochs of 128-token rows, 430
      steps at 2e-3, after the digit re-draw); tool SFT asks "How old are Fenn and Arlo together?" -> calculate_math
      {"expression": "(37 + 90)"} on 80 of the 120 pairs of characters (4 conversations each, with 64 "How old is
      Fenn?" replays), and the 40 other pairs are held out. The calls then come from what the model knows about each
      name, which this model does well: exact first calls on the held-out pairs 32/40 (seed 1337) and 25/40 (seed 2)
      after two epochs of the preamble rows and 288 SFT steps (calls well formed 40/40). But the answer ('The result
      is "127".') does not repeat the tool's result: 2/40 and 1/40 right, 0/40 without the tool. A phase of the
      repeated numbers (647 steps) before tool SFT did not make the answers copy either (1/40, 1/40), and cost
      calls (they recalled fewer ages).
    - 14 SFT epochs (672 steps, loss 0.003) after the preamble rows: exact first calls 40/40 and 37/40, answers still
      2/40 and 2/40. The answers are near the sum, not the tool's result ("143" for 145, "174" for 177): the model
      learnt to add the ages it recalls, roughly, which the 80 training pairs allow, rather than to read the result.
    - Asked a fake result (a random number in the tool message), those models answer "119" or "91": they never
      read it (0/40). What taught the copy: tool SFT whose tool results are random numbers (2-4 digits, ten per
      question; MiniMind's own tool SFT data has mocked results too), so that nothing but the tool message tells
      the answer. From the preamble-row model: 2 epochs (396 steps, 1600 conversations) exact calls 38/40 and
      39/40, right 7/40 and 11/40 (fake results now partly repeated: "763" -> "763", "4342" -> "4343"); 3 epochs
      (594 steps) 38/40 and 38/40 right, 0-1/40 without the tool: the whole task, on both draws.
    - Agentic RL from the 2-epoch models (80 prompts, 40 steps of 4 x G 8, 2e-4, beta 0.02, T 1.0, gt reward):
      seed 1337 7 -> 26/40 (training reward 0.15 -> 0.39-0.44 over blocks of 8 steps), seed 2 11 -> 8/40 (reward
      flat at 0.09-0.14): stopping SFT early is not a reliable gap for RL to fill.
    - The gap stop 40 left for RL, tried here: sums with random 3-digit results (20 per pair) and 64 products
      ("What is Fenn's age times Arlo's age?") with random 4-digit ones, 3 epochs (648 steps); RL and the held-out
      set ask both. Exact calls 79/80 and 78/80 (the products' "*" too), but the copy did not come: 4/80 and 0/80,
      one answer whatever the question ("928"; SFT loss 0.045-0.095 where the runs above reached 0.005-0.013).
      With the sums' random results 2-4 digits long, as in the runs above: 6/80 and 1/80 (calls 77/80, 75/80);
      the same for 5 epochs (1080 steps): 6/80 and 1/80 (loss 0.06 and 0.10). Without the products (the same
      sums, 624 steps): 5/40 and 0/40 of the sums. So not the products: the copy came on both draws with one
      sample of the sums' random results and on neither with another, and is not yet a reliable step.
    So recall for the call and random tool results for the answer taught the task on both draws in ~1400 steps
    (facts 430, preamble rows 384, tool SFT 594; ~12 minutes here with two runs side by side), but whether the copy
    comes within the SFT steps is not yet settled.
Left for the tool stages (demo/tool_stage.py runs them with `--tools`): an answer that repeats the tool's result on
every draw (the copy), then the stage rebuilt on the ages' recall, a text short enough for --rl's 6 minutes, Chinese
wordings, the figures on 3 seeds.
train_agent.py's tests and tests/readme_session.py use agent_rl.jsonl as MiniMind's format.
"""
import json

from model.tools import calculate_math, unit_converter

DEMO_TOOLS = [
    {"type": "function", "function": {
        "name": "calculate_math", "description": "Evaluate an arithmetic expression",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}},
    {"type": "function", "function": {
        "name": "unit_converter", "description": "Convert a value between units",
        "parameters": {"type": "object", "properties": {"value": {"type": "number"}, "from_unit": {"type": "string"},
                                                        "to_unit": {"type": "string"}},
                       "required": ["value", "from_unit", "to_unit"]}}},
]
SYSTEM = {"en": "You can use tools.", "zh": "你可以使用工具。"}

# task -> (questions per language, the answer per language, the call)
TASKS = {
    "multiply": ({"en": ["What is {a} times {b}?", "Compute {a} * {b}."],
                  "zh": ["{a} 乘以 {b} 等于多少？", "算一下 {a} 乘 {b}。"]},
                 {"en": "{a} times {b} is {r}.", "zh": "{a} 乘以 {b} 等于 {r}。"},
                 lambda a, b: ("calculate_math", {"expression": f"{a} * {b}"})),
    "add": ({"en": ["What is {a} plus {b}?", "Compute {a} + {b}."],
             "zh": ["{a} 加 {b} 等于多少？", "算一下 {a} 加 {b}。"]},
            {"en": "{a} plus {b} is {r}.", "zh": "{a} 加 {b} 等于 {r}。"},
            lambda a, b: ("calculate_math", {"expression": f"{a} + {b}"})),
    "km_miles": ({"en": ["How many miles is {a} km?", "Convert {a} km to miles."],
                  "zh": ["{a} 公里是多少英里？", "把 {a} 公里换算成英里。"]},
                 {"en": "{a} km is {r} miles.", "zh": "{a} 公里是 {r} 英里。"},
                 lambda a, b: ("unit_converter", {"value": a, "from_unit": "km", "to_unit": "miles"})),
    "kg_pounds": ({"en": ["How many pounds is {a} kg?", "Convert {a} kg to pounds."],
                   "zh": ["{a} 公斤是多少磅？", "把 {a} 公斤换算成磅。"]},
                  {"en": "{a} kg is {r} pounds.", "zh": "{a} 公斤是 {r} 磅。"},
                  lambda a, b: ("unit_converter", {"value": a, "from_unit": "kg", "to_unit": "pounds"})),
}
SFT_PER_TASK_LANG, RL_PER_TASK_LANG, HELDOUT_PER_TASK_LANG = 48, 6, 6


def run_tool(name, arguments):
    """The tool's result as the registry gives it (model/tools.py's functions, not a table of our own)."""
    fn = {"calculate_math": calculate_math, "unit_converter": unit_converter}[name]
    return fn(**arguments)


def _draws(rng, count, used, pair):
    """`count` fresh numbers, none in `used` (which they join): (a, b) pairs for arithmetic, (a, 0) with a
    in 11..299 for a unit conversion (its one number)."""
    out = []
    while len(out) < count:
        key = (rng.randint(11, 99), rng.randint(11, 99)) if pair else (rng.randint(11, 299), 0)
        if key not in used:
            used.add(key)
            out.append(key)
    return out


def _case(rng, task, lang, a, b):
    questions, answer, call = TASKS[task]
    name, arguments = call(a, b)
    result = run_tool(name, arguments)["result"]
    return {"task": task, "lang": lang, "question": rng.choice(questions[lang]).format(a=a, b=b),
            "call": (name, arguments), "result": json.dumps({"result": result}, ensure_ascii=False),
            "answer": answer[lang].format(a=a, b=b, r=result), "gt": [str(result)]}


def tools_for(task):
    """The tool a task's prompts offer."""
    name = TASKS[task][2](1, 1)[0]
    return [t for t in DEMO_TOOLS if t["function"]["name"] == name]


def _system(lang, task):
    return {"role": "system", "content": SYSTEM[lang], "tools": json.dumps(tools_for(task), ensure_ascii=False)}


def make_tool_sets(rng):
    """{"tool_sft", "agent_rl", "tool_heldout"}: rows of each file."""
    sets = {"tool_sft": [], "agent_rl": [], "tool_heldout": []}
    for task in TASKS:
        used, pair = set(), task in ("multiply", "add")
        for lang in ("en", "zh"):
            held = [_case(rng, task, lang, a, b) for a, b in _draws(rng, HELDOUT_PER_TASK_LANG, used, pair)]
            rl = [_case(rng, task, lang, a, b) for a, b in _draws(rng, RL_PER_TASK_LANG, used, pair)]
            sft = [_case(rng, task, lang, a, b) for a, b in _draws(rng, SFT_PER_TASK_LANG, used, pair)]
            for c in sft:
                name, arguments = c["call"]
                sets["tool_sft"].append({"conversations": [
                    _system(lang, task), {"role": "user", "content": c["question"]},
                    {"role": "assistant", "content": "",
                     "tool_calls": json.dumps([{"name": name, "arguments": arguments}], ensure_ascii=False)},
                    {"role": "tool", "content": c["result"]},
                    {"role": "assistant", "content": c["answer"]}]})
            for c in rl:
                sets["agent_rl"].append({"conversations": [_system(lang, task), {"role": "user", "content": c["question"]},
                                                           {"role": "assistant", "content": ""}], "gt": c["gt"],
                                           "task": task})
            sets["tool_heldout"] += [{"question": c["question"], "gt": c["gt"], "task": task, "lang": lang,
                                      "answer": c["answer"]} for c in held]
    rng.shuffle(sets["tool_sft"])
    rng.shuffle(sets["agent_rl"])
    return sets


def tool_readme(sets):
    return (f"\n## Tool calling\n\n`tool_sft.jsonl` ({len(sets['tool_sft'])} conversations), `agent_rl.jsonl` "
            f"({len(sets['agent_rl'])} prompts) and `tool_heldout.jsonl` ({len(sets['tool_heldout'])} questions): "
            "multiply, add, km to miles, kg to pounds, in English and Chinese, each prompt offering its task's tool "
            "(`calculate_math` or `unit_converter`; demo/tool_sets.py). The SFT conversations call the right tool "
            "and repeat its result; the RL prompts carry the result as `gt`; the held-out questions ask about "
            "numbers neither file has.\n")
