"""Chat with a trained MiniMind model (or let it continue text, for a pretrained one).

    python eval_model.py --model_mode 1 --n_layers 16 --dim 768        # out/full_sft_768.pth
    printf '1\\nWhat is DPO?\\n' | python eval_model.py --model_mode 2  # out/rlhf_512.pth, piped
    python eval_model.py --load 1 --model_path ./MiniMind2              # a save_pretrained directory

--model_mode picks the checkpoint as MiniMind2 does: 0 = pretrain (plain text continuation, no
chat template), 1 = full_sft, 2 = rlhf, 3 = reason, read from {out_dir}/{name}_{dim}[_moe].pth;
--weight NAME reads {out_dir}/NAME_{dim}[_moe].pth (or a .pth path) instead. A reason model's
<think> part is printed after 💭 (dimmed at a terminal; --show_think 0 hides it), its answer after
🤖️ without the tags, and only the answer is kept in the history. At start the script asks for
[0] the built-in prompt list or [1] questions typed (or piped) one per line until an empty line or
end of input; --mode 0/1 answers that question up front.

Answers are produced by the model's own generate() (KV cache, temperature / top-p sampling) and
streamed by a TextIteratorStreamer from a background thread, so a multi-byte character is printed
only once all its bytes are there. --history_cnt N keeps the last N messages (a question and its
answer are two) in the prompt, as MiniMind2: an even number keeps whole exchanges.
"""
import argparse
import os
import random
import re
import sys
import threading

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from trainer.args import (add_common_args, add_model_args, build_config, check_device, load_tokenizer,
                          nonneg_float, nonneg_int, positive_float, positive_int, resolve_dtype)
from trainer.checkpoint import describe_checkpoints, load_weights, made_by, weight_path
from trainer.errors import UserError, run_main

# --model_mode -> checkpoint name; trainer.checkpoint.made_by knows the script that writes each.
MODEL_MODES = {0: "pretrain", 1: "full_sft", 2: "rlhf", 3: "reason"}

# A pretrained model cannot follow instructions yet, so it is shown beginnings to continue.
CONTINUATION_PROMPTS = [
    "人工智能是",
    "中国的首都是",
    "地球上最大的海洋是",
    "水在一个标准大气压下",
    "长城是",
    "万有引力定律",
    "The capital of France is",
    "Machine learning is a field of",
    "The sun rises in the",
]

# Chat models (SFT / DPO) get questions, in both of the corpus's languages.
CHAT_PROMPTS = [
    "请介绍一下你自己。",
    "你最擅长哪一个学科？",
    "为什么天空是蓝色的？",
    "推荐几道杭州的特色菜。",
    "请解释一下什么是大语言模型。",
    "感冒了应该注意些什么？",
    "What is the speed of light?",
    "What is DPO in language model training?",
    "Tell me briefly about the history of the United States.",
]

# The repo's tokenizer, wherever the script is run from.
REPO_TOKENIZER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model")

MENU = "[0] 自动测试\n[1] 手动输入"
USER_TAG = "👶: "
BOT_TAG = "🤖️: "
THINK_TAG = "💭: "  # --model_mode 3: the reasoning, on its own lines before the answer
REASON_MODE = 3


