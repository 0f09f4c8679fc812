"""The terminal chat: flags, the menu, the question loop; eval_model.py and eval_llm.py are its two names.

eval_model.py is MiniMind2's (--model_mode picks the checkpoint), eval_llm.py MiniMind's 2025-10 one
(--weight picks it, with its --load_from, --lora_weight, --historys, --show_speed); both build the same
parser here (get_parser(later_names=...)) and run the same main(). The model is loaded by
model/loading.py and answers through model/chat.py's Chat (with --tools, its tool loop: model/agent.py).
"""
import argparse
import os
import sys
import time

from model.agent import DEFAULT_MAX_TURNS, ToolLoop
from model.chat import USER_TAG, Chat
from model.loading import MODEL_MODES, add_rope_scaling_arg, load_model
from trainer.args import (add_common_args, add_model_args, nonneg_float, nonneg_int, plain_sizes, positive_float,
                          positive_int)
from trainer.errors import UserError, run_main

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

# With --tools: MiniMind's tool-call test questions (scripts/eval_toolcall.py) that its six tools answer.
TOOL_PROMPTS = [
    "帮我算一下 256 乘以 37 等于多少",
    "现在几点了？",
    "帮我把100公里换算成英里",
    "北京今天天气怎么样？",
    "查一下美元兑人民币汇率",
    "把'你好世界'翻译成英文",
    "What is the weather in Tokyo? Also convert 30 celsius to fahrenheit.",
]

MENU = "[0] 自动测试\n[1] 手动输入"


def get_parser(prog=None, later_names=False):
    # 'resolve' lets --max_seq_len mean what it meant in MiniMind2's eval_model.py (the longest
    # answer) instead of the training scripts' sample length.
    p = argparse.ArgumentParser(prog=prog, description="Chat with a MiniMind model", conflict_handler="resolve")
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
    p.add_argument("--enable_thinking", "--open_thinking", dest="enable_thinking", type=int, choices=[0, 1],
                   default=None,
                   help="adaptive thinking (MiniMind's 2025-10 template; --open_thinking is MiniMind-3's name): 0 opens "
                        "the answer with an empty <think> block so the model answers directly, 1 lets it think "
                        "(default: the template's own prompt, unchanged)")
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
    add_rope_scaling_arg(p)
    p.add_argument("--mode", type=int, choices=[0, 1], default=None,
                   help="0: built-in prompts, 1: read questions from stdin (default: ask)")
    p.add_argument("--stream", type=int, choices=[0, 1], default=1,
                   help="1: print the answer token by token, 0: print it whole (default 1)")
    p.add_argument("--temperature", type=nonneg_float, default=0.85,
                   help="sampling temperature; 0 = greedy (default %(default)s)")
    p.add_argument("--top_p", type=probability, default=0.85, help="nucleus sampling mass (default %(default)s)")
    p.add_argument("--max_new_tokens", "--max_seq_len", dest="max_new_tokens", type=positive_int, default=8192,
                   help="longest answer in tokens; generation also stops at <|im_end|> (default %(default)s)")
    p.add_argument(*(("--historys", "--history_cnt") if later_names else ("--history_cnt",)), dest="history_cnt",
                   type=nonneg_int, default=0,
                   help="earlier messages kept in the prompt, a question and its answer counting two "
                        "(0 = each question alone, as MiniMind2's default)")
    p.add_argument("--tools", type=str, default=None,
                   help="let the model call tools: all, or a comma-separated list of "
                        "calculate_math, unit_converter, get_current_weather, get_current_time, get_exchange_rate, "
                        "translate_text, or path/to/file.py:function (a function marked with model.tools' @tool); "
                        "their signatures go into the prompt, each call is run and its result fed back "
                        "(default: none)")
    p.add_argument("--max_turns", type=positive_int, default=DEFAULT_MAX_TURNS,
                   help="with --tools: most model turns per question, calls and answer together; calls in the "
                        "last one are shown, not run (default %(default)s, as MiniMind's agent rollout)")
    if later_names:
        add_later_names(p)
    return p


# MiniMind's 2025-10 eval_llm.py: --weight picks the model (and with it the chat's kind), a fixed seed
# before every answer (its setup_seed(2026)), and these flags.
LATER_SEED = 2026


