"""MiniMind's chat page, in Streamlit (as MiniMind2's scripts/web_demo.py).

    streamlit run scripts/web_demo.py                                 # the models in ./out
    streamlit run scripts/web_demo.py -- --model_path ../MiniMind2    # and a transformers folder
    streamlit run scripts/web_demo.py -- --out_dir out/demo --device cpu

The page's own flags come after `--` (Streamlit's, such as --server.port, before it). The sidebar
lists every .pth in --out_dir and in its direct subfolders (out/demo, where scripts/demo.py writes),
with the size read from the weights (`full_sft_512.pth (512×8)`): the chat models that answer ordinary
questions best first (DPO, SFT, distilled, then reason and pretrained), the transformers folders given
with --model_path before them. It opens the first one (--open NAME: another). Then: the LoRA
adapters of {out_dir}/lora and of the model's own folder that fit the chosen model, a Thinking
switch (off: answer without thinking first), MiniMind's four sliders (history, max new
tokens, top_p, temperature) with its ranges and defaults, a seed (empty: a new random seed per
reply, shown under the reply) and "Clear chat".

Each reply is generated the way eval_model.py generates one (model/chat.py's Chat: prompt, history, sampling,
a streamer that never cuts a multi-byte character), so a reply with seed S is what
`eval_model.py --seed S` answers with the same settings. A reason model's <think> text sits in a
collapsible block, open while it streams; answers are rendered as Markdown, HTML in them is shown
as text. The model is loaded once per process (st.cache_resource) and switching models frees the
old one. Mistakes (a broken checkpoint, an adapter of another size) are one message on the page.

Tools (a sidebar multiselect of model/tools.py's registry, none at first): their signatures go into the
prompt, and each reply runs the tool loop eval_model.py --tools runs (model/agent.py: the calls run, their
results fed back, at most 3 model turns); each call and its result sit in a collapsible block, as on
MiniMind's page, and later questions carry them in their history.
"""
import argparse
import gc
import json
import os
import random
import re
import sys
import threading
import traceback
import uuid
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import streamlit as st  # noqa: E402
import torch  # noqa: E402
from streamlit import runtime as st_runtime  # noqa: E402

if not st_runtime.exists():  # imported, or run without `streamlit run`: its "no runtime" warnings are noise
    from streamlit import logger as st_logger
    st_logger.set_log_level("error")

from model import lora as lora_lib  # noqa: E402
from model.agent import DEFAULT_MAX_TURNS, ToolCallStream, ToolLoop, split_reply  # noqa: E402
from model.chat import Chat, keep_history  # noqa: E402
from model.loading import (REASON_MODE, add_rope_scaling_arg, load_dir_model, load_pth, model_size,  # noqa: E402
                           tokenizer_for)
from model.reasoning import ReasoningStream, split_reasoning  # noqa: E402
from model.tools import ToolRegistry, tool_response_text  # noqa: E402
from trainer.args import add_device_args, check_device, resolve_dtype  # noqa: E402
from trainer.checkpoint import describe_state_dict, read_state_dict  # noqa: E402
from trainer.errors import UserError, one_line, run_main  # noqa: E402


# Checkpoint names, least to most trained (MiniMind2's names).
STAGE_ORDER = ["pretrain", "full_sft", "full_dist", "rlhf", "dpo", "reason"]  # dpo: MiniMind 2025-10's name for rlhf
# The order the page lists them in: the chat models that answer ordinary questions best first (a
# reason model thinks first and is trained on chains of facts, a pretrained one only continues text).
# --open NAME puts another first.
LIST_ORDER = ["rlhf", "dpo", "full_sft", "full_dist", "reason", "pretrain"]
# MiniMind2's sliders: label, (min, max, default, step)
HISTORY = ("Number of Historical Dialogues", dict(min_value=0, max_value=6, value=0, step=2))
MAX_NEW_TOKENS = ("Max New Tokens", dict(min_value=256, max_value=8192, value=8192, step=1))
TOP_P = ("Top-P", dict(min_value=0.8, max_value=0.99, value=0.85, step=0.01))
TEMPERATURE = ("Temperature", dict(min_value=0.6, max_value=1.2, value=0.85, step=0.01))
THINKING, THOUGHT = "Thinking…", "Reasoning (click to expand)"
CALLED, NOT_RUN = "Tool call", "Tool call not run"  # the blocks' labels: "Tool call: name({...})"
NO_LORA = "none"


