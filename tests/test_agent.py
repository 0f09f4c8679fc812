"""train_agent.py: the multi-turn rollout (tool calls run, results appended as the template renders them and
never trained on, the re-rendered prefix checked, the turn limit), MiniMind's agent reward against its
formula, the stage's loss masks and metrics, and the script end to end (a reward it learns, exact resume
after SIGKILL, 2 x gloo torchrun, one-line errors)."""
import json
import os
import re
import subprocess
import sys
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from test_grpo import REWARD_FILE, user_error  # noqa: E402
from test_train_common import assert_continues, kill_and_resume, same_weights, tokenizer_dir  # noqa: E402
from test_train_scripts import logged  # noqa: E402

from model.tools import ToolRegistry  # noqa: E402
from trainer.rl.agent import multi_turn_rollout  # noqa: E402
from trainer.rl.rewards import agent_reward, repetition_penalty  # noqa: E402
from trainer.rl.rollout import Rollout  # noqa: E402

CALL = '<tool_call>\n{"name": "calculate_math", "arguments": {"expression": "3*7"}}\n</tool_call>'


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tokenizer_dir())


def tools_of(names="calculate_math,unit_converter"):
    return ToolRegistry().schemas(names)


def item(tok, question="What is 3 * 7?", gt=("21",), tools=None):
    messages = [{"role": "system", "content": "You can use tools.", "tools": tools or tools_of()},
                {"role": "user", "content": question}]
    return {"prompt_ids": torch.tensor([1]), "fields": {"gt": list(gt)}, "index": 0, "messages": messages}


