"""scripts/serve_openai_api.py against real clients: the official `openai` package and raw HTTP.

One live server (the script itself, in a subprocess on 127.0.0.1) serves a tiny random model
(dim 64, 2 layers, fixed seed) from a .pth; the test process holds the same weights and checks
every greedy answer token for token against model.generate(). Tool calling has its own server, on
tests/tiny_chat.py's tool model, driven through the openai client's function-calling round trip.
"""
import concurrent.futures as cf
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from model.generation import cut_at_stop, held_back  # noqa: E402
from scripts import serve_openai_api as srv  # noqa: E402
from trainer.checkpoint import save_weights  # noqa: E402
from trainer.errors import run_main  # noqa: E402

DIM, LAYERS = 64, 2
CONTEXT, CAP = 4096, 4000
PROMPTS = ["What is DPO?", "你好，请介绍一下你自己。", "1+1=?", "Tell me about the sea."]


def _tokenizer_dir():
    for d in (ROOT / "model", ROOT.parent / "shared" / "minimind_tokenizer"):
        if (d / "tokenizer.json").is_file():
            return str(d)
    pytest.skip("no tokenizer (neither ./model nor ../shared/minimind_tokenizer)")


def tiny():
    # wide initial weights: greedy answers then differ from prompt to prompt
    torch.manual_seed(0)
    return MiniMindForCausalLM(MiniMindConfig(hidden_size=DIM, num_hidden_layers=LAYERS, initializer_range=0.3)).eval()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(proc, base, log, timeout=300):
    """True once /health answers; False if the port was taken; fails the test on any other exit."""
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            log.seek(0)
            text = log.read()
            if "could not serve on" in text:  # the server's one line for a port in use
                return False
            pytest.fail(f"server exited {proc.returncode}: {text[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"server did not come up in {timeout} s")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import AutoTokenizer
    tok_dir = _tokenizer_dir()
    out = tmp_path_factory.mktemp("out")
    net = tiny()
    save_weights(net, str(out / f"full_sft_{DIM}.pth"), dtype=torch.float32)
    log = open(out / "server.log", "w+")
    for attempt in range(5):  # a free port can be taken by someone else before the server binds it
        port = free_port()
        log.seek(0)
        log.truncate()
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "serve_openai_api.py"), "--dim", str(DIM), "--n_layers",
             str(LAYERS), "--out_dir", str(out), "--tokenizer_path", tok_dir, "--device", "cpu", "--port", str(port),
             "--max_seq_len", str(CONTEXT), "--max_tokens", str(CAP), "--max_parallel", "2", "--model_name", "tiny"],
            stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        if _wait_until_up(proc, base, log):
            break
    else:
        pytest.fail(f"the server found no free port in 5 tries: {log.read()[-2000:]}")
    yield dict(base=base, net=net, tok=AutoTokenizer.from_pretrained(tok_dir), proc=proc, log=log)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def client(setup):
    from openai import OpenAI
    return OpenAI(base_url=setup["base"] + "/v1", api_key="unused", max_retries=0, timeout=120)


def prompt_ids(tok, question):
    text = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False, return_tensors="pt").input_ids


_expected = {}


def expected(setup, question, n):
    """(text, n_prompt_tokens, n_completion_tokens) of the local model's greedy answer."""
    key = (question, n)
    if key not in _expected:
        tok, net = setup["tok"], setup["net"]
        ids = prompt_ids(tok, question)
        with torch.no_grad():
            out = net.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                               eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        gen = out[0, ids.shape[1]:]
        _expected[key] = (tok.decode(gen, skip_special_tokens=True), ids.shape[1], len(gen))
    return _expected[key]


def health(setup):
    return httpx.get(setup["base"] + "/health", timeout=10).json()


def chat(client, question, **kw):
    return client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": question}], **kw)


