"""Adaptive thinking's switch (MiniMind's 2025-10 template, Qwen3's enable_thinking, MiniMind-3's
open_thinking): False opens the answer with an empty think block; left out, every prompt is byte for
byte what it was. In the template, eval_model.py, the server and the page."""
import io
import os
import sys

import pytest

from tiny_chat import DIM, ROOT, chat_state, tiny, tokenizer_dir

from model import chat as model_chat  # noqa: E402
from trainer.args import load_tokenizer  # noqa: E402

EMPTY_THINK = "<think>\n\n</think>\n\n"
MSGS = [{"role": "user", "content": "What is the capital of Tarnis?"}]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(str(tokenizer_dir()))


def test_the_template(tok):
    plain = tok.apply_chat_template(MSGS, tokenize=False, add_generation_prompt=True)
    assert plain.endswith("<|im_start|>assistant\n")
    for kw in ({"enable_thinking": False}, {"open_thinking": False}):
        assert tok.apply_chat_template(MSGS, tokenize=False, add_generation_prompt=True, **kw) == plain + EMPTY_THINK
    for kw in ({"enable_thinking": True}, {"open_thinking": True}):
        assert tok.apply_chat_template(MSGS, tokenize=False, add_generation_prompt=True, **kw) == plain
    # a whole conversation (SFT's rendering) is untouched by the switch
    full = MSGS + [{"role": "assistant", "content": "Sunmar."}]
    assert tok.apply_chat_template(full, tokenize=False, enable_thinking=False) == tok.apply_chat_template(full, tokenize=False)


def test_eval_model_flag(tok):
    from model import chat_cli
    for argv, want in (([], ""), (["--enable_thinking", "0"], EMPTY_THINK), (["--open_thinking", "0"], EMPTY_THINK),
                       (["--enable_thinking", "1"], "")):
        args = chat_cli.get_parser().parse_args(argv)
        chat = model_chat.Chat(None, tok, args, out=io.StringIO())
        prompt = chat.prompt_for("What is the capital of Tarnis?")
        assert prompt.endswith("<|im_start|>assistant\n" + want), argv


def test_server_chat_template_kwargs(tok):
    from scripts import serve_openai_api as srv
    net = tiny()
    net.load_state_dict(chat_state(tok))
    engine = srv.Engine(net.eval(), tok, max_tokens=8)
    base = {"model": "minimind", "messages": MSGS}
    plain, _ = engine.prepare(srv.parse_request(base))
    off, _ = engine.prepare(srv.parse_request(dict(base, chat_template_kwargs={"enable_thinking": False})))
    on, _ = engine.prepare(srv.parse_request(dict(base, chat_template_kwargs={"open_thinking": True})))
    assert tok.decode(off[0]) == tok.decode(plain[0]) + EMPTY_THINK and on.tolist() == plain.tolist()
    with pytest.raises(srv.RequestError) as e:
        srv.parse_request(dict(base, chat_template_kwargs={"enable_thinking": "no"}))
    assert e.value.param == "chat_template_kwargs"


def test_the_page_switch(monkeypatch, tmp_path):
    import torch
    from streamlit.testing.v1 import AppTest
    from tiny_chat import Q_PLAIN
    tok = load_tokenizer(str(tokenizer_dir()))
    torch.save(chat_state(tok), tmp_path / f"full_sft_{DIM}.pth")
    page = os.path.join(ROOT, "scripts", "web_demo.py")
    monkeypatch.setattr(sys, "argv", [page, "--out_dir", str(tmp_path), "--device", "cpu"])
    prompts = []
    real = model_chat.Chat.prompt_for
    monkeypatch.setattr(model_chat.Chat, "prompt_for", lambda self, q: prompts.append(real(self, q)) or prompts[-1])
    at = AppTest.from_file(page, default_timeout=120).run()
    assert at.toggle(key="thinking").value is True
    at.slider(key="max_new_tokens").set_value(256)
    at.chat_input(key="question").set_value(Q_PLAIN).run()
    at.toggle(key="thinking").set_value(False).run()
    at.chat_input(key="question").set_value(Q_PLAIN).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(prompts) == 2 and not prompts[0].endswith(EMPTY_THINK) and prompts[1].endswith(EMPTY_THINK)