# ------------------------------------------------------------------------------------------ flags

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(f"{self.prog}: {one_line(message)} (the page's flags go after `--`: "
                        "streamlit run scripts/web_demo.py -- --out_dir out)")


def get_parser():
    p = _Parser(prog="scripts/web_demo.py", description="MiniMind's chat page: streamlit run scripts/web_demo.py -- [flags]")
    p.add_argument("--out_dir", default="out",
                   help="where the .pth weights are listed from (and its subfolders, e.g. out/demo; "
                        "LoRA adapters from {out_dir}/lora) (default %(default)s)")
    p.add_argument("--model_path", action="append", default=[], metavar="DIR",
                   help="a transformers folder (save_pretrained / scripts/convert_model.py) to list first; repeatable")
    p.add_argument("--tokenizer_path", default=None,
                   help="tokenizer directory (default: a folder's own, else the repo's ./model)")
    add_rope_scaling_arg(p)
    p.add_argument("--open", default=None, metavar="NAME",
                   help="the model to open first: a checkpoint name (reason_512), file or path (default: the "
                        "DPO model, else SFT, distilled, reason, pretrained)")
    add_device_args(p)
    return p


# -------------------------------------------------------------------------------------- discovery

@dataclass(frozen=True)
class Entry:
    """One model the page can load."""
    path: str
    kind: str          # "pth" or "folder"
    label: str
    stage: str         # a STAGE_ORDER name, "folder" or "other"
    dim: int = 0
    n_layers: int = 0
    use_moe: bool = False
    vocab_size: int = 0
    error: str = ""    # why it cannot be loaded (shown when it is chosen)
    mtime: float = 0.0
    family: str = "minimind2"  # a .pth's model family, read from its tensors (MiniMind-3's have q/k norms)


def stage_of(name: str) -> str:
    for s in reversed(STAGE_ORDER):
        if name == s or name.startswith(s + "_"):
            return s
    return "other"


def size_label(dim, n_layers, use_moe, family="minimind2") -> str:
    return f"{dim}×{n_layers}" + (", MoE" if use_moe else "") + (", MiniMind-3" if family == "minimind3" else "")


@st.cache_data(show_spinner=False, max_entries=512)
def _pth_info(path, mtime, size):
    """(architecture dict, "") or ({}, one-line error) for a weights file; cached by mtime and size."""
    try:
        info = describe_state_dict(read_state_dict(path))
    except UserError as e:
        return {}, str(e)
    if not info.get("dim") or not info.get("n_layers"):
        return {}, f"{path}: holds no MiniMind model (no embedding or layer weights); choose another file"
    return info, ""


def find_weights(out_dir):
    """.pth weights in out_dir and its direct subfolders (not resume files, temp files or adapters)."""
    if not os.path.isdir(out_dir):
        return []
    dirs = [out_dir] + sorted(os.path.join(out_dir, d) for d in os.listdir(out_dir)
                              if d != "lora" and not d.startswith(".") and os.path.isdir(os.path.join(out_dir, d)))
    found = []
    for d in dirs:
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if n.endswith(".pth") and not n.endswith("_resume.pth") and not n.startswith(".") and os.path.isfile(p):
                found.append(p)
    return found


def pth_entry(path, out_dir) -> Entry:
    s = os.stat(path)
    info, err = _pth_info(os.path.abspath(path), s.st_mtime, s.st_size)
    rel = os.path.relpath(path, out_dir)
    stage = stage_of(os.path.basename(path)[:-4])
    if err:
        return Entry(path, "pth", f"{rel} (unreadable)", stage, error=err, mtime=s.st_mtime)
    family = info.get("model_family", "minimind2")
    return Entry(path, "pth", f"{rel} ({size_label(info['dim'], info['n_layers'], info['use_moe'], family)})", stage,
                 info["dim"], info["n_layers"], info["use_moe"], info.get("vocab_size", 0), mtime=s.st_mtime,
                 family=family)


def folder_entry(path) -> Entry:
    name = os.path.basename(os.path.normpath(path)) or path
    # MiniMind names its reasoning models MiniMind2-R1, MiniMind2-Small-R1
    stage = "reason" if re.search(r"(^|[-_])(r1|reason)([-_]|$)", name, re.I) else "folder"
    cfg_path = os.path.join(path, "config.json")
    try:
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        dim, n_layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
    except FileNotFoundError:
        err = (f"{cfg_path}: not found; --model_path must be a folder written by save_pretrained or "
               "scripts/convert_model.py")
        return Entry(path, "folder", f"{name} (not a model folder)", stage, error=err)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return Entry(path, "folder", f"{name} (unreadable)", stage,
                     error=f"{cfg_path}: not a model config ({type(e).__name__}: {one_line(e)[:160]})")
    moe = bool(cfg.get("use_moe"))
    return Entry(path, "folder", f"{name} ({size_label(dim, n_layers, moe)}, transformers)", stage, dim, n_layers, moe,
                 int(cfg.get("vocab_size") or 0), mtime=os.path.getmtime(cfg_path))


