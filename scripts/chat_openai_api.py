"""A terminal chat with scripts/serve_openai_api.py (or any OpenAI-compatible server), as MiniMind2's.

    python scripts/serve_openai_api.py            # in one terminal
    python scripts/chat_openai_api.py             # in another: [Q]: question, [A]: streamed answer

It uses the official `openai` client. --history N sends the last N messages (a question and its
answer count two; 0 = every question alone) with each question. For a reason model the server's
`reasoning_content` (DeepSeek's field, when the server sends it) is printed apart, after
`[Think]: `, before the answer. An empty line or end of input ends the chat; a server that cannot
be reached is one line on stderr, exit code 2; a request the server refuses (too long, ...) is one
line on stderr, and the chat goes on.

--tools all|name,name|file.py:function is OpenAI's function-calling round trip: the tools' schemas go
with each question (model/tools.py's; an unknown name is one line, exit 2), the calls the server returns
are run here and printed ([Tool call]: / [Tool result]:), the assistant message with its tool_calls and
one `tool` message per call are sent back, and the model answers; at most --max_turns requests per
question.

    python scripts/chat_openai_api.py --tools calculate_math,unit_converter
"""
import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from trainer.errors import UserError, one_line  # noqa: E402

Q_TAG, A_TAG, THINK_TAG = "[Q]: ", "[A]: ", "[Think]: "
CALL_TAG, RESULT_TAG = "[Tool call]: ", "[Tool result]: "
MAX_TURNS = 3  # model/agent.py's DEFAULT_MAX_TURNS (not imported: the plain chat never loads torch)


def nonneg_int(v, least=0):
    try:
        i = int(v)
    except ValueError:
        i = least - 1
    if i < least:
        raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {v!r}")
    return i