def add_later_names(p):
    p.set_defaults(weight="full_sft", seed=LATER_SEED, model_mode=None)
    helps = {"weight": "checkpoint name: {out_dir}/NAME_{dim}[_moe].pth, or a .pth path; it also picks the chat: "
                       "pretrain continues text, reason (and grpo, ppo_actor, spo, agent) may think first, the others "
                       "chat (default full_sft)",
             "seed": f"seed re-applied before every answer (default {LATER_SEED}, as MiniMind's eval_llm.py)",
             "model_mode": "0-3 as eval_model.py's, overriding what --weight implies (default: from --weight)"}
    for action in p._actions:
        if action.dest in helps:
            action.help = helps[action.dest]
    p.add_argument("--load_from", type=str, default="model",
                   help="'model' (or a path ending in model): the .pth weights {out_dir}/{weight}_{dim}[_moe].pth "
                        "with that folder's tokenizer; any other path: a transformers folder (= --load 1 "
                        "--model_path PATH) (default %(default)s)")
    p.add_argument("--lora_weight", type=str, default="None",
                   help="a LoRA adapter name in {out_dir}/lora/ (= --lora_name); None = no adapter (default %(default)s)")
    p.add_argument("--show_speed", type=int, choices=[0, 1], default=1,
                   help="print each answer's decoding speed in tokens/s after it (default %(default)s)")


def later_mode(weight):
    """eval_llm.py's chat kind from --weight: pretrain continues text; reason and the RL models made from it
    may think (shown apart; an answer without tags prints as it is); the rest chat."""
    name = os.path.basename(weight or "").removesuffix(".pth")
    for mode, prefix in ((0, "pretrain"), (3, "reason"), (3, "grpo"), (3, "ppo_actor"), (3, "spo"), (3, "agent"),
                         (2, "rlhf"), (2, "dpo")):
        if name == prefix or name.startswith(prefix + "_"):
            return mode
    return 1


def apply_later_names(args):
    if os.path.basename(os.path.normpath(args.load_from)) != "model":
        args.load, args.model_path = 1, args.load_from
    elif args.tokenizer_path is None:
        args.tokenizer_path = args.load_from
    if args.lora_weight not in (None, "", "None"):
        args.lora_name = args.lora_weight
    if args.model_mode is None:
        args.model_mode = later_mode(args.weight)
    if args.load == 1:
        args.weight = None  # the folder is the model
    return args


def probability(v) -> float:
    f = positive_float(v)
    if f > 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {v!r}")
    return f


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


def questions(mode, model_mode, tools=False):
    """The built-in prompts (announced as if typed), or stdin lines until an empty one or EOF."""
    if mode == 0:
        for q in (CONTINUATION_PROMPTS if model_mode == 0 else TOOL_PROMPTS if tools else CHAT_PROMPTS):
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


def main(argv=None, prog=None, later_names=False):
    p = get_parser(prog, later_names)
    args = plain_sizes(p.parse_args(argv))
    if later_names:
        args = apply_later_names(args)
    tools = None
    if args.tools is not None:  # an unknown name or a broken file is said before the model loads
        if args.model_mode == 0:
            raise UserError("--tools needs a chat model: a pretrained one (--model_mode 0) has no chat template")
        tools = ToolLoop.from_spec(args.tools, args.max_turns)
    net, tokenizer = load_model(args)
    n_params = sum(t.numel() for t in net.parameters())
    print(f"MiniMind model: {n_params / 1e6:.2f}M parameters on {args.device}", flush=True)
    rope = getattr(net.config, "rope_parameters", None) or {}
    if rope.get("rope_type") == "yarn":
        print(f"YaRN rope scaling: factor {rope.get('factor')} from {rope.get('original_max_position_embeddings')} "
              "trained positions", flush=True)
    if args.lora_name:
        print(f"LoRA adapter: {args.lora_file} (merged into the weights)", flush=True)
    try:
        mode = choose_mode(args)
    except EOFError:
        return 0  # nothing piped in: nothing to do
    if tools:
        print(f"tools: {', '.join(tools.names)} (at most {tools.max_turns} model turns per question)", flush=True)
    chat = Chat(net, tokenizer, args, tools=tools)
    for q in questions(mode, args.model_mode, tools is not None):
        start = time.perf_counter()
        chat.ask(q)
        if getattr(args, "show_speed", 0):
            n = len(tokenizer(chat.raw, add_special_tokens=False)["input_ids"])
            print(f"[Speed]: {n / max(time.perf_counter() - start, 1e-9):.2f} tokens/s\n", flush=True)
    return 0


def cli(argv=None, prog=None, later_names=False):
    """main() with MiniMind's manners: user errors one line + exit 2, Ctrl-C quiet (130)."""
    try:
        code = run_main(main, argv, prog, later_names)
    except BrokenPipeError:
        # `| head` closed the pipe: stop quietly (and keep Python from complaining at exit)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    except SystemExit as e:
        if e.code == 130:
            print(flush=True)  # end the half-printed line
        raise
    return code