def discover(out_dir, model_paths, first=None):
    """Folders first (in the order given), then the .pth files by LIST_ORDER, newest first; `first`
    (a checkpoint name such as reason_128, a file name or a path) moves that one to the top."""
    rank = {s: i for i, s in enumerate(LIST_ORDER)}
    pths = sorted((pth_entry(p, out_dir) for p in find_weights(out_dir)),
                  key=lambda e: (rank.get(e.stage, len(rank)), -e.mtime, e.label))
    entries = [folder_entry(p) for p in model_paths] + pths
    if first:
        picked = [e for e in entries if first in (e.path, os.path.basename(e.path), os.path.basename(e.path)[:-4],
                                                  os.path.normpath(e.path))]
        if not picked:
            raise UserError(f"--open {first}: no such model here; the page lists "
                            + (", ".join(e.label for e in entries) or "none"))
        entries = picked[:1] + [e for e in entries if e is not picked[0]]
    return entries


def fitting_adapters(out_dir, entry):
    """[(label, adapter dict)] of the adapters made for this model's size, in {out_dir}/lora and in the
    lora/ folder beside the model (out/demo/lora for out/demo's models)."""
    if not entry.dim:
        return []
    folders = [out_dir] + ([os.path.dirname(entry.path)] if entry.kind == "pth" else [])
    found = {}
    for d in dict.fromkeys(os.path.abspath(f) for f in folders):
        for a in lora_lib.list_adapters(d):
            found.setdefault(os.path.abspath(a["path"]), a)
    fits = [a for a in found.values()
            if a.get("dim") == entry.dim and bool(a.get("use_moe", entry.use_moe)) == entry.use_moe]
    return [(f"{a['name']} (rank {a['rank'] if a.get('rank') is not None else '?, unreadable'})", a) for a in fits]


def model_mode(entry) -> int:
    """eval_model.py's --model_mode for this model: 0 continues text, the others chat."""
    if entry.stage == "pretrain":
        return 0
    if entry.stage == "reason":
        return REASON_MODE
    return 1


# ---------------------------------------------------------------------------------------- loading

def load_entry(entry, adapter, args):
    """(model in eval mode on the device, tokenizer); UserError for anything the user can fix."""
    if entry.error:
        raise UserError(entry.error)
    device = check_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    if entry.kind == "folder":
        net = load_dir_model(entry.path, rope_scaling=args.inference_rope_scaling)
    else:
        net = load_pth(entry.path, model_size(entry.dim, entry.n_layers, entry.use_moe, entry.family),
                       vocab_size=entry.vocab_size,
                       rope_scaling=args.inference_rope_scaling)
    tokenizer = tokenizer_for(net, args.tokenizer_path, entry.path if entry.kind == "folder" else None,
                              fix="start the page with the --tokenizer_path the model was trained with")
    if adapter is not None:
        net = lora_lib.apply_lora(net, adapter["path"])
    return net.to(device=device, dtype=dtype).eval(), tokenizer


@st.cache_resource(show_spinner=False)
def model_slot():
    """The process's one loaded model, shared by every session: key, model, tokenizer, locks."""
    return {"key": None, "model": None, "tokenizer": None, "load": threading.Lock(), "generate": threading.Lock()}


def get_model(entry, adapter, args):
    slot = model_slot()
    key = (entry.kind, os.path.abspath(entry.path), entry.mtime, adapter and adapter["path"], args.device, args.dtype)
    with slot["load"]:
        if slot["key"] != key:
            # the old model goes before the new one is built: never two in memory
            slot.update(key=None, model=None, tokenizer=None)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            with st.spinner(f"Loading {entry.label}…"):
                try:
                    model, tokenizer = load_entry(entry, adapter, args)
                except UserError:
                    raise
                except Exception as e:  # peft or torch refusing the files: still one line on the page
                    raise UserError(f"{entry.path}: could not load it ({type(e).__name__}: {one_line(e)[:300]})")
            slot.update(key=key, model=model, tokenizer=tokenizer)
        return slot["model"], slot["tokenizer"]