def get_parser():
    # 'resolve' lets --max_seq_len mean what it meant in MiniMind2's eval_model.py (the longest
    # answer) instead of the training scripts' sample length.
    p = argparse.ArgumentParser(description="Chat with a MiniMind model", conflict_handler="resolve")
    add_model_args(p)
    add_common_args(p, seed=None)
    p.add_argument("--tokenizer_path", type=str, default=None,
                   help="tokenizer directory (default: the --load 1 directory when it holds one, "
                        "else the repo's ./model)")
    p.add_argument("--seed", type=nonneg_int, default=None,
                   help="fixed seed, re-applied before every answer so answers are reproducible "
                        "(default: a fresh random seed per question)")
    p.add_argument("--model_mode", type=int, choices=sorted(MODEL_MODES), default=1,
                   help="0: pretrain (text continuation), 1: full_sft chat, 2: rlhf (DPO) chat, "
                        "3: reason chat (train_distill_reason.py; its thinking shown apart) (default 1)")
    p.add_argument("--show_think", type=int, choices=[0, 1], default=1,
                   help="--model_mode 3: 1 prints the <think> part (labelled 💭, dimmed at a terminal) "
                        "before the answer, 0 hides it (default %(default)s)")
    p.add_argument("--weight", type=str, default=None,
                   help="checkpoint name to load instead of the --model_mode one: NAME reads "
                        "{out_dir}/NAME_{dim}[_moe].pth; a path ending in .pth is read as is")
    p.add_argument("--lora_name", type=str, default=None,
                   help="merge the LoRA adapter {out_dir}/lora/NAME_{dim}[_moe].pth (train_lora.py) into the "
                        "weights: NAME on top of the --model_mode model; a path ending in .pth is read as is")
    p.add_argument("--load", type=int, choices=[0, 1], default=0,
                   help="0: native .pth weights (with --dim/--n_layers/--use_moe), "
                        "1: a transformers directory (--model_path; its config.json decides the size)")
    p.add_argument("--model_path", type=str, default="./MiniMind2",
                   help="save_pretrained directory for --load 1 (default %(default)s)")
    p.add_argument("--mode", type=int, choices=[0, 1], default=None,
                   help="0: built-in prompts, 1: read questions from stdin (default: ask)")
    p.add_argument("--stream", type=int, choices=[0, 1], default=1,
                   help="1: print the answer token by token, 0: print it whole (default 1)")
    p.add_argument("--temperature", type=nonneg_float, default=0.85,
                   help="sampling temperature; 0 = greedy (default %(default)s)")
    p.add_argument("--top_p", type=probability, default=0.85, help="nucleus sampling mass (default %(default)s)")
    p.add_argument("--max_new_tokens", "--max_seq_len", dest="max_new_tokens", type=positive_int, default=8192,
                   help="longest answer in tokens; generation also stops at <|im_end|> (default %(default)s)")
    p.add_argument("--history_cnt", type=nonneg_int, default=0,
                   help="earlier messages kept in the prompt, a question and its answer counting two "
                        "(0 = each question alone, as MiniMind2's default)")
    return p


# ---------------------------------------------------------------------------------------- model

def checkpoint_file(args) -> str:
    if args.weight and (args.weight.endswith(".pth") or os.sep in args.weight):
        return args.weight
    name = args.weight or MODEL_MODES[args.model_mode]
    return weight_path(args.out_dir, name, args.dim, args.use_moe)


def _maker(path) -> str:
    # out/full_sft_768_moe.pth -> full_sft -> train_full_sft.py
    return made_by(re.sub(r"(_\d+)?(_moe)?\.pth$", "", os.path.basename(path)))


def probability(v) -> float:
    f = positive_float(v)
    if f > 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {v!r}")
    return f


def load_model(args):
    """(model in eval mode on args.device, tokenizer) as the flags ask."""
    device = check_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    import model  # noqa: F401  (registers MiniMind with the transformers Auto classes)
    tok_path = args.tokenizer_path
    if args.load == 1:
        path = args.model_path
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise UserError(f"{os.path.join(path, 'config.json')}: not found; --model_path must be a directory "
                            "written by save_pretrained (e.g. scripts/convert_model.py), or use --load 0 with .pth weights")
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()  # a bar on stderr for a one-file load is noise in the chat
        try:
            net = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: could not load the model ({type(e).__name__}: {' '.join(str(e).split())[:200]})")
        # A converted directory usually carries its tokenizer; an explicit --tokenizer_path wins.
        if tok_path is None and os.path.isfile(os.path.join(path, "tokenizer.json")):
            tok_path = path
        tokenizer = load_tokenizer(tok_path or REPO_TOKENIZER)
    else:
        # Missing weights is the likeliest mistake, so it is reported before anything else.
        ckpt = checkpoint_file(args)
        if not os.path.exists(ckpt):
            raise UserError(f"{ckpt}: weights not found; they are written by {_maker(ckpt)} (run that first), "
                            "or pass the --out_dir/--dim/--n_layers/--use_moe/--weight it was trained with; "
                            + describe_checkpoints(os.path.dirname(ckpt) or "."))
        tokenizer = load_tokenizer(tok_path or REPO_TOKENIZER)
        net = build_model(args)
        load_weights(net, ckpt, made_by=_maker(ckpt))
        net = net.to(dtype)
    if getattr(args, "lora_name", None):
        from trainer.lora import merge_lora_flag
        net, args.lora_file = merge_lora_flag(net, args.out_dir, args.lora_name)
    if len(tokenizer) > net.config.vocab_size:
        raise UserError(f"{tok_path or REPO_TOKENIZER}: tokenizer has {len(tokenizer)} tokens but the model only "
                        f"{net.config.vocab_size}; pass the --tokenizer_path the model was trained with")
    return net.eval().to(device), tokenizer


