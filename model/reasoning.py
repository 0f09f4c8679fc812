"""R1-style reasoning text: "<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>".

Used by train_distill_reason.py (which tokens spell the tags), model/chat.py (eval_model.py --model_mode 3), the
OpenAI-compatible server (DeepSeek's `reasoning_content`) and the web page (a collapsible block):

    open_think(prompt) -> the think block a prompt opened ("<think>\n"), to put before its output; or ""
    split_reasoning(text) -> (reasoning or None, answer)
        reasoning: the text inside <think>...</think>, stripped; None when there is no <think>.
        answer: everything else with the tags removed (the <answer> body when there is one), stripped.
    ReasoningStream().feed(chunk) -> [(kind, text), ...]; .flush() -> [...]
        the same split, incrementally: kind is "reasoning" or "answer"; a tag split across chunks
        is held back until it is complete, and the pieces of each kind joined equal split_reasoning's.
"""
import re

THINK_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = THINK_TAGS

_TAG_RE = re.compile("|".join(re.escape(t) for t in THINK_TAGS))
_WELL_FORMED_RE = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.S)


def tag_spans(text):
    """[(start, end)] character spans of every tag occurrence in text, in order."""
    return [m.span() for m in _TAG_RE.finditer(text)]


def is_well_formed(text):
    """True for exactly <think>...</think><answer>...</answer> (whitespace around and between
    allowed), each tag once, a non-empty answer."""
    m = _WELL_FORMED_RE.fullmatch(text)
    if not m or len(tag_spans(text)) != 4:
        return False
    return bool(m.group(2).strip())


def open_think(prompt):
    """The think block `prompt` leaves open for the model ("<think>\n" for a thinking-on MiniMind-3 / Qwen3
    prompt, which opens it in the assistant turn), else "". The generated text continues that block, so
    whoever parses it puts this in front first."""
    start = prompt.rfind(THINK_OPEN)
    if start == -1 or THINK_CLOSE in prompt[start:] or start < prompt.rfind("<|im_start|>"):
        return ""
    return prompt[start:]


def split_reasoning(text):
    """(reasoning or None, answer) of a model's output; see the module docstring."""
    reasoning, answer = [], []
    saw_think = False
    mode = "answer"
    pos = 0
    for m in _TAG_RE.finditer(text):
        (reasoning if mode == "reasoning" else answer).append(text[pos:m.start()])
        mode, saw = _next_mode(m.group(0))
        saw_think = saw_think or saw
        pos = m.end()
    (reasoning if mode == "reasoning" else answer).append(text[pos:])
    return ("".join(reasoning).strip() if saw_think else None), "".join(answer).strip()


def _next_mode(tag):
    """(mode after tag, whether it opens a think block)."""
    if tag == THINK_OPEN:
        return "reasoning", True
    return "answer", False


class ReasoningStream:
    """Incremental split_reasoning for streamed generation (tags may arrive split across chunks)."""

    def __init__(self):
        self.mode = "answer"
        self.buf = ""
        self.started = {"reasoning": False, "answer": False}
        self.pending = {"reasoning": "", "answer": ""}   # trailing whitespace, emitted only if text follows

    def feed(self, chunk):
        self.buf += chunk
        out = []
        while True:
            m = _TAG_RE.search(self.buf)
            if m is None:
                break
            self._emit(out, self.mode, self.buf[:m.start()])
            self.mode, _ = _next_mode(m.group(0))
            self.buf = self.buf[m.end():]
        keep = _partial_tag_len(self.buf)
        self._emit(out, self.mode, self.buf[:len(self.buf) - keep])
        self.buf = self.buf[len(self.buf) - keep:]
        return out

    def flush(self):
        out = []
        self._emit(out, self.mode, self.buf)
        self.buf = ""
        self.pending = {"reasoning": "", "answer": ""}
        return out

    def _emit(self, out, kind, text):
        if not text:
            return
        if not self.started[kind]:
            text = text.lstrip()
            if not text:
                return
            self.started[kind] = True
        body = text.rstrip()
        if not body:
            self.pending[kind] += text
            return
        piece = self.pending[kind] + body
        self.pending[kind] = text[len(body):]
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + piece)
        else:
            out.append((kind, piece))


def _partial_tag_len(buf):
    """Length of the longest suffix of buf that is a proper prefix of a tag (held back for the next chunk)."""
    start = buf.find("<", max(0, len(buf) - max(map(len, THINK_TAGS)) + 1))
    while start != -1:
        tail = buf[start:]
        if any(t.startswith(tail) and t != tail for t in THINK_TAGS):
            return len(tail)
        start = buf.find("<", start + 1)
    return 0
