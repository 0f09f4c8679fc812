"""An OpenAI-compatible chat server for one MiniMind model (FastAPI + uvicorn).

    python scripts/serve_openai_api.py --dim 512 --n_layers 8            # out/full_sft_512.pth
    python scripts/serve_openai_api.py --model_path MiniMind2-Small      # a transformers directory

then point any OpenAI client at http://127.0.0.1:8998/v1 (any api_key). A reason model
(--model_mode 3, weights reason_*.pth, or --reasoning 1) answers with DeepSeek's convention: the
<think> part in `message.reasoning_content` (stream deltas: `delta.reasoning_content`), the answer
without tags in `content`.

Tool calling: a request's `tools` go into the prompt (the chat template's system turn); the model's
<tool_call> blocks come back as OpenAI `tool_calls` (ids, arguments as a JSON string) with
finish_reason "tool_calls" and the text around them in `content` (null when there is none). Streamed,
text is sent until a block begins; the calls follow in one delta at the end. The client runs the
tools and sends the assistant message with its tool_calls and one `tool` message per call; they are
rendered as the template renders them. tool_choice "none" leaves the tools out of the prompt and the
reply unparsed; "required" begins the reply with a call for the model (`<tool_call>\n{"name": "`), and
{"type": "function", "function": {"name": N}} with a call of N (up to `"arguments":`), so that the model
writes the rest (a model that then writes no valid call gets its text back, finish_reason "stop": the
call is begun, not constrained to the schema). A `tools` list that is not OpenAI's function form is a 400.

    POST /v1/chat/completions   model, messages, temperature, top_p, max_tokens, stream, stop, seed, n=1,
                                chat_template_kwargs {enable_thinking | open_thinking: bool},
                                tools, tool_choice ("auto" | "none" | "required" | a named function),
                                parallel_tool_calls
    GET  /v1/models             the one served model
    GET  /health                liveness and generation counters

Every generation runs through model.generate() in a worker thread (the event loop stays free for
other clients), streams through a TextIteratorStreamer, and stops as soon as its client goes away.
"""
import asyncio
import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402

from model.agent import ToolCallStream  # noqa: E402
from model.generation import StopStrings, cut_at_stop, held_back, sampling_kwargs  # noqa: E402
from model.loading import add_source_args, load_source, source_name  # noqa: E402
from model.reasoning import open_think  # noqa: E402
from model.tools import TOOL_CALL_OPEN, check_tool_definitions, to_openai_tool_calls  # noqa: E402
from trainer.args import (ArgumentParser, add_device_args, check_device, positive_int,  # noqa: E402
                          resolve_dtype)
from trainer.errors import UserError, run_main  # noqa: E402

ROLES = {"system", "developer", "user", "assistant", "tool"}  # developer = OpenAI's newer name for system
TOOL_CHOICES = ("auto", "none", "required")  # or {"type": "function", "function": {"name": ...}}
MAX_STOP = 4  # OpenAI's limit on stop sequences
THINKING_KWARGS = ("enable_thinking", "open_thinking")  # Qwen3's / MiniMind 2025-10's, and MiniMind-3's name
# For requests that leave them out: MiniMind's server defaults (OpenAI's 1.0 / 1.0 ramble on a small model)
DEFAULT_TEMPERATURE, DEFAULT_TOP_P = 0.7, 0.92


class RequestError(Exception):
    """A bad request: becomes a 4xx with OpenAI's error body."""

    def __init__(self, message, param=None, status=400, code=None, type_="invalid_request_error"):
        super().__init__(message)
        self.message, self.param, self.status, self.code, self.type = message, param, status, code, type_


def error_body(message, type_="invalid_request_error", param=None, code=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# ------------------------------------------------------------------------------- request checking

def _number(body, key, lo, hi, default, lo_open=False):
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        raise RequestError(f"'{key}' must be a number, got {json.dumps(v)}", key)
    if v < lo or v > hi or (lo_open and v == lo):
        bound = f"greater than {lo}" if lo_open else f"at least {lo}"
        raise RequestError(f"'{key}' must be {bound} and at most {hi}, got {v}", key)
    return float(v)


def _content(msg, i):
    c = msg.get("content")
    if isinstance(c, str):
        return c
    # OpenAI's content-part form: text parts only (this model reads no images or audio)
    if isinstance(c, list) and c and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in c):
        return "".join(p["text"] for p in c)
    raise RequestError(f"'messages[{i}].content' must be a string (or a list of text parts), "
                       f"got {json.dumps(c)[:80]}", f"messages[{i}].content")


