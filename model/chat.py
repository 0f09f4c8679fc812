"""A conversation with a model: its prompts (chat template, history), its answers, their printing.

    build_prompt(tokenizer, messages, model_mode)   the text fed to the model for the last question
    keep_history(messages, n)                       the last n messages, never starting with an answer
    Chat(model, tokenizer, settings, out)           asks, streams the answer into `out`, remembers
    ReasonPrinter(out)                              a reason model's stream: 💭 thinking, then 🤖️ answer

`settings` is any object with eval_model.py's generation flags: model_mode, history_cnt,
max_new_tokens, temperature, top_p, seed, stream (and show_think, enable_thinking). eval_model.py, the chat page and
the demo all answer through Chat, so a reply with seed S is the same in each.

Chat(..., tools=ToolLoop) (model/agent.py; eval_model.py --tools) puts the tools in the prompt and runs the
model's calls: Chat.converse(messages, generate_turn, on_call) is the loop the terminal and the page share;
ask() prints each turn after BOT_TAG (the <tool_call> blocks left out), then each call and its result.
"""
import json
import random
import sys

import torch

from model.generation import sampling_kwargs, stream_text
from model.loading import REASON_MODE
from model.reasoning import open_think
from trainer.errors import UserError

USER_TAG = "👶: "
BOT_TAG = "🤖️: "
THINK_TAG = "💭: "  # --model_mode 3: the reasoning, on its own lines before the answer
CALL_TAG, RESULT_TAG, ERROR_TAG = "📞 [Tool Calling]: ", "✅ [Tool Called]: ", "❌ [Tool Error]: "  # MiniMind's first two
LIMIT_TAG = "⏹ [Tool Limit]: "


def build_prompt(tokenizer, messages, model_mode, enable_thinking=None, tools=None) -> str:
    """The text fed to the model for the last user message in `messages`.

    A pretrained model continues raw text after <|im_start|> (as its training samples began);
    a chat model gets the chat template with the assistant turn opened. enable_thinking=False asks
    the template to open the answer with an empty think block (adaptive thinking); None leaves the
    template's default, so the prompt is byte for byte what it was without the switch. `tools` (an OpenAI
    tools list) go into the system turn.
    """
    if model_mode == 0:
        return tokenizer.bos_token + messages[-1]["content"]
    # both names: MiniMind 2025-10's template reads enable_thinking, MiniMind-3's own open_thinking
    extra = {} if enable_thinking is None else {"enable_thinking": bool(enable_thinking),
                                                "open_thinking": bool(enable_thinking)}
    if tools:
        extra["tools"] = tools
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)


def keep_history(messages, history_cnt):
    """The last `history_cnt` messages, never starting with an orphaned answer or tool result."""
    if history_cnt <= 0:
        return []
    kept = messages[-history_cnt:]
    while kept and kept[0]["role"] in ("assistant", "tool"):
        kept = kept[1:]
    return kept


class ReasonPrinter:
    """Prints a reason model's output as it streams in: the <think> part after THINK_TAG (dimmed at
    a terminal; left out with show_think=0), then the answer after BOT_TAG, tags removed."""

    DIM, RESET = "\033[2m", "\033[0m"

    def __init__(self, out, show_think=1):
        from model.reasoning import ReasoningStream
        self.out, self.show_think = out, bool(show_think)
        self.stream = ReasoningStream()
        self.dim = bool(getattr(out, "isatty", lambda: False)())
        self.state = None  # None, "reasoning" (its label printed), "answer" (BOT_TAG printed)
        self.parts = {"reasoning": [], "answer": []}

    def write(self, text):
        self._show(self.stream.feed(text))

    def flush(self):
        self.out.flush()

    def _show(self, pieces):
        for kind, text in pieces:
            self.parts[kind].append(text)
            if kind == "reasoning" and not self.show_think:
                continue
            if kind != self.state:
                if self.state == "reasoning":
                    self.out.write((self.RESET if self.dim else "") + "\n")
                self.out.write(THINK_TAG + (self.DIM if self.dim else "") if kind == "reasoning" else BOT_TAG)
                self.state = kind
            self.out.write(text)
        self.out.flush()

    def close(self):
        """Ends the output; returns (reasoning or None, answer)."""
        self._show(self.stream.flush())
        if self.state != "answer":
            self._show([("answer", "")])
        reasoning = "".join(self.parts["reasoning"]) if self.parts["reasoning"] else None
        return reasoning, "".join(self.parts["answer"])


class ToolSink:
    """Passes a reply on to `out` without its <tool_call> blocks (model/agent.py's ToolCallStream), after
    `tag` once there is text to show; close() writes what was held back and is not a call. A turn
    that only calls tools shows nothing (its calls are printed apart)."""

    def __init__(self, out, tag=""):
        from model.agent import ToolCallStream
        self.out, self.tag, self.split, self.wrote = out, tag, ToolCallStream(), False

    def _show(self, text):
        if not self.wrote:
            self.out.write(self.tag)
            self.wrote = True
        self.out.write(text)

    def write(self, piece):
        shown = self.split.feed(piece)
        if shown:
            self._show(shown)

    def flush(self):
        self.out.flush()

    def close(self):
        rest, calls = self.split.finish()
        if rest or not calls:
            self._show(rest)
        self.out.flush()


