"""Thinking on with the MiniMind-3 family: its template opens the think block in the prompt ("<think>\\n"), so
the generated text starts inside it. Chat (eval_model.py, the page), the server and the RL rewards parse the
reply with that opening in front; GRPO/PPO's --thinking_ratio (MiniMind-3's flag) renders that share of the
prompts with thinking on; build_prompt's switch reaches MiniMind-3's own template (open_thinking) too."""
import argparse
import io
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from model.chat import Chat, build_prompt  # noqa: E402
from model.reasoning import open_think, split_reasoning  # noqa: E402
from trainer.args import load_tokenizer  # noqa: E402

M3_TOKENIZER = os.path.join(ROOT, "..", "shared", "minimind3_tokenizer")
Q = [{"role": "user", "content": "Where does Cobble live?"}]


@pytest.fixture(scope="module")
def tok_family3():
    return load_tokenizer(os.path.join(ROOT, "model"), "minimind3")


def test_open_think():
    assert open_think("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n") == "<think>\n"
    assert open_think("<|im_start|>assistant\n<think>\n\n</think>\n\n") == ""
    assert open_think("<|im_start|>assistant\n") == ""
    # a think block of an earlier turn, closed or not, is not this turn's
    assert open_think("<|im_start|>user\nwhat is <think>?<|im_end|>\n<|im_start|>assistant\n") == ""
    reasoning, answer = split_reasoning(open_think("<|im_start|>assistant\n<think>\n") + "a fact\n</think>\n\nX")
    assert (reasoning, answer) == ("a fact", "X")


def test_build_prompt_switch_reaches_both_templates(tok_family3):
    on = build_prompt(tok_family3, Q, 3, enable_thinking=True)
    off = build_prompt(tok_family3, Q, 3, enable_thinking=False)
    assert on.endswith("<|im_start|>assistant\n<think>\n") and off.endswith("<think>\n\n</think>\n\n")
    assert build_prompt(tok_family3, Q, 3) == off  # MiniMind-3's default: thinking off
    mm2 = load_tokenizer(os.path.join(ROOT, "model"))
    assert build_prompt(mm2, Q, 3, enable_thinking=True) == build_prompt(mm2, Q, 3)  # MiniMind2's default thinks
    assert open_think(build_prompt(mm2, Q, 3, enable_thinking=True)) == ""
    if not os.path.exists(os.path.join(M3_TOKENIZER, "tokenizer.json")):
        pytest.skip("MiniMind-3's own tokenizer is not present")
    from transformers import AutoTokenizer
    own = AutoTokenizer.from_pretrained(M3_TOKENIZER)  # its template reads open_thinking only
    assert build_prompt(own, Q, 3, enable_thinking=True) == on
    assert build_prompt(own, Q, 3, enable_thinking=False) == off


def test_chat_parses_a_reply_that_starts_inside_the_think_block(tok_family3, monkeypatch):
    """eval_model.py --model_mode 3 --enable_thinking 1 on a MiniMind-3 model: the reply 'facts </think> answer'
    is thinking then answer (raw keeps the prompt's opening; the printed answer has no tags)."""
    from model import MiniMindConfig, MiniMindForCausalLM
    net = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1, model_family="minimind3")).eval()
    reply = "Cobble lives in Pellin.\n</think>\n\n<answer>\nPellin\n</answer>"
    reply_ids = tok_family3(reply, add_special_tokens=False, return_tensors="pt").input_ids

    def scripted(input_ids=None, **kw):
        return torch.cat([input_ids, reply_ids], 1)
    monkeypatch.setattr(net, "generate", scripted)
    for mode in (3, 1):  # a chat model asked to think is parsed the same way
        args = argparse.Namespace(model_mode=mode, max_new_tokens=64, temperature=0.0, top_p=0.85, stream=0, seed=0,
                                  history_cnt=0, show_think=1, enable_thinking=1)
        out = io.StringIO()
        chat = Chat(net, tok_family3, args, out=out)
        answer = chat.ask(Q[0]["content"])
        assert chat.raw == "<think>\n" + reply
        assert chat.reasoning == "Cobble lives in Pellin." and answer == "Pellin", (chat.reasoning, answer)
        assert "</think>" not in out.getvalue() and "Pellin" in out.getvalue()


def rollout_stage(tok, ratio, seed=7):
    from trainer.stages.grpo import GRPOStage
    args = argparse.Namespace(thinking_ratio=ratio, seed=seed, max_seq_len=64)
    stage = GRPOStage.__new__(GRPOStage)
    stage.args, stage.tokenizer = args, tok
    return stage