def _tool_calls(msg, i):
    """An assistant message's tool_calls, checked: [{id, type, function: {name, arguments}}]."""
    calls = msg.get("tool_calls")
    where = f"messages[{i}].tool_calls"
    if not isinstance(calls, list) or not calls:
        raise RequestError(f"'{where}' must be a non-empty list", where)
    for j, c in enumerate(calls):
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"] \
                or not isinstance(fn.get("arguments", ""), (str, dict)):
            raise RequestError(f"'{where}[{j}]' must be {{\"type\": \"function\", \"function\": {{\"name\": ..., "
                               "\"arguments\": a JSON string}}", f"{where}[{j}]")
    return [{"id": c.get("id"), "type": "function",
             "function": {"name": c["function"]["name"], "arguments": c["function"].get("arguments", "{}")}}
            for c in calls]


def _message(m, i):
    """One request message as the chat template takes it."""
    if not isinstance(m, dict):
        raise RequestError(f"'messages[{i}]' must be an object with 'role' and 'content'", f"messages[{i}]")
    role = m.get("role")
    if role not in ROLES:
        raise RequestError(f"'messages[{i}].role' must be one of system, user, assistant, tool, got "
                           f"{json.dumps(role)}", f"messages[{i}].role")
    if role == "assistant" and m.get("tool_calls") is not None:
        # OpenAI's assistant turn that called tools: content may be null
        content = "" if m.get("content") is None else _content(m, i)
        return {"role": "assistant", "content": content, "tool_calls": _tool_calls(m, i)}
    out = {"role": "system" if role == "developer" else role, "content": _content(m, i)}
    if role == "tool" and isinstance(m.get("tool_call_id"), str):
        out["tool_call_id"] = m["tool_call_id"]
    return out