def stream_text(client, question, **kw):
    chunks = list(chat(client, question, stream=True, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


# --------------------------------------------------------------------------------------- the API

def test_models_and_health(setup, client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]
    assert client.models.retrieve("tiny").id == "tiny"
    h = health(setup)
    assert h["status"] == "ok" and h["model"] == "tiny"
    r = httpx.get(setup["base"] + "/v1/models/gpt-4", timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_chat_matches_generate(setup, client):
    text, n_prompt, n_gen = expected(setup, PROMPTS[0], 12)
    r = chat(client, PROMPTS[0], temperature=0, max_tokens=12)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == "tiny"
    assert len(r.choices) == 1 and r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == text and text.strip()
    assert r.choices[0].finish_reason == "length"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (n_prompt, 12, n_prompt + 12)


def test_stream_matches_generate(setup, client):
    want, n_prompt, _ = expected(setup, PROMPTS[1], 12)
    text, chunks = stream_text(client, PROMPTS[1], temperature=0, max_tokens=12,
                               stream_options={"include_usage": True})
    assert text == want
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2  # really streamed
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage.prompt_tokens == n_prompt


def test_raw_sse_ends_with_done(setup):
    with httpx.stream("POST", setup["base"] + "/v1/chat/completions", timeout=60,
                      json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]" and events[-2].count('"finish_reason": "length"') == 1


def test_concurrent_requests_each_get_their_answer(setup, client):
    jobs = [(q, i % 2 == 1) for i, q in enumerate(PROMPTS)]

    def ask(job):
        q, stream = job
        if stream:
            return stream_text(client, q, temperature=0, max_tokens=10)[0]
        return chat(client, q, temperature=0, max_tokens=10).choices[0].message.content

    with cf.ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(ask, jobs))
    wants = [expected(setup, q, 10)[0] for q, _ in jobs]
    assert answers == wants
    assert len(set(wants)) == len(wants)  # distinct answers, so a mix-up could not pass


def test_seed_reproduces_sampling(setup, client):
    a = chat(client, PROMPTS[2], temperature=1.0, top_p=0.9, seed=7, max_tokens=10).choices[0].message.content
    b = chat(client, PROMPTS[2], temperature=1.0, top_p=0.9, seed=7, max_tokens=10).choices[0].message.content
    others = {chat(client, PROMPTS[2], temperature=1.0, top_p=0.9, seed=s, max_tokens=10).choices[0].message.content
              for s in (8, 9)}
    assert a == b
    assert others - {a}


def test_stop_strings(setup, client):
    full, _, _ = expected(setup, PROMPTS[3], 16)
    stop = full[6:9]
    assert stop and full.find(stop) >= 3
    want = full[:full.find(stop)]
    r = chat(client, PROMPTS[3], temperature=0, max_tokens=16, stop=stop)
    assert r.choices[0].message.content == want and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens < 16
    text, chunks = stream_text(client, PROMPTS[3], temperature=0, max_tokens=16, stop=["@@never@@", stop])
    assert text == want
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


# ------------------------------------------------------------------------------------ bad requests

def _msg(content="hi", role="user"):
    return [{"role": role, "content": content}]


BAD = [
    ("malformed json", b'{"messages": [', "JSON"),
    ("not an object", b'[1, 2]', "object"),
    ("missing messages", {"model": "tiny"}, "messages"),
    ("empty messages", {"messages": []}, "messages"),
    ("messages not a list", {"messages": "hi"}, "messages"),
    ("message not an object", {"messages": ["hi"]}, "messages[0]"),
    ("unknown role", {"messages": _msg(role="wizard")}, "role"),
    ("missing role", {"messages": [{"content": "hi"}]}, "role"),
    ("number content", {"messages": _msg(123)}, "content"),
    ("null content", {"messages": _msg(None)}, "content"),
    ("object content", {"messages": _msg({"text": "hi"})}, "content"),
    ("image part", {"messages": _msg([{"type": "image_url", "image_url": {"url": "x"}}])}, "content"),
    ("temperature low", {"messages": _msg(), "temperature": -0.1}, "temperature"),
    ("temperature high", {"messages": _msg(), "temperature": 2.5}, "temperature"),
    ("temperature string", {"messages": _msg(), "temperature": "hot"}, "temperature"),
    ("top_p high", {"messages": _msg(), "top_p": 1.5}, "top_p"),
    ("top_p negative", {"messages": _msg(), "top_p": -1}, "top_p"),
    ("max_tokens zero", {"messages": _msg(), "max_tokens": 0}, "max_tokens"),
    ("max_tokens negative", {"messages": _msg(), "max_tokens": -5}, "max_tokens"),
    ("max_tokens float", {"messages": _msg(), "max_tokens": 2.5}, "max_tokens"),
    ("max_tokens above context", {"messages": _msg(), "max_tokens": CONTEXT + 1}, "context"),
    ("prompt + max_tokens above context", {"messages": _msg("hi " * 500), "max_tokens": CONTEXT - 10}, "context"),
    ("prompt longer than context", {"messages": _msg("你好，" * CONTEXT)}, "context"),
    ("n > 1", {"messages": _msg(), "n": 2}, "n=1"),
    ("stream not bool", {"messages": _msg(), "stream": "yes"}, "stream"),
    ("too many stops", {"messages": _msg(), "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ("empty stop", {"messages": _msg(), "stop": [""]}, "stop"),
    ("seed string", {"messages": _msg(), "seed": "x"}, "seed"),
    ("tools not a list", {"messages": _msg(), "tools": {"type": "function"}}, "tools"),
    ("tool without function", {"messages": _msg(), "tools": [{"type": "function"}]}, "tools[0]"),
    ("tool name with a space", {"messages": _msg(), "tools": [{"type": "function", "function": {"name": "a b"}}]},
     "tools[0].function.name"),
    ("tool parameter type", {"messages": _msg(), "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "strng"}}}}}]}, "strng"),
    ("tool_choice required without tools", {"messages": _msg(), "tool_choice": "required"}, "needs 'tools'"),
    ("tool_choice a function without tools", {"messages": _msg(), "tool_choice": {"type": "function", "function": {
        "name": "f"}}}, "needs 'tools'"),
    ("tool_choice a function not offered", {"messages": _msg(), "tools": [{"type": "function", "function": {
        "name": "g"}}], "tool_choice": {"type": "function", "function": {"name": "f"}}}, "not among 'tools' (g)"),
    ("tool_choice a malformed object", {"messages": _msg(), "tool_choice": {"type": "function"}}, "tool_choice"),
    ("tool_choice an unknown word", {"messages": _msg(), "tool_choice": "always"}, "tool_choice"),
    ("assistant tool_calls without a name", {"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"arguments": "{}"}}]}]}, "tool_calls[0]"),
    ("tool message without content", {"messages": [{"role": "tool", "tool_call_id": "c"}]}, "content"),
]


def test_bad_requests_get_openai_errors(setup):
    url = setup["base"] + "/v1/chat/completions"
    with httpx.Client(timeout=30) as http:
        for name, body, needle in BAD:
            if isinstance(body, bytes):
                r = http.post(url, content=body, headers={"content-type": "application/json"})
            else:
                r = http.post(url, json=body)
            assert r.status_code == 400, (name, r.status_code, r.text)
            err = r.json()["error"]
            assert set(err) == {"message", "type", "param", "code"}, name
            assert err["type"] == "invalid_request_error" and needle in err["message"], (name, err)
        assert http.post(url, json={"messages": _msg(), "max_tokens": 2.5}).json()["error"]["param"] == "max_tokens"
        r = http.get(url)
        assert r.status_code == 405 and "error" in r.json()
        r = http.get(setup["base"] + "/v2/nothing")
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    assert setup["proc"].poll() is None and health(setup)["status"] == "ok"


def test_openai_client_raises_bad_request(client):
    import openai
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, "hi", temperature=5)
    assert e.value.status_code == 400 and "temperature" in e.value.message


# -------------------------------------------------------------------------------- disconnection

def _wait_idle(setup, want_cancelled, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        g = health(setup)["generations"]
        if g["active"] == 0 and g["waiting"] == 0 and g["cancelled"] >= want_cancelled:
            return g
        time.sleep(0.2)
    pytest.fail(f"generation still running or not cancelled: {health(setup)}")


def test_disconnect_stops_generation(setup):
    url = setup["base"] + "/v1/chat/completions"
    body = {"messages": _msg("Tell me a long story."), "temperature": 0, "max_tokens": CAP}
    before = _wait_idle(setup, 0)

    # streaming: read a few pieces of the answer, then hang up
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=60) as r:
        lines = r.iter_lines()  # not left early: that would close the connection already
        pieces = 0
        while pieces < 3:
            pieces += '"content": "' in next(lines)
        # while it generates, the server still answers (it reports the generation as active, so the
        # answer did not wait for the generation to end)
        g = health(setup)["generations"]
        assert g["active"] == 1 and g["cancelled"] == before["cancelled"]
    after_stream = _wait_idle(setup, before["cancelled"] + 1)
    assert after_stream["finished"] == before["finished"]

    # non-streaming: the client gives up waiting
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json=body, timeout=httpx.Timeout(60, read=1.0))
    after = _wait_idle(setup, after_stream["cancelled"] + 1)
    assert after["finished"] == before["finished"]


# ------------------------------------------------------------------------ in-process unit checks

def test_engine_caps_max_tokens(setup):
    eng = srv.Engine(setup["net"], setup["tok"], max_tokens=32, context=256)
    req = srv.parse_request({"messages": _msg("hi")})
    ids, budget = eng.prepare(req)
    assert budget == 32  # no max_tokens: the server's cap
    _, budget = eng.prepare({**req, "max_tokens": 200})
    assert budget == 32  # above the cap: capped, not refused
    _, budget = eng.prepare({**req, "max_tokens": 5})
    assert budget == 5
    with pytest.raises(srv.RequestError, match="context"):
        eng.prepare({**req, "max_tokens": 257})
    eng = srv.Engine(setup["net"], setup["tok"], max_tokens=4096, context=64)
    _, budget = eng.prepare(req)
    assert budget == 64 - ids.shape[1]  # no max_tokens: whatever the context leaves
    eng.pool.shutdown()


def test_stop_helpers():
    assert cut_at_stop("hello world", ["wor", "lo"]) == ("hel", True)
    assert cut_at_stop("hello", ["xyz"]) == ("hello", False)
    assert held_back("answer: ab", ["abc"]) == 2
    assert held_back("answer: a", ["abc", "a:"]) == 1
    assert held_back("answer", ["xyz"]) == 0


def test_cli_errors_one_line(tmp_path, capsys):
    tok = _tokenizer_dir()
    for argv, needle in [
        (["--dim", "64", "--n_layers", "2", "--out_dir", str(tmp_path), "--tokenizer_path", tok], "train_full_sft.py"),
        (["--model_path", str(tmp_path)], "config.json"),
        (["--model_mode", "2", "--out_dir", str(tmp_path)], "train_dpo.py"),
    ]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            run_main(srv.main, argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and needle in err, (argv, err)


def test_default_bind_is_localhost():
    args = srv.get_parser().parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 8998)


def test_a_model_it_does_not_serve_is_404_model_not_found(setup, client):
    """As OpenAI and vLLM answer: gpt-4o is not silently served by MiniMind; the served id and the
    weights' own name are."""
    import openai
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert e.value.status_code == 404 and e.value.body["code"] == "model_not_found" and "'tiny'" in e.value.body["message"]
    ok = client.chat.completions.create(model=f"full_sft_{DIM}", messages=[{"role": "user", "content": "hi"}],
                                        max_tokens=2, temperature=0)
    assert ok.choices[0].message.content is not None and ok.model == "tiny"
    assert client.models.retrieve(f"full_sft_{DIM}").id == "tiny"


def test_missing_weights_list_what_the_folder_holds(tmp_path, capsys):
    """Like eval_model.py: the asked checkpoint is not there, the line names the ones that are."""
    save_weights(tiny(), str(tmp_path / f"full_sft_{DIM}.pth"), dtype=torch.float32)
    with pytest.raises(SystemExit) as e:
        run_main(srv.main, ["--dim", "128", "--n_layers", str(LAYERS), "--out_dir", str(tmp_path),
                            "--tokenizer_path", _tokenizer_dir()])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert "full_sft_128.pth: weights not found" in err and f"full_sft_{DIM}.pth (--dim {DIM} --n_layers {LAYERS})" in err


# ------------------------------------------------------------------------------------- tool calling

TOOL_SCHEMAS = None


@pytest.fixture(scope="module")
def tool_setup(tmp_path_factory):
    """The server on tests/tiny_chat.py's tool model: given calculate_math it calls it for Q_TOOL, and
    answers A_TOOL once the result is in; without tools it writes the same call as plain text."""
    from openai import OpenAI
    from transformers import AutoTokenizer

    from model.tools import ToolRegistry
    from tiny_chat import start_http, stop, tool_state
    global TOOL_SCHEMAS
    TOOL_SCHEMAS = ToolRegistry().schemas("calculate_math")
    tok = AutoTokenizer.from_pretrained(_tokenizer_dir())
    d = tmp_path_factory.mktemp("tools")
    torch.save(tool_state(tok), d / f"full_sft_{DIM}.pth")
    cmd = lambda port: [sys.executable, str(ROOT / "scripts" / "serve_openai_api.py"), "--out_dir", str(d),  # noqa: E731
                        "--dim", str(DIM), "--n_layers", str(LAYERS), "--device", "cpu", "--port", str(port),
                        "--model_name", "tiny"]
    proc, port = start_http(cmd, "/health", d / "server.log")
    try:
        yield dict(client=OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=120),
                   tok=tok, base=f"http://127.0.0.1:{port}")
    finally:
        stop(proc)


def n_tokens(tok, messages, tools):
    text = tok.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
    return len(tok(text, add_special_tokens=False)["input_ids"])


def ask_tools(client, messages, stream, **kw):
    """(content, tool_calls as dicts, finish_reason, usage) of one request, streamed or not."""
    if not stream:
        r = client.chat.completions.create(model="tiny", messages=messages, temperature=0, **kw)
        m = r.choices[0].message
        calls = [c.model_dump() for c in m.tool_calls] if m.tool_calls else None
        return m.content, calls, r.choices[0].finish_reason, r.usage
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}, **kw))
    content, calls, finish = "", {}, None
    for c in chunks:
        if not c.choices:
            continue
        d = c.choices[0].delta
        content += d.content or ""
        for tc in d.tool_calls or []:  # as a client assembles them: by index, fields appended
            slot = calls.setdefault(tc.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
            slot["id"] += tc.id or ""
            slot["function"]["name"] += tc.function.name or ""
            slot["function"]["arguments"] += tc.function.arguments or ""
        finish = c.choices[0].finish_reason or finish
    return content or None, [calls[i] for i in sorted(calls)] or None, finish, chunks[-1].usage


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_function_calling_round_trip_with_the_openai_client(tool_setup, stream):
    """create -> tool_calls -> run the tool -> send the results -> the final answer, as OpenAI's guide does."""
    import json

    from model.tools import ToolRegistry
    from tiny_chat import A_TOOL, Q_TOOL, TOOL_ARGS, TOOL_RESULT
    client, tok = tool_setup["client"], tool_setup["tok"]
    messages = [{"role": "user", "content": Q_TOOL}]
    content, calls, finish, use = ask_tools(client, messages, stream, tools=TOOL_SCHEMAS)
    assert finish == "tool_calls" and content is None, (content, calls)
    [call] = calls
    assert call["id"].startswith("call_") and call["type"] == "function" and call["function"]["name"] == "calculate_math"
    assert isinstance(call["function"]["arguments"], str) and json.loads(call["function"]["arguments"]) == TOOL_ARGS
    assert use.prompt_tokens == n_tokens(tok, messages, TOOL_SCHEMAS)
    result = ToolRegistry().execute_call(call)
    assert result == TOOL_RESULT
    messages += [{"role": "assistant", "content": content, "tool_calls": calls},
                 {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result, ensure_ascii=False)}]
    content, calls, finish, use = ask_tools(client, messages, stream, tools=TOOL_SCHEMAS)
    assert (content, calls, finish) == (A_TOOL, None, "stop")
    # the results were rendered as the chat template renders them (and as the model was taught)
    assert use.prompt_tokens == n_tokens(tok, messages, TOOL_SCHEMAS)


def test_the_message_object_goes_back_as_it_came(tool_setup):
    """OpenAI's guide appends the returned message object itself; ids differ per request."""
    from tiny_chat import A_TOOL, Q_TOOL
    client = tool_setup["client"]
    messages = [{"role": "user", "content": Q_TOOL}]
    r = client.chat.completions.create(model="tiny", messages=messages, tools=TOOL_SCHEMAS, temperature=0)
    again = client.chat.completions.create(model="tiny", messages=messages, tools=TOOL_SCHEMAS, temperature=0)
    assert r.choices[0].message.tool_calls[0].id != again.choices[0].message.tool_calls[0].id
    messages.append(r.choices[0].message)
    for c in r.choices[0].message.tool_calls:
        messages.append({"role": "tool", "tool_call_id": c.id, "content": '{"result": "42"}'})
    final = client.chat.completions.create(model="tiny", messages=messages, tools=TOOL_SCHEMAS, temperature=0)
    assert final.choices[0].message.content == A_TOOL and final.choices[0].message.tool_calls is None


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_choice_none_leaves_tools_out_and_the_reply_unparsed(tool_setup, stream):
    from model.tools import format_tool_call
    from tiny_chat import Q_TOOL, TOOL_ARGS
    messages = [{"role": "user", "content": Q_TOOL}]
    content, calls, finish, use = ask_tools(tool_setup["client"], messages, stream, tools=TOOL_SCHEMAS,
                                            tool_choice="none")
    assert use.prompt_tokens == n_tokens(tool_setup["tok"], messages, None)  # no tools in the prompt
    # the model writes the call anyway (it was taught to): it stays text
    assert (content, calls, finish) == (format_tool_call("calculate_math", TOOL_ARGS), None, "stop")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("choice", ["required", "named"])
def test_tool_choice_required_or_named_begins_the_call(tool_setup, stream, choice):
    """The reply is begun with the call (its name too when named): the prompt holds the tools and the begun
    text, and the model's continuation comes back as the whole call, in OpenAI's form."""
    import json

    from tiny_chat import Q_TOOL, TOOL_ARGS
    messages = [{"role": "user", "content": Q_TOOL}]
    tool_choice = "required" if choice == "required" else {"type": "function", "function": {"name": "calculate_math"}}
    content, calls, finish, use = ask_tools(tool_setup["client"], messages, stream, tools=TOOL_SCHEMAS,
                                            tool_choice=tool_choice)
    begun = '<tool_call>\n{"name": "' + ('' if choice == "required" else 'calculate_math", "arguments":')
    tok = tool_setup["tok"]
    prompt = tok.apply_chat_template(messages, tools=TOOL_SCHEMAS, tokenize=False, add_generation_prompt=True)
    assert use.prompt_tokens == len(tok(prompt + begun, add_special_tokens=False).input_ids)
    assert finish == "tool_calls" and content is None and len(calls) == 1
    assert calls[0]["function"]["name"] == "calculate_math"
    assert json.loads(calls[0]["function"]["arguments"]) == TOOL_ARGS


def test_invalid_tool_schema_is_a_400_the_client_raises(tool_setup):
    import openai
    bad = [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]
    with pytest.raises(openai.BadRequestError) as e:
        tool_setup["client"].chat.completions.create(model="tiny", messages=_msg(), tools=bad, max_tokens=2)
    assert e.value.status_code == 400 and e.value.body["param"] == "tools"
    assert e.value.body["type"] == "invalid_request_error" and "type object" in e.value.body["message"]