# ----------------------------------------------------------------------------------------- answers

def draw_answer(reasoning, answer, thinking=False):
    """A reply: the reasoning in an expander (open while it streams), then the answer as Markdown."""
    if reasoning is not None:
        with st.expander(THINKING if thinking else THOUGHT, expanded=thinking):
            st.markdown(reasoning or "…")
    if answer or reasoning is None:
        st.markdown(answer)


def draw_call(call, ran=True):
    """One tool call in a collapsed block: its arguments and its result (or its error)."""
    args = json.dumps(call["arguments"], ensure_ascii=False)
    label = f"{CALLED if ran else NOT_RUN}: {call['name']}({args})" if call["name"] else f"{CALLED}: (malformed)"
    failed = ran and "error" in call["result"]
    with st.expander(label[:120] + (" ❌" if failed else " ✅" if ran else ""), expanded=False):
        st.code(call["block"] if not call["name"] else json.dumps(call["arguments"], ensure_ascii=False, indent=1),
                language="json")
        if ran:
            st.caption("error" if failed else "result")
            st.code(json.dumps(call["result"], ensure_ascii=False, indent=1), language="json")
        else:
            st.caption(f"not run: {DEFAULT_MAX_TURNS} model turns per question at most")


def draw_steps(steps):
    """The turns of a reply that called tools: what each said, then its calls."""
    for step in steps:
        if step["content"]:
            draw_answer(*split_reasoning(step["content"]))
        for call in step["calls"]:
            draw_call(call)


def call_dict(call):
    return {"id": call.id, "name": call.name, "arguments": call.arguments, "result": call.result, "block": call.block}


class PageSink:
    """The `out` model/chat.py's Chat streams a reply into: keeps it, splits off the thinking, redraws.
    With tools, a reply is several turns: the <tool_call> blocks are held back (model/agent.py's
    ToolCallStream) and the turns that called tools are drawn above the one streaming."""

    def __init__(self, slot, pending, tools=False):
        self.slot, self.pending, self.tools = slot, pending, tools
        pending.setdefault("steps", [])
        pending.setdefault("calls", [])
        self.begin_turn(0)

    def begin_turn(self, turn):
        if turn and self.pending["calls"]:  # the turn before called tools: it becomes a step
            close_step(self.pending)
        self.split = ReasoningStream()
        self.calls = ToolCallStream() if self.tools else None
        self.reasoning, self.answer = None, ""

    def write(self, piece):
        # kept in the session first: a Stop (a rerun) interrupts the redraw below
        self.pending["text"] += piece
        self._show(self.calls.feed(piece) if self.calls else piece)

    def _show(self, piece):
        for kind, text in self.split.feed(piece):
            if kind == "reasoning":
                self.reasoning = (self.reasoning or "") + text
            else:
                self.answer += text
        if self.reasoning is None and self.split.mode == "reasoning":
            self.reasoning = ""  # <think> has opened, nothing inside yet
        self.redraw()

    def redraw(self):
        with self.slot.container():
            draw_steps(self.pending["steps"])
            draw_answer(self.reasoning, self.answer, thinking=self.split.mode == "reasoning")
            for call in self.pending["calls"]:
                draw_call(call)

    def call_done(self, call):
        self.pending["calls"].append(call_dict(call))
        self.redraw()

    def flush(self):
        pass


def close_step(p):
    """The pending turn that called tools (its text, its calls run) becomes a step of the reply."""
    p["steps"].append({"text": p["text"], "content": split_reply(p["text"])[0], "calls": p["calls"]})
    p["text"], p["calls"] = "", []


def generate(model, tokenizer, mode, history, question, settings, seed, sink, tools=None):
    """The reply eval_model.py gives to `question` after `history` with these settings and seed (and these
    tools: a ToolLoop, whose calls are run and drawn; returns its LoopResult then)."""
    gen = argparse.Namespace(model_mode=mode, history_cnt=settings["history"], max_new_tokens=settings["max_new_tokens"],
                             temperature=settings["temperature"], top_p=settings["top_p"], seed=seed, stream=1,
                             enable_thinking=settings.get("enable_thinking"))
    chat = Chat(model, tokenizer, gen, tools=tools)
    chat.messages = history
    if tools is None:
        prompt = chat.prompt_for(question)
        torch.manual_seed(seed)  # as Chat.ask: seeded right before generate()
        return chat.stream_reply(prompt, sink)
    messages = keep_history(history, settings["history"]) + [{"role": "user", "content": question}]
    torch.manual_seed(seed)  # as Chat.ask: once per question, before the first turn

    def turn(prompt, i):
        sink.begin_turn(i)
        return chat.stream_reply(prompt, sink)
    return chat.converse(messages, turn, sink.call_done)