def _tools(body):
    """(the tools to put in the prompt or None, the text the reply is begun with or ""), from tools /
    tool_choice / parallel_tool_calls."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    named = None
    if isinstance(choice, dict):
        fn = choice.get("function") if choice.get("type") == "function" else None
        named = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(named, str) or not named:
            raise RequestError(f"'tool_choice' {json.dumps(choice)[:80]} must be \"auto\", \"none\", \"required\" or "
                               '{"type": "function", "function": {"name": ...}}', "tool_choice")
    elif choice is not None and choice not in TOOL_CHOICES:
        raise RequestError(f"'tool_choice' {json.dumps(choice)[:80]} is not supported: this server takes \"auto\" "
                           "(the model decides), \"none\", \"required\" or a named function", "tool_choice")
    if body.get("parallel_tool_calls") is not None and not isinstance(body["parallel_tool_calls"], bool):
        raise RequestError("'parallel_tool_calls' must be true or false", "parallel_tool_calls")
    if tools is not None:
        try:
            check_tool_definitions(tools)
        except ValueError as e:
            raise RequestError(f"invalid 'tools': {e}", "tools")
    if (named or choice == "required") and not tools:
        raise RequestError(f"'tool_choice' {json.dumps(choice)[:80]} needs 'tools' to call", "tool_choice")
    if named:
        offered = [t["function"]["name"] for t in tools]
        if named not in offered:
            raise RequestError(f"'tool_choice' names {named!r}, which is not among 'tools' ({', '.join(offered)})",
                               "tool_choice")
        return tools, f'{TOOL_CALL_OPEN}\n{{"name": "{named}", "arguments":'
    if choice == "required":
        return tools, f'{TOOL_CALL_OPEN}\n{{"name": "'
    return (tools if tools and choice != "none" else None), ""


def parse_request(body):
    """Check a chat-completion body; returns the fields the server uses, or raises RequestError."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("'model' must be a string", "model")
    msgs = body.get("messages")
    if msgs is None:
        raise RequestError("'messages' is required", "messages")
    if not isinstance(msgs, list) or not msgs:
        raise RequestError("'messages' must be a non-empty list of {role, content} objects", "messages")
    messages = [_message(m, i) for i, m in enumerate(msgs)]
    tools, begun = _tools(body)

    temperature = _number(body, "temperature", 0, 2, DEFAULT_TEMPERATURE)
    top_p = _number(body, "top_p", 0, 1, DEFAULT_TOP_P)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise RequestError(f"'max_tokens' must be an integer, got {json.dumps(max_tokens)}", "max_tokens")
    if max_tokens is not None and max_tokens <= 0:
        raise RequestError(f"'max_tokens' must be at least 1, got {max_tokens}", "max_tokens")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise RequestError("'stream' must be true or false", "stream")
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > MAX_STOP or not all(isinstance(s, str) and s for s in stop):
        raise RequestError(f"'stop' must be a non-empty string or a list of at most {MAX_STOP} of them", "stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError("'seed' must be an integer", "seed")
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise RequestError("only n=1 is supported", "n")
    kwargs = body.get("chat_template_kwargs") or {}  # vLLM's field: {"enable_thinking": false}
    if not isinstance(kwargs, dict) or any(k not in THINKING_KWARGS or not isinstance(v, bool) for k, v in kwargs.items()):
        raise RequestError("'chat_template_kwargs' takes enable_thinking / open_thinking, true or false",
                           "chat_template_kwargs")
    thinking = [v for k, v in kwargs.items() if k in THINKING_KWARGS]
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise RequestError("'stream_options' must be an object", "stream_options")
    return dict(model=model, messages=messages, tools=tools, begun=begun,
                enable_thinking=thinking[-1] if thinking else None,
                temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                stream=stream, stop=stop, seed=seed, include_usage=bool(opts.get("include_usage")))


# ------------------------------------------------------------------------------------- generation

class Engine:
    """The model, its tokenizer, and a pool of generation threads (max_parallel at a time)."""

    def __init__(self, model, tokenizer, name="minimind", max_tokens=2048, context=None, max_parallel=1,
                 reasoning=False, aliases=()):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        # the ids a request may name: the served one and the weights' own name (rlhf_512, MiniMind2)
        self.aliases = {name, *aliases}
        self.reasoning = reasoning  # split <think> into reasoning_content (model/reasoning.py)
        self.max_tokens = max_tokens
        self.context = min(context or model.config.max_position_embeddings, model.config.max_position_embeddings)
        self.device = next(model.parameters()).device
        # One thread per concurrent generation; requests beyond that wait in the pool's queue
        # (asynchronously: the event loop keeps answering). With 1 worker, a request's seed is
        # exact, since no other generation touches torch's global RNG meanwhile.
        self.pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="generate")
        self.created = int(time.time())
        self.stats = {"active": 0, "waiting": 0, "finished": 0, "cancelled": 0}
        self._lock = threading.Lock()

    def _count(self, key, d):
        with self._lock:
            self.stats[key] += d

    def prepare(self, req):
        """Prompt ids and the generation budget for a checked request; RequestError if it cannot fit."""
        try:
            thinking = req.get("enable_thinking")  # both names: MiniMind-3's own template reads open_thinking
            extra = {} if thinking is None else {"enable_thinking": thinking, "open_thinking": thinking}
            if req.get("tools"):
                extra["tools"] = req["tools"]
            prompt = self.tokenizer.apply_chat_template(req["messages"], tokenize=False, add_generation_prompt=True,
                                                        **extra) + req.get("begun", "")
        except Exception as e:  # a template that rejects this conversation (e.g. roles out of order)
            raise RequestError(f"'messages' could not be formatted with the chat template: {e}", "messages")
        # a thinking-on MiniMind-3 prompt opens the think block: the reply's reasoning starts in the prompt
        req["opened"] = open_think(prompt) if self.reasoning else ""
        ids = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
        n_prompt = ids.shape[1]
        if n_prompt >= self.context:
            raise RequestError(f"the prompt is {n_prompt} tokens, but this model's context is {self.context} "
                               "tokens; shorten the messages", "messages", code="context_length_exceeded")
        asked = req["max_tokens"]
        if asked is not None and asked > self.context:
            raise RequestError(f"'max_tokens' is {asked}, above this model's context of {self.context} tokens",
                               "max_tokens", code="context_length_exceeded")
        if asked is not None and n_prompt + asked > self.context:
            raise RequestError(f"this model's context is {self.context} tokens, but the request needs "
                               f"{n_prompt + asked} ({n_prompt} in the messages, {asked} in the completion); "
                               "lower 'max_tokens' or shorten the messages", "max_tokens",
                               code="context_length_exceeded")
        budget = min(asked if asked is not None else self.context - n_prompt, self.max_tokens)
        return ids, budget

    def _generate(self, ids, budget, req, streamer, cancel, criteria):
        """Runs in a pool thread. Returns the generated token ids (prompt excluded)."""
        self._count("waiting", -1)
        try:
            if cancel.is_set():  # its client left while it waited for a thread
                return ids.new_zeros(0)
            self._count("active", 1)
            try:
                from transformers import StoppingCriteriaList
                kw = dict(input_ids=ids.to(self.device), attention_mask=torch.ones_like(ids).to(self.device),
                          max_new_tokens=budget, streamer=streamer, stopping_criteria=StoppingCriteriaList([criteria]),
                          pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
                          **sampling_kwargs(req["temperature"], req["top_p"], top_k=0))
                if req["seed"] is not None:
                    torch.manual_seed(req["seed"])
                with torch.inference_mode():
                    out = self.model.generate(**kw)
                return out[0, ids.shape[1]:].cpu()
            finally:
                self._count("active", -1)
        finally:
            streamer.end()  # wakes the reader even when generate() raised or never ran

    async def run(self, ids, budget, req, cancel):
        """Async iterator of text pieces; its last item is a dict (finish_reason, completion_tokens)."""
        from transformers import AsyncTextIteratorStreamer
        streamer = AsyncTextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        criteria = StopStrings(req["stop"], self.tokenizer, ids.shape[1], cancel)
        self._count("waiting", 1)
        job = self.pool.submit(self._generate, ids, budget, req, streamer, cancel, criteria)
        fut = asyncio.wrap_future(job)
        stops, text, sent, stopped = req["stop"], "", 0, False
        try:
            async for piece in streamer:
                if stopped:
                    continue  # drain until generate() notices the stop
                text += piece
                if stops:
                    text, stopped = cut_at_stop(text, stops)
                    upto = len(text) if stopped else len(text) - held_back(text, stops)
                else:
                    upto = len(text)
                if upto > sent:
                    yield text[sent:upto]
                    sent = upto
            new = await fut
        finally:
            if cancel.is_set() or not job.done():
                cancel.set()
                self._count("cancelled", 1)
                if job.cancel():  # still queued, so it never runs (and never leaves 'waiting' itself)
                    self._count("waiting", -1)
            else:
                self._count("finished", 1)
        if sent < len(text):
            yield text[sent:]
        n = int(new.numel())
        eos = n > 0 and int(new[-1]) == self.tokenizer.eos_token_id
        stop_hit = stopped or criteria.hit_stop
        yield {"finish_reason": "length" if (n >= budget and not eos and not stop_hit) else "stop",
               "completion_tokens": n}