class ScriptedEngine:
    """Answers from a script: reply(prompt text, turn) -> the text of the next generation; records prompts."""

    def __init__(self, tok, reply, max_tokens=None):
        self.tok, self.reply, self.prompts, self.max_tokens = tok, reply, [], max_tokens

    def generate(self, prompts, n, max_new_tokens, temperature, top_p):
        assert n == 1
        rows = []
        for ids in prompts:
            text = self.tok.decode(ids, skip_special_tokens=False)
            self.prompts.append(text)
            out = self.tok(self.reply(text, text.count("<|im_start|>assistant") - 1), add_special_tokens=False)["input_ids"]
            rows.append(out[:max_new_tokens])
        C = max(len(r) for r in rows)
        comp = torch.full((len(rows), C), self.tok.pad_token_id)
        mask = torch.zeros(len(rows), C, dtype=torch.long)
        for i, r in enumerate(rows):
            comp[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
        texts = [self.tok.decode(r, skip_special_tokens=True) for r in rows]
        im_end = self.tok.convert_tokens_to_ids("<|im_end|>")
        return Rollout(comp, mask, comp, mask, texts, torch.tensor([r[-1] != im_end for r in rows]))

    def update_policy(self, model):
        pass


def calls_then_answers(text, turn):
    return (CALL if turn == 0 else "3 times 7 is 21.") + "<|im_end|>"


def test_a_call_runs_its_result_follows_and_only_the_model_s_tokens_train(tok):
    engine = ScriptedEngine(tok, calls_then_answers)
    roll, trajs = multi_turn_rollout(engine, tok, [item(tok)], 2, ToolRegistry(), 3, 64, 1.0, 1.0)
    assert len(trajs) == 2 and len(roll) == 2
    t = trajs[0]
    assert [c.name for c in t.calls] == ["calculate_math"] and t.calls[0].result == {"result": "21"}
    assert t.turns == [CALL, "3 times 7 is 21."] and not t.unfinished and t.prefix_stable
    # the second prompt is the whole conversation as the template renders it: the call, then its result
    want = tok.apply_chat_template(t.messages, tools=t.tools, tokenize=False, add_generation_prompt=True)
    assert engine.prompts[2] == want and '<tool_response>\n{"result": "21"}\n</tool_response>' in want
    # the ids are prompt + the call + the result turn + the answer; the loss sees the model's tokens only
    response = tok.decode(t.response_ids, skip_special_tokens=False)
    assert response == want[len(tok.decode(t.prompt_ids, skip_special_tokens=False)):] + "3 times 7 is 21.<|im_end|>"
    trained = [i for i, m in zip(t.response_ids, t.loss_mask) if m]
    assert tok.decode(trained, skip_special_tokens=False) == CALL + "<|im_end|>" + "3 times 7 is 21.<|im_end|>"
    not_trained = tok.decode([i for i, m in zip(t.response_ids, t.loss_mask) if not m], skip_special_tokens=False)
    assert "<tool_response>" in not_trained and "21" in not_trained and "<tool_call>" not in not_trained
    # the Rollout: every real token attended, only the generated ones in the loss
    r = len(t.response_ids)
    assert roll.completion_mask[0, :r].sum() == r and torch.equal(roll.loss_mask[0, :r], torch.tensor(t.loss_mask))
    assert roll.texts[0] == "3 times 7 is 21."


def test_the_turn_limit_bad_calls_and_the_thinking_prompt(tok):
    always_call = ScriptedEngine(tok, lambda text, turn: CALL + "<|im_end|>")
    _, trajs = multi_turn_rollout(always_call, tok, [item(tok)], 1, ToolRegistry(), 2, 64, 1.0, 1.0)
    t = trajs[0]
    assert len(t.turns) == 2 and t.unfinished and [c.result is not None for c in t.calls] == [True, False]
    # bad JSON, an unknown tool, an argument the schema refuses: results the model reads, no exception
    bad = ('<tool_call>\n{"name": "calculate_math", "arguments": {"expression": }\n</tool_call>'
           '<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>'
           '<tool_call>\n{"name": "unit_converter", "arguments": {"value": "ten"}}\n</tool_call><|im_end|>')
    engine = ScriptedEngine(tok, lambda text, turn: bad if turn == 0 else "no idea<|im_end|>")
    _, trajs = multi_turn_rollout(engine, tok, [item(tok)], 1, ToolRegistry(), 3, 200, 1.0, 1.0)
    results = [c.result for c in trajs[0].calls]
    assert len(results) == 3 and all("error" in r for r in results), results
    assert "unknown tool 'rm_rf'" in results[0]["error"] + results[1]["error"] + results[2]["error"]
    assert engine.prompts[-1].count("<tool_response>") == 3
    # a generation cut by the length limit runs nothing and ends the trajectory
    cut = ScriptedEngine(tok, lambda text, turn: CALL + "<|im_end|>")
    _, trajs = multi_turn_rollout(cut, tok, [item(tok)], 1, ToolRegistry(), 3, 5, 1.0, 1.0)
    assert trajs[0].truncated and len(trajs[0].turns) == 1 and all(c.result is None for c in trajs[0].calls)
    # thinking off (--thinking_ratio 0): each prompt ends with the empty think block, kept in the history
    engine = ScriptedEngine(tok, calls_then_answers)
    _, trajs = multi_turn_rollout(engine, tok, [item(tok)], 1, ToolRegistry(), 3, 64, 1.0, 1.0, thinking_ratio=0.0)
    assert all(p.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") for p in engine.prompts)
    assert trajs[0].messages[2]["content"].startswith("<think>\n\n</think>\n\n" + "<tool_call>")
    assert len(trajs[0].turns) == 2


def test_agent_reward_against_minimind_s_formula():
    tools = [tools_of()]
    from model.agent import split_reply
    good = split_reply(CALL)[1]
    # one valid call for one gt, the gt in the final answer: 0.5 + 2.5, less the repetition penalty
    r = agent_reward(["It is 21."], gt=[["21"]], turns=[[CALL, "It is 21."]], unfinished=[False], calls=[good],
                     tools=tools)
    assert r == [pytest.approx(3.0 - repetition_penalty("It is 21."))]
    # unfinished: no gt credit, -0.5, the penalty of the (empty) final text is the last turn's
    r = agent_reward([CALL], gt=[["21"]], turns=[[CALL]], unfinished=[True], calls=[good], tools=tools)
    assert r == [pytest.approx(0.5 - 0.5 - repetition_penalty(CALL))]
    # two calls for one gt, one of them to a tool not offered: gap |1 - 1| + (2 - 1) = 1 -> -0.5
    two = good + split_reply('<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "x"}}\n</tool_call>')[1]
    r = agent_reward(["21"], gt=[["21"]], turns=[[CALL, "21"]], unfinished=[False], calls=[two], tools=tools)
    assert r == [pytest.approx(-0.5 + 2.5)]
    # no call: the length term, the think terms, an unbalanced tag costs 0.5, all clipped to +-3
    think = "<think>\n" + "x " * 15 + "\n</think>\nThe answer is 21."
    r = agent_reward([think, "hi", "<tool_call> 21"], gt=[["21"]] * 3, calls=[[], [], []])
    assert r[0] == pytest.approx(0.5 + 1.0 + 0.25 - repetition_penalty("The answer is 21."))
    assert r[1] == pytest.approx(-0.5) and r[2] == pytest.approx(-0.5 + 0.5)


def test_stage_trains_on_generated_tokens_and_logs_tool_metrics(tok):
    from model import MiniMindConfig, MiniMindForCausalLM
    from trainer.stages.agent import AgentStage
    torch.manual_seed(0)
    model = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1))
    args = SimpleNamespace(loss_type="cispo", beta=0.1, epsilon=0.2, epsilon_high=5.0, num_iterations=1,
                           num_generations=2, scale_rewards="group", mask_truncated_completions=False, max_gen_len=64,
                           temperature=1.0, top_p=1.0, rollout_engine="torch", seed=0, log_completions=0, max_turns=3,
                           max_total_len=2500, thinking_ratio=1.0, tools=None, max_seq_len=1024)
    trainer = SimpleNamespace(tokenizer=tok, autocast=nullcontext, rank=0, ddp=False, world_size=1,
                              device=torch.device("cpu"), step=0, total_steps=8, log=lambda m: None)
    stage = AgentStage(args, [("agent", agent_reward)], registry=ToolRegistry())
    stage.prepare(trainer, model, None, None, None, None)
    flip = iter(range(100))
    stage.engine = ScriptedEngine(tok, lambda text, turn: calls_then_answers(text, turn) if next(flip) % 3 else
                                  "I do not know.<|im_end|>")
    micro = stage.rollout(trainer, model, [([item(tok), item(tok, "What is 2 + 2?", gt=("4",))], 0)])
    batch, _ = micro[0]
    assert torch.equal(batch["loss_mask"], batch["roll"].loss_mask) and batch["loss_mask"].sum() < batch["roll"].completion_mask.sum()
    m = batch["metrics"]
    assert float(m["tools/call_frequency"].mean()) > 0 and float(m["tools/failure_frequency"].numel()) > 0
    assert "group_reward_std" in m and "rollout/prefix_unstable" in m
    loss, metrics = stage.loss(model, batch)
    assert torch.isfinite(loss)
    # a change on a tool-result token alone leaves the loss as it was
    roll = batch["roll"]
    obs = (roll.completion_mask.bool() & ~roll.loss_mask.bool()).nonzero()[0]
    assert float(batch["loss_mask"][obs[0], obs[1]]) == 0.0