def sent_history(messages):
    """The conversation as the model is sent it: a reply's tool turns (as generated) and their results."""
    out = []
    for m in messages:
        for step in m.get("steps", []):
            out.append({"role": "assistant", "content": step["text"]})
            out += [{"role": "tool", "tool_call_id": c["id"], "content": tool_response_text(c["result"])}
                    for c in step["calls"]]
        out.append({"role": m["role"], "content": m.get("sent", m["content"])})
    return out


# --------------------------------------------------------------------------------------- the chat

def _new_id():
    return uuid.uuid4().hex[:10]


def delete_exchange(msg_id):
    """A question and its answer go together (deleting either deletes both)."""
    msgs = st.session_state.messages
    i = next((k for k, m in enumerate(msgs) if m["id"] == msg_id), None)
    if i is None:
        return
    lo, hi = (i, i + 1) if msgs[i]["role"] == "user" else (i - 1, i)
    lo = lo if lo >= 0 and msgs[lo]["role"] == "user" else i
    hi = hi if hi < len(msgs) and msgs[hi]["role"] == "assistant" else i
    del msgs[lo:hi + 1]
    if st.session_state.get("pending") and not any(m["id"] == st.session_state.pending["question"] for m in msgs):
        st.session_state.pending = None


def clear_chat():
    st.session_state.messages = []
    st.session_state.pending = None


def commit_pending(stopped, unrun=()):
    """The reply being generated becomes a message (a stopped one keeps what it had); `unrun`: calls the
    turn limit left unrun."""
    p = st.session_state.get("pending")
    st.session_state.pending = None
    msgs = st.session_state.messages
    if p and msgs and msgs[-1]["id"] == p["question"]:
        if p.get("calls"):  # stopped after calls ran, before the next turn began
            close_step(p)
        # later prompts get a reason model's answer without its thinking, as eval_model.py's history
        sent = split_reasoning(p["text"])[1] if p["mode"] == 3 else p["text"]
        extra = {"steps": p["steps"], "unrun": list(unrun)} if p.get("tools") else {}
        msgs.append({"id": p["id"], "role": "assistant", "content": p["text"], "sent": sent, "seed": p["seed"],
                     "stopped": stopped, **extra})


def parse_seed(text):
    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def sidebar(args, entries):
    """The settings column; returns (entry, adapter or None, settings dict, seed or None)."""
    sb = st.sidebar
    sb.title("Model settings")
    labels = [e.label for e in entries]
    label = sb.selectbox("Model", labels, index=0, key="model",
                         help=f"the .pth files of {args.out_dir}/ and its subfolders, the best chat models first")
    entry = entries[labels.index(label)]
    adapters = []
    try:
        adapters = fitting_adapters(args.out_dir, entry)
    except UserError as e:
        sb.warning(one_line(e))
    lora_help = f"adapters in {args.out_dir}/lora made for this model's size"
    choice = sb.selectbox("LoRA", [NO_LORA] + [a for a, _ in adapters], key="lora", help=lora_help)
    adapter = dict(adapters).get(choice)
    settings = {
        "history": sb.slider(HISTORY[0], key="history", help="earlier messages sent with each question "
                             "(a question and its answer count two)", **HISTORY[1]),
        "max_new_tokens": sb.slider(MAX_NEW_TOKENS[0], key="max_new_tokens", **MAX_NEW_TOKENS[1]),
        "top_p": sb.slider(TOP_P[0], key="top_p", **TOP_P[1]),
        "temperature": sb.slider(TEMPERATURE[0], key="temperature", **TEMPERATURE[1]),
        # adaptive thinking: off opens each answer with an empty think block (MiniMind's 2025-10
        # template); on leaves the prompt as it always was
        "enable_thinking": None if sb.toggle("Thinking", value=True, key="thinking",
                                             help="off: the model is asked to answer without thinking first "
                                                  "(eval_model.py --enable_thinking 0)") else False,
    }
    seed_text = sb.text_input("Seed", key="seed", placeholder="random per reply",
                              help="a whole number makes replies reproducible: eval_model.py --seed N "
                                   "gives the same answer with the same settings")
    try:
        seed = parse_seed(seed_text)
    except ValueError:
        sb.error(f"Seed {seed_text.strip()!r}: expected a whole number (0 or more), or nothing for a random one")
        seed = "invalid"
    settings["tools"] = sb.multiselect("Tools", list(tool_registry().names()), key="tools", placeholder="none",
                                       help="tools the model may call (model/tools.py): each call is run and its "
                                            "result fed back, as eval_model.py --tools does")
    sb.button("Clear chat", key="clear", on_click=clear_chat)
    return entry, adapter, settings, seed


