"""The tool-calling loop: the model writes <tool_call> blocks, the registry runs them, the results go back.

One loop for every front end (eval_model.py / eval_llm.py through model/chat.py, the chat page) and for
the agentic RL rollout; the server, whose client runs the tools, shares the streaming split:

    loop = ToolLoop.from_spec("all" | "name,name" | "file.py:fn,...", max_turns=3)   UserError if unknown
    loop.schemas                       the OpenAI `tools` list for apply_chat_template(..., tools=...)
    loop.run(messages, generate, on_call=None) -> LoopResult
        messages     the conversation, ending with the user's question; gains each turn that called
                     tools (the assistant's text as generated, then one `tool` message per call)
        generate     generate(messages, turn) -> the model's whole text for the next assistant turn
        on_call      on_call(call) after each call ran (call.result set): print or draw it
      at most max_turns generations per question; calls in the last allowed one are not run
      (LoopResult.unfinished). A malformed block, an unknown or unselected tool, bad arguments, a
      timeout: an {"error": ...} result that the model reads, never an exception.
    ToolCallStream()                   a streamed reply split into the text to show now and the calls:
        feed(piece) -> text to show    (held back from the first <tool_call> on)
        finish() -> (rest to show, [parsed calls])

An assistant turn that called tools is kept as the text the model generated (MiniMind's rollout and
page do the same), so the next prompt begins with exactly the previous prompt and its reply.
"""
import json
from dataclasses import dataclass, field

from model.generation import held_back
from model.tools import TOOL_CALL_OPEN, ToolRegistry, parse_tool_calls, tool_response_text

DEFAULT_MAX_TURNS = 3  # MiniMind's agent rollout (trainer/train_agent.py max_turns=3): model turns per question


@dataclass
class ToolCall:
    """One call the model made, and what running it gave."""
    id: str
    name: str               # "" for a block that did not parse
    arguments: dict         # {} for a block that did not parse
    result: dict = None     # None until run (and for calls past the turn limit)
    block: str = ""         # a malformed block's text

    def openai(self):
        """The call as an entry of OpenAI's `tool_calls` (arguments as a JSON string)."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)}}

    def shown(self):
        """name({"arg": ...}), or the malformed block as the model wrote it."""
        if not self.name:
            return f"(malformed) {self.block.strip()[:200]}"
        return f"{self.name}({json.dumps(self.arguments, ensure_ascii=False)})"

    @property
    def failed(self):
        return isinstance(self.result, dict) and "error" in self.result


@dataclass
class ToolTurn:
    """One generation: the text as generated, the text shown (without the blocks), its calls."""
    text: str
    content: str
    calls: list = field(default_factory=list)


@dataclass
class LoopResult:
    turns: list
    unfinished: bool = False  # the last turn still called tools when max_turns was reached

    @property
    def text(self):
        """The last turn's text as generated: the answer (or, unfinished, the calls not run)."""
        return self.turns[-1].text if self.turns else ""

    @property
    def calls(self):
        return [c for t in self.turns for c in t.calls]


class ToolCallStream:
    """Splits a reply that streams in: text before the first <tool_call> is shown as it comes (a partial
    tag and trailing whitespace held back until they resolve), the rest is held; finish() says what
    is left to show and which calls were made. Fed a whole reply, it gives what a stream would."""

    def __init__(self):
        self.text, self.sent, self.held = "", 0, False

    def feed(self, piece):
        self.text += piece
        if self.held:
            return ""
        at = self.text.find(TOOL_CALL_OPEN, self.sent)
        self.held = at >= 0
        upto = at if self.held else len(self.text) - held_back(self.text, [TOOL_CALL_OPEN])
        upto = max(self.sent, len(self.text[:upto].rstrip()))  # a block may follow: its whitespace goes
        new, self.sent = self.text[self.sent:upto], upto
        return new

    def finish(self):
        """(the text still to show, [{"name", "arguments"}] calls). Without a well-formed call the
        reply is shown whole, blocks and all: nothing the model wrote is lost."""
        parsed = parse_tool_calls(self.text)
        if not parsed.calls:
            rest, self.sent = self.text[self.sent:], len(self.text)
            return rest, []
        rest = parse_tool_calls(self.text[self.sent:]).content
        shown = self.text[:self.sent]
        if rest and shown.strip():
            rest = "\n" + rest
        self.sent = len(self.text)
        return rest, parsed.calls


def split_reply(text, turn=0, id_prefix="call_"):
    """(content shown, [ToolCall]) of a whole reply: its well-formed calls, then one ToolCall per
    malformed block (no name, block set) so that the model hears about those too."""
    stream = ToolCallStream()
    shown = stream.feed(text)
    rest, _ = stream.finish()
    parsed = parse_tool_calls(text)
    calls = [ToolCall(f"{id_prefix}{turn}_{i}", c["name"], c["arguments"]) for i, c in enumerate(parsed.calls)]
    if parsed.calls:  # a reply with no good call is an answer, whatever broken tags it has
        calls += [ToolCall(f"{id_prefix}{turn}_{len(calls) + i}", "", {}, block=e["block"] or "")
                  for i, e in enumerate(parsed.errors)]
    elif parsed.errors and any(e["block"].strip() for e in parsed.errors):
        calls = [ToolCall(f"{id_prefix}{turn}_{i}", "", {}, block=e["block"]) for i, e in enumerate(parsed.errors)]
    return shown + rest, calls


class ToolLoop:
    """The tools a conversation may call (a selection of a ToolRegistry) and the loop that runs them."""

    def __init__(self, registry, names, max_turns=DEFAULT_MAX_TURNS, id_prefix="call_"):
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.registry, self.names, self.max_turns, self.id_prefix = registry, list(names), max_turns, id_prefix
        self.schemas = registry.schemas(self.names) if self.names else []

    @classmethod
    def from_spec(cls, spec, max_turns=DEFAULT_MAX_TURNS, registry=None):
        """"all", "name,name" or a list; file.py:function items are loaded. UserError (--tools ...) when a
        name is unknown or a file cannot be loaded."""
        registry = registry or ToolRegistry()
        return cls(registry, registry.select(spec), max_turns)

    def execute(self, call):
        """Runs one ToolCall (sets and returns call.result); never raises."""
        if not call.name:
            call.result = {"error": "malformed tool call: expected <tool_call>\n"
                                    '{"name": <function-name>, "arguments": {...}}\n</tool_call>'}
        elif call.name not in self.names:
            call.result = {"error": f"unknown tool {call.name!r}; available: {', '.join(self.names)}"}
        else:
            call.result = self.registry.execute(call.name, call.arguments)
        return call.result

    def messages_for(self, turn):
        """The messages a turn that called tools adds: its text as generated, then the results in order."""
        return [{"role": "assistant", "content": turn.text}] + [
            {"role": "tool", "tool_call_id": c.id, "content": tool_response_text(c.result)} for c in turn.calls]

    def run(self, messages, generate, on_call=None):
        turns = []
        for i in range(self.max_turns):
            text = generate(messages, i)
            content, calls = split_reply(text, i, self.id_prefix)
            turn = ToolTurn(text, content, calls)
            turns.append(turn)
            if not calls:
                return LoopResult(turns)
            if i == self.max_turns - 1:
                return LoopResult(turns, unfinished=True)
            for call in calls:
                self.execute(call)
                if on_call:
                    on_call(call)
            messages += self.messages_for(turn)
        raise AssertionError("unreachable")