# ---------------------------------------------------------------------------------------------- the script

def write_agent_data(path, n=8):
    tools = tools_of("calculate_math")  # one tool: a short prompt
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            a, b = 3 + i, 7 + 2 * i
            f.write(json.dumps({"conversations": [
                {"role": "system", "content": "You can use tools.", "tools": json.dumps(tools)},
                {"role": "user", "content": f"What is {a} * {b}?"}, {"role": "assistant", "content": ""}],
                "gt": [str(a * b)]}, ensure_ascii=False) + "\n")
    return str(path)


def cmd(out, data, *extra):
    return ["--dim", "32", "--n_layers", "1", "--device", "cpu", "--from_weight", "none", "--num_workers", "0",
            "--tokenizer_path", tokenizer_dir(), "--data_path", data, "--out_dir", str(out),
            "--max_gen_len", "4", "--num_generations", "4", "--batch_size", "2", "--log_interval", "1", *extra]


def run_script(argv, env=None, timeout=600):
    return subprocess.run([sys.executable, "-u", os.path.join(ROOT, "train_agent.py"), *argv], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})), timeout=timeout)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("agent")
    (tmp / "my_rewards.py").write_text(REWARD_FILE)
    data = write_agent_data(tmp / "a.jsonl")
    argv = cmd(tmp / "a", data, "--epochs", "10", "--learning_rate", "3e-2", "--beta", "0", "--temperature", "0.3",
               "--num_generations", "8", "--batch_size", "4", "--save_interval", "8",
               "--reward_funcs", str(tmp / "my_rewards.py") + ":likes_low,agent", "--reward_weights", "1,0")
    return SimpleNamespace(tmp=tmp, argv=argv, r=run_script(argv))