class Chat:
    """One conversation: builds prompts (with history), generates, prints, remembers; with `tools` (a
    model/agent.py ToolLoop) the model's tool calls are run and their results fed back."""

    def __init__(self, model, tokenizer, args, out=None, tools=None):
        self.model, self.tokenizer, self.args = model, tokenizer, args
        self.out = out
        self.tools = tools
        self.messages = []  # the whole conversation so far; keep_history picks what is sent

    def prompt(self, messages) -> str:
        extra = {"tools": self.tools.schemas} if self.tools else {}
        return build_prompt(self.tokenizer, messages, self.args.model_mode, getattr(self.args, "enable_thinking", None),
                            **extra)

    def prompt_for(self, question) -> str:
        return self.prompt(keep_history(self.messages, self.args.history_cnt) + [{"role": "user", "content": question}])

    def generate_kwargs(self, prompt):
        """generate()'s arguments for `prompt`; a UserError when it leaves no room for an answer."""
        a, tok = self.args, self.tokenizer
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        ids = enc["input_ids"].to(self.model.device)
        room = getattr(self.model.config, "max_position_embeddings", None)
        max_new = a.max_new_tokens if room is None else min(a.max_new_tokens, room - ids.shape[1])
        if max_new <= 0:
            raise UserError(f"the prompt is {ids.shape[1]} tokens, the model's limit is {room}; "
                            "ask a shorter question or lower --history_cnt")
        kw = dict(input_ids=ids, attention_mask=enc["attention_mask"].to(self.model.device),
                  max_new_tokens=max_new, use_cache=True,
                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        kw.update(sampling_kwargs(a.temperature, a.top_p))
        return kw

    def seed(self):
        # A fresh seed per question unless --seed: then every answer is reproducible on its own,
        # whatever was asked before.
        torch.manual_seed(self.args.seed if self.args.seed is not None else random.randrange(2 ** 63))

    def ask(self, question) -> str:
        """Answer `question`, printing it as it comes; returns the printed answer."""
        out = self.out or sys.stdout
        self.seed()
        if self.tools:
            return self._ask_with_tools(question, out)
        answer = self.reply(self.prompt_for(question), out)
        out.write("\n\n")
        out.flush()
        self.messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return answer

    def reply(self, prompt, out) -> str:
        """One generation for `prompt`, printed after BOT_TAG (with tools, without the <tool_call> blocks);
        returns the answer kept in the history. self.raw is the whole generated text."""
        kw = self.generate_kwargs(prompt)
        opened = open_think(prompt)  # a thinking-on MiniMind-3 prompt opened the think block
        reason = self.args.model_mode == REASON_MODE or bool(opened)
        sink = ReasonPrinter(out, getattr(self.args, "show_think", 1)) if reason else out
        if not reason and not self.tools:
            out.write(BOT_TAG)
            out.flush()
        shown = ToolSink(sink, "" if reason else BOT_TAG) if self.tools else sink
        if opened:
            shown.write(opened)
        if self.args.stream:
            answer = self.stream(kw, shown)
        else:
            with torch.inference_mode():
                ids = self.model.generate(**kw)
            answer = self.tokenizer.decode(ids[0, kw["input_ids"].shape[1]:], skip_special_tokens=True)
            answer = answer.rstrip("\ufffd")
            shown.write(answer)
        if self.tools:
            shown.close()
        self.shown_text = reason or not self.tools or shown.wrote  # False: a turn of calls alone
        self.raw = opened + answer  # the whole generated text (a reason model's with its tags)
        if reason:
            # the answer alone goes into the history, as DeepSeek advises for reasoning models
            self.reasoning, answer = sink.close()
        return answer

    def converse(self, messages, generate_turn, on_call=None):
        """The tool loop (model/agent.py) on `messages` (ending with the question): generate_turn(prompt, turn)
        generates one turn and returns its whole text. Returns the LoopResult; `messages` gains the turns
        that called tools."""
        return self.tools.run(messages, lambda msgs, turn: generate_turn(self.prompt(msgs), turn), on_call)

    def _ask_with_tools(self, question, out):
        msgs = keep_history(self.messages, self.args.history_cnt) + [{"role": "user", "content": question}]
        start = len(msgs) - 1
        answers, raws = [], []

        def turn(prompt, i):
            answers.append(self.reply(prompt, out))
            raws.append(self.raw)
            if self.shown_text:
                out.write("\n")
                out.flush()
            return self.raw

        def show(call):
            out.write(f"{CALL_TAG}{call.shown()}\n{ERROR_TAG if call.failed else RESULT_TAG}"
                      f"{json.dumps(call.result, ensure_ascii=False)}\n")
            out.flush()

        result = self.converse(msgs, turn, show)
        if result.unfinished:
            calls = result.turns[-1].calls
            out.write("".join(f"{CALL_TAG}{c.shown()}\n" for c in calls) + f"{LIMIT_TAG}{'these calls' if len(calls) > 1 else 'this call'} "
                      f"not run: {self.tools.max_turns} model turns per question at most (--max_turns)\n")
        out.write("\n")
        out.flush()
        self.raw = "".join(raws)
        self.turns = result
        self.messages += msgs[start:] + [{"role": "assistant", "content": answers[-1]}]
        return answers[-1]

    def stream_reply(self, prompt, out) -> str:
        """stream() for `prompt`, the think block the prompt opened (MiniMind-3, thinking on) written first, as the
        reply's start: its returned text and what `out` sees then parse as any reasoning reply."""
        opened = open_think(prompt)
        if opened:
            out.write(opened)
        return opened + self.stream(self.generate_kwargs(prompt), out)

    def stream(self, kw, out) -> str:
        """Writes generate(**kw)'s text into `out` as it comes; returns all of it."""
        pieces = []
        stream = stream_text(self.model, self.tokenizer, kw)
        try:
            for piece in stream:
                out.write(piece)
                out.flush()
                pieces.append(piece)
        finally:
            # at once, not when the generator is collected: a Stop on the page or a Ctrl-C (raised in
            # out.write) must end generate() now, and a traceback would keep the generator alive
            stream.close()
        return "".join(pieces)