@st.cache_resource(show_spinner=False)
def tool_registry():
    return ToolRegistry()


def show_history(messages):
    for m in messages:
        with st.chat_message(m["role"]):
            if m["role"] == "user":
                st.markdown(m["content"])
            else:
                draw_steps(m.get("steps", []))
                draw_answer(*split_reasoning(split_reply(m["content"])[0] if "steps" in m else m["content"]))
                for call in m.get("unrun", []):
                    draw_call(call, ran=False)
                note = f"seed {m['seed']}" + (" · stopped" if m.get("stopped") else "")
                st.caption(note)
            st.button("", icon=":material/delete:", key=f"del_{m['id']}", help="delete this question and its answer",
                      type="tertiary", on_click=delete_exchange, args=(m["id"],))


def page(args):
    st.session_state.setdefault("messages", [])
    st.session_state.setdefault("pending", None)
    entries = discover(args.out_dir, args.model_path, args.open)
    st.markdown("### Hi, I'm MiniMind")
    if not entries:
        st.info(f"No model to chat with: {args.out_dir}/ holds no .pth weights yet — train one with "
                "`python train_full_sft.py` (or a small one with `python scripts/demo.py`), or pass a "
                "transformers folder with `streamlit run scripts/web_demo.py -- --model_path DIR`.")
        return
    entry, adapter, settings, seed = sidebar(args, entries)
    st.caption(f"{entry.label}{' + LoRA ' + adapter['name'] if adapter else ''} · "
               "内容完全由AI生成，请务必仔细甄别 · Content AI-generated, please discern with care")
    model, tokenizer = get_model(entry, adapter, args)
    if st.session_state.pending is not None:  # the last run was stopped mid-reply
        commit_pending(stopped=True)
    show_history(st.session_state.messages)

    question = st.chat_input("Send a message to MiniMind", key="question")
    if not question or seed == "invalid":
        return
    seed = seed if seed is not None else random.randrange(2 ** 32)
    history = sent_history(st.session_state.messages)
    q = {"id": _new_id(), "role": "user", "content": question}
    st.session_state.messages.append(q)
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        slot = st.empty()
        st.button("Stop", icon=":material/stop_circle:", key="stop", help="end this reply here (what it has so far is kept)")
        mode = model_mode(entry)
        tools = ToolLoop(tool_registry(), settings["tools"], DEFAULT_MAX_TURNS) if settings["tools"] else None
        st.session_state.pending = pending = {"id": _new_id(), "question": q["id"], "seed": seed, "text": "", "mode": mode,
                                              "tools": bool(tools)}
        sink = PageSink(slot, pending, tools=bool(tools))
        try:
            with model_slot()["generate"]:  # one reply at a time: the seed then reproduces it exactly
                result = generate(model, tokenizer, mode, history, question, settings, seed, sink, tools)
        except UserError:
            st.session_state.messages.remove(q)
            st.session_state.pending = None
            raise
    commit_pending(stopped=False, unrun=[call_dict(c) for c in result.turns[-1].calls] if tools and result.unfinished
                   else ())
    st.rerun()  # redraw it as a finished message, with its delete button, its thinking folded


def run_page():
    try:
        args, err = get_parser().parse_args(sys.argv[1:]), None
    except UserError as e:
        args, err = None, str(e)
    st.set_page_config(page_title="MiniMind", page_icon="🤖", initial_sidebar_state="expanded")
    try:
        if err:
            raise UserError(err)
        page(args)
    except UserError as e:
        st.error(one_line(e))
    except Exception as e:  # our bug: the traceback goes to the terminal, the page gets one line
        traceback.print_exc()
        st.error(f"Internal error: {type(e).__name__}: {one_line(e)[:300]}")


def _not_under_streamlit(argv=None):
    get_parser().parse_args(argv)  # --help and flag errors work from the shell too
    raise UserError("scripts/web_demo.py is a Streamlit page: start it with `streamlit run scripts/web_demo.py` "
                    "(its own flags after `--`)")


if __name__ == "__main__":
    if st_runtime.exists():
        run_page()
    else:
        run_main(_not_under_streamlit)