def test_agent_learns_a_reward_and_logs_minimind_names(learned):
    r = learned.r
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    o = r.stdout
    assert "rewards: likes_low x 1, agent x 0" in o and "tools: calculate_math, unit_converter" in o
    for name in ("reward", "group_reward_std", "tools/call_frequency", "tools/failure_frequency", "policy_loss", "avg_response_len", "advantages_std", "rollout/turns", "rewards/agent/mean"):
        assert f" {name} " in o, name
    rew = logged(o, "reward")
    steps = sorted(rew)
    assert steps == list(range(1, 21))
    first, last = sum(rew[s] for s in steps[:5]) / 5, sum(rew[s] for s in steps[-5:]) / 5
    assert last > first + 0.3 and last > 0.9, (first, last)
    w = torch.load(learned.tmp / "a" / "agent_32.pth", weights_only=True)
    assert "lm_head.weight" in w


def test_sigkill_then_resume_continues_exactly(learned):
    assert learned.r.returncode == 0
    a, b = learned.tmp / "a", learned.tmp / "b"
    r, start = kill_and_resume("train_agent.py", learned.argv, a, b, 20)
    assert_continues(learned.r.stdout, r.stdout, start, 20, ("loss", "reward", "tools/call_frequency", "entropy"))
    assert same_weights(a / "agent_32.pth", b / "agent_32.pth")


def test_torchrun_two_ranks(tmp_path):
    (tmp_path / "r.py").write_text(REWARD_FILE)
    data = write_agent_data(tmp_path / "a.jsonl")
    seen = tmp_path / "seen"
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         os.path.join(ROOT, "train_agent.py"), *cmd(tmp_path / "out", data, "--learning_rate", "1e-3",
                                                    "--reward_funcs", str(tmp_path / "r.py") + ":likes_low,agent")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, GRPO_TEST_SEEN=str(seen)))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    o = r.stdout
    assert "2 process(es), 2 batches of 2 per process per epoch, 2 optimizer steps" in o
    per_rank = [set(open(f"{seen}.{k}", encoding="utf-8").read().splitlines()) for k in (0, 1)]
    assert len(per_rank[0]) == len(per_rank[1]) == 4 and not per_rank[0] & per_rank[1]
    assert sorted(logged(o, "tools/call_frequency")) == [1, 2]
    assert (tmp_path / "out" / "agent_32.pth").exists()


@pytest.mark.parametrize("case", ["bad_tools_json", "missing_tool_file", "one_generation", "no_user"])
def test_bad_input_one_line_exit_2(tmp_path, capsys, case):
    import train_agent
    data = write_agent_data(tmp_path / "a.jsonl", n=4)
    extra = []
    if case == "bad_tools_json":
        with open(data, "a", encoding="utf-8") as f:
            f.write(json.dumps({"conversations": [{"role": "system", "content": "", "tools": "[{not json"},
                                                  {"role": "user", "content": "hi"}], "gt": ["1"]}) + "\n")
        expect = r"a\.jsonl:5: expected \"tools\""
    elif case == "missing_tool_file":
        extra, expect = ["--tools", "nowhere.py:f"], r"--tools nowhere\.py:f: expected path/to/file\.py:function_name"
    elif case == "one_generation":
        extra, expect = ["--num_generations", "1"], r"--num_generations: expected at least 2"
    else:
        with open(data, "a", encoding="utf-8") as f:
            f.write(json.dumps({"conversations": [{"role": "assistant", "content": ""}]}) + "\n")
        expect = r"a\.jsonl:5: expected \"conversations\" with a user turn to answer"
    line = user_error(train_agent, cmd(tmp_path / "out", data, *extra), capsys)
    assert re.search(expect, line), line
    assert not (tmp_path / "out" / "agent_32.pth").exists()


def test_defaults_follow_minimind():
    import train_agent
    a = train_agent.parse_args([])
    assert (a.from_weight, a.save_weight, a.batch_size, a.num_generations, a.beta) == ("full_sft", "agent", 2, 4, 0.1)
    assert (a.max_seq_len, a.max_gen_len, a.max_total_len, a.data_path) == (1024, 768, 2500, "./dataset/agent_rl.jsonl")
    assert (a.loss_type, a.epsilon, a.epsilon_high, a.thinking_ratio, a.max_turns) == ("cispo", 0.2, 5.0, 0.1, 3)
    assert a.wandb_project == "MiniMind-Agent-RL" and a.learning_rate == 1e-6