# ---------------------------------------------------------------------------------------- the app

def create_app(engine: Engine):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title="MiniMind OpenAI-compatible API")
    app.state.engine = engine

    @app.exception_handler(RequestError)
    async def _bad_request(request, e: RequestError):
        return JSONResponse(error_body(e.message, e.type, e.param, e.code), status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e):
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(f"{request.method} {request.url.path}: {e.detail}", kind),
                            status_code=e.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, e):
        return JSONResponse(error_body(f"invalid request: {e.errors()}"), status_code=400)

    @app.exception_handler(Exception)
    async def _server_error(request, e):  # our bug, still answered in OpenAI's shape
        return JSONResponse(error_body(f"internal error: {type(e).__name__}: {e}", "server_error"), status_code=500)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": engine.name, "generations": dict(engine.stats)}

    def model_card():
        return {"id": engine.name, "object": "model", "created": engine.created, "owned_by": "minimind"}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id}")
    async def get_model(model_id: str):
        if model_id not in engine.aliases:
            raise RequestError(f"The model '{model_id}' does not exist; this server serves '{engine.name}'",
                               "model", status=404, code="model_not_found")
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RequestError(f"the request body is not valid JSON ({e})")
        req = parse_request(body)
        if req["model"] is not None and req["model"] not in engine.aliases:
            # as OpenAI and vLLM answer: a client asking for gpt-4o must not be served MiniMind silently
            raise RequestError(f"The model '{req['model']}' does not exist; this server serves '{engine.name}'",
                               "model", status=404, code="model_not_found")
        ids, budget = engine.prepare(req)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        n_prompt = int(ids.shape[1])
        cancel = threading.Event()
        call_ids = f"call_{uuid.uuid4().hex[:16]}_"  # + the call's index: unique across requests

        def usage(n):
            return {"prompt_tokens": n_prompt, "completion_tokens": n, "total_tokens": n_prompt + n}

        if not req["stream"]:
            # Nobody reads this response while it is generated, so a watcher notices a client
            # that hangs up (its receive() returns http.disconnect) and stops the generation.
            watcher = asyncio.create_task(_watch_disconnect(request, cancel))
            try:
                parts, end = [], None
                async for item in engine.run(ids, budget, req, cancel):
                    if isinstance(item, dict):
                        end = item
                    else:
                        parts.append(item)
            finally:
                watcher.cancel()
            message, finish = {"role": "assistant", "content": req["begun"] + "".join(parts)}, end["finish_reason"]
            if engine.reasoning:
                from model.reasoning import split_reasoning
                message["reasoning_content"], message["content"] = split_reasoning(req["opened"] + message["content"])
            if req["tools"]:
                split = ToolCallStream()
                shown = split.feed(message["content"])
                rest, calls = split.finish()
                if calls:
                    message["content"] = (shown + rest) or None
                    message["tool_calls"], finish = to_openai_tool_calls(calls, call_ids), "tool_calls"
            return {
                "id": cid, "object": "chat.completion", "created": created, "model": engine.name,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage(end["completion_tokens"]),
            }

        def chunk(delta, finish=None):
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": engine.name,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        def sse(obj):
            return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

        calls_split = ToolCallStream() if req["tools"] else None
        if req["begun"]:  # the call begun for the model (tool_choice required / named): held, as any call
            calls_split.feed(req["begun"])

        def deltas(pieces):
            """Text deltas; a reason model's as DeepSeek's, reasoning or answer with the other null. With
            tools, the answer stops at the first <tool_call> (the calls come at the end)."""
            for kind, text in pieces:
                if kind != "reasoning" and calls_split:
                    text = calls_split.feed(text)
                if not text:
                    continue
                if kind == "reasoning":
                    yield sse(chunk({"content": None, "reasoning_content": text}))
                elif engine.reasoning:
                    yield sse(chunk({"content": text, "reasoning_content": None}))
                else:
                    yield sse(chunk({"content": text}))


        async def events():
            # Starlette cancels this generator when the client disconnects; `finally` in
            # engine.run then sets `cancel`, and the StoppingCriteria ends generate().
            split = None
            if engine.reasoning:
                from model.reasoning import ReasoningStream
                split = ReasoningStream()
                split.feed(req["opened"])
            try:
                yield sse(chunk({"role": "assistant", "content": ""}))
                async for item in engine.run(ids, budget, req, cancel):
                    if isinstance(item, dict):
                        for event in deltas(split.flush() if split else []):
                            yield event
                        finish = item["finish_reason"]
                        if calls_split:
                            rest, calls = calls_split.finish()
                            if rest:
                                yield sse(chunk({"content": rest, "reasoning_content": None} if engine.reasoning
                                                else {"content": rest}))
                            if calls:
                                finish = "tool_calls"
                                yield sse(chunk({"tool_calls": [{"index": i, **c} for i, c in
                                                                enumerate(to_openai_tool_calls(calls, call_ids))]}))
                        yield sse(chunk({}, finish))
                        if req["include_usage"]:
                            yield sse({"id": cid, "object": "chat.completion.chunk", "created": created,
                                       "model": engine.name, "choices": [], "usage": usage(item["completion_tokens"])})
                    else:
                        for event in deltas(split.feed(item) if split else [("answer", item)]):
                            yield event
            except Exception as e:  # headers are gone already: report in-band, then end the stream
                yield sse(error_body(f"internal error: {type(e).__name__}: {e}", "server_error"))
            finally:
                cancel.set()
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