def items(tok, n):
    prompt = torch.tensor(tok(build_prompt(tok, Q, 1), add_special_tokens=False)["input_ids"])
    return [dict(prompt_ids=prompt, fields={}, index=i, messages=Q) for i in range(n)]


def test_thinking_ratio_renders_that_share_of_prompts_with_thinking_on(tok_family3):
    its = items(tok_family3, 200)
    assert rollout_stage(tok_family3, None)._with_thinking(its, 1) is its  # unset: the cached prompts as they are
    texts = lambda ratio, step=1, seed=7: [tok_family3.decode(it["prompt_ids"]) for it in
                                           rollout_stage(tok_family3, ratio, seed)._with_thinking(its, step)]
    assert all(t.endswith("assistant\n<think>\n") for t in texts(1.0))
    assert texts(0.0) == [tok_family3.decode(it["prompt_ids"]) for it in its]  # = the template's default, off
    half = [t.endswith("<think>\n") for t in texts(0.5)]
    assert 70 <= sum(half) <= 130, sum(half)
    assert half == [t.endswith("<think>\n") for t in texts(0.5)]  # fixed by seed, step and prompt: resume sees them
    assert half != [t.endswith("<think>\n") for t in texts(0.5, step=2)]
    assert half != [t.endswith("<think>\n") for t in texts(0.5, seed=8)]
    long = rollout_stage(tok_family3, 1.0)
    long.args.max_seq_len = 5  # cut to its last tokens, as PromptDataset cuts a prompt
    cut = long._with_thinking(its[:1], 1)[0]["prompt_ids"]
    assert len(cut) == 5 and tok_family3.decode(cut).endswith("<think>\n")


def test_rewards_read_a_thinking_completion_as_after_a_prompt_that_did_not_open_it(tok_family3):
    """format and the answer after </think> score the same whether the template opened the block or the model."""
    from trainer.rl.rewards import answer_part, format_reward
    stage = rollout_stage(tok_family3, 1.0)
    done = "facts\n</think>\n<answer>\nPellin\n</answer>"
    on, mm2 = build_prompt(tok_family3, Q, 3, enable_thinking=True), build_prompt(load_tokenizer(
        os.path.join(ROOT, "model")), Q, 3)
    seen = stage._reward_texts([on, mm2], [done, "<think>\n" + done])
    assert seen[0] == seen[1] == "<think>\n" + done
    assert format_reward(seen) == [1.5, 1.5] and format_reward([done])[0] < 1.5  # without the opening: malformed
    assert answer_part(seen[0]) == "Pellin"
    from trainer.stages.agent import AgentStage
    assert AgentStage._reward_texts(None, [on], [done]) == [done]  # MiniMind's agent reward reads the text as it came


def test_server_reasoning_content_after_a_prompt_that_opens_the_block(tok_family3):
    """serve_openai_api.py with a MiniMind-3 model, thinking on (chat_template_kwargs): the reply starts inside
    the think block, so all of it up to </think> is reasoning_content (an untrained model never closes it),
    whole and streamed; thinking off: no reasoning_content."""
    import asyncio
    import httpx
    from openai import AsyncOpenAI
    from model import MiniMindConfig, MiniMindForCausalLM
    from scripts import serve_openai_api as srv
    torch.manual_seed(0)
    net = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1, model_family="minimind3")).eval()
    word = tok_family3(" Pellin", add_special_tokens=False)["input_ids"][0]
    bias = torch.zeros(net.config.vocab_size)
    bias[word] = 100.0  # the model says this word over and over: text, never </think>
    net.lm_head.register_forward_hook(lambda module, inputs, logits: logits + bias)
    app = srv.create_app(srv.Engine(net, tok_family3, "m3", max_tokens=12, reasoning=True))

    async def go(thinking):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        client = AsyncOpenAI(base_url="http://test/v1", api_key="x", http_client=http, max_retries=0)
        kw = dict(model="m3", messages=Q, temperature=0, extra_body={"chat_template_kwargs": {"open_thinking": thinking}})
        whole = await client.chat.completions.create(**kw)
        chunks = [c async for c in await client.chat.completions.create(stream=True, **kw)]
        await http.aclose()
        return whole.choices[0].message, [c.choices[0].delta for c in chunks if c.choices]

    msg, deltas = asyncio.run(go(True))
    assert msg.reasoning_content and not msg.content, msg
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == msg.reasoning_content
    assert not "".join(d.content or "" for d in deltas)
    msg, deltas = asyncio.run(go(False))
    assert msg.reasoning_content is None and msg.content