def build_model(args):
    from model import MiniMindForCausalLM
    return MiniMindForCausalLM(build_config(args))


# ------------------------------------------------------------------------------------- prompting

def build_prompt(tokenizer, messages, model_mode) -> str:
    """The text fed to the model for the last user message in `messages`.

    A pretrained model continues raw text after <|im_start|> (as its training samples began);
    a chat model gets the chat template with the assistant turn opened.
    """
    if model_mode == 0:
        return tokenizer.bos_token + messages[-1]["content"]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def keep_history(messages, history_cnt):
    """The last `history_cnt` messages, never starting with an orphaned answer."""
    if history_cnt <= 0:
        return []
    kept = messages[-history_cnt:]
    if kept and kept[0]["role"] == "assistant":
        kept = kept[1:]
    return kept


class _StopOnEvent(StoppingCriteria):
    """StoppingCriteria that ends generate() once the event is set (Ctrl-C in the reader)."""

    def __init__(self, event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class AnswerStreamer(TextIteratorStreamer):
    """TextIteratorStreamer that also drops a character cut in half by max_new_tokens.

    The base class already holds back a partial character until its last byte arrives; only
    the final flush would print one as a replacement character.
    """

    def on_finalized_text(self, text, stream_end=False):
        super().on_finalized_text(text.rstrip("\ufffd") if stream_end else text, stream_end)


class ReasonPrinter:
    """Prints a reason model's output as it streams in: the <think> part after THINK_TAG (dimmed at
    a terminal; left out with show_think=0), then the answer after BOT_TAG, tags removed."""

    DIM, RESET = "\033[2m", "\033[0m"

    def __init__(self, out, show_think=1):
        from trainer.reasoning import ReasoningStream
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


class Chat:
    """One conversation: builds prompts (with history), generates, prints, remembers."""

    def __init__(self, model, tokenizer, args, out=None):
        self.model, self.tokenizer, self.args = model, tokenizer, args
        self.out = out
        self.messages = []  # the whole conversation so far; keep_history picks what is sent

    def prompt_for(self, question) -> str:
        msgs = keep_history(self.messages, self.args.history_cnt) + [{"role": "user", "content": question}]
        return build_prompt(self.tokenizer, msgs, self.args.model_mode)

    def _generate_kwargs(self, prompt):
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
        if a.temperature > 0:
            kw.update(do_sample=True, temperature=a.temperature, top_p=a.top_p)
        else:
            kw.update(do_sample=False)
        return kw

    def ask(self, question) -> str:
        """Answer `question`, printing it as it comes; returns the printed answer."""
        out = self.out or sys.stdout
        prompt = self.prompt_for(question)
        kw = self._generate_kwargs(prompt)
        # A fresh seed per question unless --seed: then every answer is reproducible on its own,
        # whatever was asked before.
        torch.manual_seed(self.args.seed if self.args.seed is not None else random.randrange(2 ** 63))
        reason = self.args.model_mode == REASON_MODE
        sink = ReasonPrinter(out, getattr(self.args, "show_think", 1)) if reason else out
        if not reason:
            out.write(BOT_TAG)
            out.flush()
        if self.args.stream:
            answer = self._stream(kw, sink)
        else:
            with torch.inference_mode():
                ids = self.model.generate(**kw)
            answer = self.tokenizer.decode(ids[0, kw["input_ids"].shape[1]:], skip_special_tokens=True)
            answer = answer.rstrip("\ufffd")
            sink.write(answer)
        self.raw = answer  # the whole generated text (a reason model's with its tags)
        if reason:
            # the answer alone goes into the history, as DeepSeek advises for reasoning models
            self.reasoning, answer = sink.close()
        out.write("\n\n")
        out.flush()
        self.messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return answer

    def _stream(self, kw, out) -> str:
        streamer = AnswerStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop = threading.Event()
        failure = []

        def work():
            try:
                with torch.inference_mode():
                    self.model.generate(**kw, streamer=streamer,
                                        stopping_criteria=StoppingCriteriaList([_StopOnEvent(stop)]))
            except BaseException as e:  # re-raised in the reader, which would otherwise wait forever
                failure.append(e)
                streamer.end()

        # daemon: a Ctrl-C must not wait for a long answer to finish in the background
        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        pieces = []
        try:
            for piece in streamer:
                out.write(piece)
                out.flush()
                pieces.append(piece)
        finally:
            stop.set()
            worker.join(timeout=5)
        if failure:
            raise failure[0]
        return "".join(pieces)


# ------------------------------------------------------------------------------------------- I/O

def read_line(prompt=""):
    """One line from stdin without its newline; EOFError at end of input.

    At a terminal input() shows the prompt and the typed text; from a pipe nothing would show,
    so the line is echoed after the prompt to keep the transcript readable.
    """
    if sys.stdin.isatty():
        return input(prompt)
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    line = line.rstrip("\r\n")
    if prompt:
        sys.stdout.write(prompt + line + "\n")
        sys.stdout.flush()
    return line


def choose_mode(args) -> int:
    if args.mode is not None:
        return args.mode
    print(MENU, flush=True)
    choice = read_line().strip()
    if choice not in ("0", "1"):
        raise UserError(f"menu choice {choice!r}: expected 0 (auto test) or 1 (manual input); "
                        "or pass --mode 0/1")
    return int(choice)


def questions(mode, model_mode):
    """The built-in prompts (announced as if typed), or stdin lines until an empty one or EOF."""
    if mode == 0:
        for q in (CONTINUATION_PROMPTS if model_mode == 0 else CHAT_PROMPTS):
            print(USER_TAG + q, flush=True)
            yield q
        return
    while True:
        try:
            q = read_line(USER_TAG)
        except EOFError:
            if sys.stdin.isatty():
                print()  # leave the shell prompt on a line of its own after Ctrl-D
            return
        if not q.strip():
            return
        yield q.strip()


def main(argv=None):
    p = get_parser()
    args = p.parse_args(argv)
    net, tokenizer = load_model(args)
    n_params = sum(t.numel() for t in net.parameters())
    print(f"MiniMind model: {n_params / 1e6:.2f}M parameters on {args.device}", flush=True)
    if args.lora_name:
        print(f"LoRA adapter: {args.lora_file} (merged into the weights)", flush=True)
    try:
        mode = choose_mode(args)
    except EOFError:
        return 0  # nothing piped in: nothing to do
    chat = Chat(net, tokenizer, args)
    for q in questions(mode, args.model_mode):
        chat.ask(q)
    return 0


def cli(argv=None):
    """main() with MiniMind's manners: user errors one line + exit 2, Ctrl-C quiet (130)."""
    try:
        code = run_main(main, argv)
    except BrokenPipeError:
        # `| head` closed the pipe: stop quietly (and keep Python from complaining at exit)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    except SystemExit as e:
        if e.code == 130:
            print(flush=True)  # end the half-printed line
        raise
    return code


if __name__ == "__main__":
    sys.exit(cli())