def positive_int(v):
    return nonneg_int(v, 1)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error, exit 2 (trainer.args' would import torch, which a client never needs)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")
        sys.exit(2)


def get_parser():
    p = ArgumentParser(description="Terminal chat with an OpenAI-compatible MiniMind server")
    p.add_argument("--base_url", default="http://127.0.0.1:8998/v1",
                   help="the server's /v1 address (default %(default)s: scripts/serve_openai_api.py's)")
    p.add_argument("--api_key", default="none", help="sent as the bearer token; the MiniMind server ignores it")
    p.add_argument("--model", default="minimind", help="model id to ask for (default %(default)s)")
    p.add_argument("--history", type=nonneg_int, default=2,
                   help="earlier messages sent with each question, a question and its answer counting two "
                        "(default %(default)s: the last exchange; 0: none)")
    p.add_argument("--stream", type=int, choices=[0, 1], default=1,
                   help="1: print the answer as it is generated, 0: print it whole (default 1)")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the server's)")
    p.add_argument("--max_tokens", type=int, default=None, help="longest answer in tokens (default: the server's)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for an answer (default %(default)s)")
    p.add_argument("--tools", default=None,
                   help="send these tools and run the calls the model makes: all, a comma-separated list of "
                        "calculate_math, unit_converter, get_current_weather, get_current_time, get_exchange_rate, "
                        "translate_text, or path/to/file.py:function (default: none)")
    p.add_argument("--max_turns", type=positive_int, default=MAX_TURNS,
                   help="with --tools: most requests per question, calls and answer together (default %(default)s)")
    return p


def read_line(prompt):
    """One line from stdin (None at the end of input); piped lines are echoed after the prompt."""
    if sys.stdin.isatty():
        try:
            return input(prompt)
        except EOFError:
            print()
            return None
    sys.stdout.write(prompt)
    line = sys.stdin.readline()
    if not line:
        sys.stdout.write("\n")
        return None
    line = line.rstrip("\r\n")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return line


def recent(messages, n):
    """The last n messages, never starting with an answer or a tool result whose question was cut off."""
    kept = messages[-n:] if n > 0 else []
    while kept and kept[0]["role"] in ("assistant", "tool"):
        kept = kept[1:]
    return kept


def _field(obj, name):
    """A field the openai types may not declare (reasoning_content) from a message or a delta."""
    v = getattr(obj, name, None)
    if v is None and getattr(obj, "model_extra", None):
        v = obj.model_extra.get(name)
    return v or ""


def ask(client, args, messages, tools=None):
    """Send `messages`, print the reply as it comes; returns (the answer's text, its tool_calls as dicts
    or None). A reply that only calls tools prints no [A]: line."""
    kw = dict(model=args.model, messages=messages, stream=bool(args.stream))
    if args.temperature is not None:
        kw["temperature"] = args.temperature
    if args.max_tokens is not None:
        kw["max_tokens"] = args.max_tokens
    if tools:
        kw["tools"] = tools
    response = client.chat.completions.create(**kw)
    out = sys.stdout
    if not args.stream:
        msg = response.choices[0].message
        think = _field(msg, "reasoning_content")
        if think:
            out.write(THINK_TAG + think + "\n")
        calls = [c.model_dump() for c in msg.tool_calls] if msg.tool_calls else None
        if msg.content or not calls:
            out.write(A_TAG + (msg.content or "") + "\n" + ("" if calls else "\n"))
        out.flush()
        return msg.content or "", calls
    answer, thinking, calls = [], False, {}
    for chunk in response:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        think = _field(delta, "reasoning_content")
        if think:
            if not thinking:
                out.write(THINK_TAG)
                thinking = True
            out.write(think)
        piece = delta.content or ""
        if piece:
            if not answer:
                out.write(("\n" if thinking else "") + A_TAG)
            out.write(piece)
            answer.append(piece)
        for tc in delta.tool_calls or []:  # OpenAI streams a call in pieces, keyed by its index
            slot = calls.setdefault(tc.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
            slot["id"] += tc.id or ""
            if tc.function:
                slot["function"]["name"] += tc.function.name or ""
                slot["function"]["arguments"] += tc.function.arguments or ""
        out.flush()
    calls = [calls[i] for i in sorted(calls)] or None
    if not answer and not calls:
        out.write(("\n" if thinking else "") + A_TAG)
    if answer or not calls or thinking:
        out.write("\n" if calls else "\n\n")
    out.flush()
    return "".join(answer), calls


def ask_with_tools(client, args, messages, tools):
    """OpenAI's function-calling round trip for the question that ends `messages`: send it with the tools,
    run the calls that come back (model/agent.py's ToolLoop: unknown tools and bad arguments are error
    results), send the results, until the model answers or --max_turns requests were made. Returns the
    messages the question added (its tool turns and the answer)."""
    from model.agent import ToolCall
    from model.tools import tool_response_text
    added = []
    for turn in range(args.max_turns):
        content, calls = ask(client, args, messages + added, tools.schemas)
        if not calls:
            return added + [{"role": "assistant", "content": content}]
        added.append({"role": "assistant", "content": content or None, "tool_calls": calls})
        if turn == args.max_turns - 1:
            sys.stdout.write("".join(f"{CALL_TAG}{c['function']['name']}({c['function']['arguments']})\n" for c in calls)
                             + f"[Tool limit]: not run: {args.max_turns} requests per question at most (--max_turns)\n\n")
            return added[:-1] + [{"role": "assistant", "content": content}]
        for c in calls:
            call = ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
            result = tools.execute(call)
            sys.stdout.write(f"{CALL_TAG}{call.name}({c['function']['arguments']})\n"
                             f"{RESULT_TAG}{json.dumps(result, ensure_ascii=False)}\n")
            sys.stdout.flush()
            added.append({"role": "tool", "tool_call_id": c["id"], "content": tool_response_text(result)})
    raise AssertionError("unreachable")


def main(argv=None):
    args = get_parser().parse_args(argv)
    tools = None
    if args.tools is not None:  # before the first question: an unknown name is said at once
        from model.agent import ToolLoop
        tools = ToolLoop.from_spec(args.tools, args.max_turns)
    import openai
    # no retries: a server that is not there is said at once, not after a minute of backoff
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=args.timeout)
    messages = []
    while True:
        q = read_line(Q_TAG)
        if q is None or not q.strip():
            return 0
        q = q.strip()
        send = recent(messages, args.history) + [{"role": "user", "content": q}]
        try:
            if tools:
                added = ask_with_tools(client, args, send, tools)
            else:
                added = [{"role": "assistant", "content": ask(client, args, send)[0]}]
        except openai.APIConnectionError as e:
            raise UserError(f"{args.base_url}: cannot reach the server ({one_line(e.__cause__ or e)[:160]}); "
                            "start it with `python scripts/serve_openai_api.py`, or pass its --base_url")
        except openai.APIStatusError as e:  # a bad request (too long, ...): said, and the chat goes on
            body = e.body if isinstance(e.body, dict) else {}
            print(f"error: the server answered {e.status_code}: {one_line(body.get('message') or e.message)[:300]}",
                  file=sys.stderr, flush=True)
            continue
        messages += [{"role": "user", "content": q}] + added


def cli(argv=None):
    """main() with the project's manners: a user error is one stderr line and exit 2, Ctrl-C exits 130
    quietly. (trainer.errors.run_main would import torch.distributed on the way out.)"""
    try:
        return main(argv)
    except UserError as e:
        sys.stdout.flush()
        print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print(flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(cli())