async def _watch_disconnect(request, cancel):
    while not cancel.is_set():
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.set()
            return


# ---------------------------------------------------------------------------------------- the CLI

def get_parser():
    # 'resolve': --max_seq_len is the served context here, not the training sample length
    p = ArgumentParser(description="OpenAI-compatible chat server for a MiniMind model", conflict_handler="resolve")
    add_source_args(p)
    add_device_args(p)
    p.add_argument("--max_seq_len", type=positive_int, default=None,
                   help="context length served: prompt + answer (default: the model's max_position_embeddings)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default %(default)s: this machine only; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=8998, help="port (default %(default)s, as MiniMind)")
    p.add_argument("--max_tokens", type=positive_int, default=2048,
                   help="most tokens one answer may have; a request asking more is capped (default %(default)s)")
    p.add_argument("--max_parallel", type=positive_int, default=1,
                   help="generations run at once, the others wait; with 1 a request's seed reproduces "
                        "its answer exactly (default %(default)s)")
    p.add_argument("--model_name", default="minimind",
                   help="the id /v1/models reports; a request naming another model than this or the weights' own "
                        "name (rlhf_512) gets 404 model_not_found (default %(default)s)")
    p.add_argument("--reasoning", type=int, choices=[0, 1], default=None,
                   help="1: split <think>...</think> into reasoning_content, the answer (tags removed) in "
                        "content (default: 1 for --model_mode 3 or reason_* weights, else 0)")
    return p


def serves_reasoning(args) -> bool:
    """--reasoning, or else whether the weights are a reason model's (train_distill_reason.py)."""
    if args.reasoning is not None:
        return bool(args.reasoning)
    if getattr(args, "model_path", None) and getattr(args, "load", None) != 0:
        return False
    name = os.path.basename(args.weight) if args.weight else ""
    return args.model_mode == 3 if not name else name.startswith("reason")


def main(argv=None):
    args = get_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: expected 0..65535")
    device = check_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    model, tokenizer, where = load_source(args, dtype=dtype)
    model = model.to(device).eval()
    if not tokenizer.chat_template:
        raise UserError(f"{args.tokenizer_path or where}: the tokenizer has no chat template; pass a "
                        "--tokenizer_path that has one (the repo's ./model does)")
    engine = Engine(model, tokenizer, args.model_name, args.max_tokens, args.max_seq_len, args.max_parallel,
                    reasoning=serves_reasoning(args), aliases=[source_name(args, with_lora=False)])
    import uvicorn
    print(f"serving {where} as '{args.model_name}' on http://{args.host}:{args.port}/v1 "
          f"(context {engine.context}, max_tokens {engine.max_tokens}"
          f"{', reasoning_content on' if engine.reasoning else ''})", flush=True)
    try:
        # On Ctrl-C, requests still generating get 5 s; then they are cancelled, which stops
        # their generate() at the next token.
        uvicorn.run(create_app(engine), host=args.host, port=args.port, log_level="info",
                    timeout_graceful_shutdown=5)
    except SystemExit as e:  # uvicorn exits 1 when it cannot bind (its own one-line log says why)
        if e.code not in (0, None):
            raise UserError(f"could not serve on {args.host}:{args.port} (in use, or not an address of this "
                            "machine); pick another --port/--host")
        raise


if __name__ == "__main__":
    run_main(main)
