"""Train MiniMind's byte-level BPE tokenizer on a pretrain JSONL file.

    python scripts/train_tokenizer.py --data_path ./dataset/pretrain_hq.jsonl --out_dir ./model

The input is MiniMind's pretrain format, one {"text": "..."} object per line. It is streamed
line by line into the `tokenizers` trainer, so a multi-GB file never sits in memory as Python
strings. The output directory holds tokenizer.json and tokenizer_config.json and loads with
transformers.AutoTokenizer.from_pretrained(out_dir).

Fixed by MiniMind2 and relied on by every checkpoint and dataset: special tokens
<|endoftext|> = 0 (pad and unk), <|im_start|> = 1 (bos), <|im_end|> = 2 (eos), and a ChatML
chat template with a default system turn.
"""

import argparse
import json
import os
import sys
import tempfile
import time

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# MiniMind-3's layout (--model_family minimind3): 36 added tokens at ids 0-35, the first 21 special (skipped
# when decoding), the tool and think tags and nine spares plain added tokens (kept in decoded text, so
# the reasoning and tool-call parsers read them), each one token.
MINIMIND3_TOKENS = SPECIAL_TOKENS + [
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<|audio_start|>",
    "<|audio_end|>", "<|audio_pad|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>", "<tts_text_bos_single>",
    "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>",
    *(f"<|buffer{i}|>" for i in range(1, 10))]
MINIMIND3_N_SPECIAL = 21
PAD_TOKEN = UNK_TOKEN = "<|endoftext|>"
BOS_TOKEN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant"

# ChatML. A conversation without a leading system turn gets MiniMind2's default one; every turn,
# whatever its role, is "<|im_start|>{role}\n{content}<|im_end|>\n"; the generation prompt opens
# an assistant turn. For any conversation that ends with an assistant turn, or ends with a user
# turn and asks for the generation prompt, this renders exactly what MiniMind2's template renders.
# With enable_thinking=False (or open_thinking=False) the generation prompt ends with an empty
# <think>\n\n</think>\n\n, as MiniMind's 2025-10 template does.
# Tool calling is MiniMind 2025-10's layout (Qwen's), its tags plain text: given OpenAI-style `tools`
# (apply_chat_template(messages, tools=...)), the system turn holds the system message (if any), a blank
# line, then TOOLS_PROMPT with one signature per line (tojson) and no default system prompt; an assistant
# turn's `tool_calls` (a list of {"name", "arguments"} or {"type": "function", "function": {...}}) follow
# its content as <tool_call>\n{"name": ..., "arguments": ...}\n</tool_call> blocks, "\n" between blocks
# and after non-empty content (arguments given as a string are written as they are, an object as
# tojson); `tool` messages are <tool_response>\n...\n</tool_response>, consecutive ones in one user turn.
# A conversation without tools, tool_calls or tool messages renders byte for byte as before.
TOOLS_PROMPT = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>{signatures}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


def _jinja_str(text):
    """A Jinja string literal of text (single-quoted; backslash escapes as Python's)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


_TOOLS_HEAD, _TOOLS_TAIL = TOOLS_PROMPT.split("{signatures}")
CHAT_TEMPLATE = (
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages and messages[0]['role'] == 'system' -%}{{- messages[0]['content'] + '\\n\\n' -}}{%- endif -%}"
    "{{- " + _jinja_str(_TOOLS_HEAD) + " -}}"
    "{%- for tool in tools -%}{{- '\\n' -}}{{- tool | tojson -}}{%- endfor -%}"
    "{{- " + _jinja_str(_TOOLS_TAIL + "<|im_end|>\n") + " -}}"
    "{%- elif not messages or messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- set content = message['content'] if message['content'] is string else '' -%}"
    "{%- if tools and loop.first and message['role'] == 'system' -%}"  # already in the tools' system turn
    "{%- elif message['role'] == 'tool' -%}"
    "{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}"
    "{{- '\\n<tool_response>\\n' + content + '\\n</tool_response>' -}}"
    "{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' -%}{{- '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + content }}"
    "{%- if message['role'] == 'assistant' and message.tool_calls -%}"
    "{%- for tool_call in message.tool_calls -%}"
    "{%- if content or not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{%- if tool_call.function -%}{%- set tool_call = tool_call.function -%}{%- endif -%}"
    "{{- '<tool_call>\\n{\"name\": \"' -}}{{- tool_call.name -}}{{- '\", \"arguments\": ' -}}"
    "{%- if tool_call.arguments is string -%}{{- tool_call.arguments -}}"
    "{%- else -%}{{- tool_call.arguments | tojson -}}{%- endif -%}"
    "{{- '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    # adaptive thinking (MiniMind 2025-10 / Qwen3's enable_thinking, MiniMind-3's open_thinking): asked
    # not to think, the answer opens with an empty think block; left out, nothing changes
    "{%- if (enable_thinking is defined and enable_thinking is false) or "
    "(open_thinking is defined and open_thinking is false) -%}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif -%}"
    "{%- endif -%}"
)

MIN_VOCAB = 256 + len(SPECIAL_TOKENS)  # every byte must stay encodable


class UserError(Exception):
    """A mistake in the command line or the input file: reported in one line, exit code 2."""


def iter_texts(path, max_samples=None, batch_size=1000, stats=None):
    """Yield batches of texts from a {"text": ...} JSONL file, one line at a time.

    Blank lines are skipped; anything else that is not an object with a string "text" raises
    UserError naming the file and the 1-based line number. `stats` (a dict) receives the
    number of texts and characters read, for the summary line.
    """
    batch, n_texts, n_chars = [], 0, 0
    # Binary lines decoded one by one: a bad byte is then reported on the line that holds it.
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{path}:{lineno}: expected UTF-8 text, got undecodable bytes ({e.reason} at "
                                f"byte {e.start}); re-encode the file as UTF-8") from None
            if lineno == 1:
                line = line.lstrip("\ufeff")  # a byte-order mark some editors write
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno}: expected one JSON object per line, got invalid JSON "
                                f"({e.msg} at column {e.colno}); fix or remove this line") from None
            if not isinstance(obj, dict) or "text" not in obj:
                got = "an object without it" if isinstance(obj, dict) else f"a JSON {type(obj).__name__}"
                raise UserError(f'{path}:{lineno}: expected an object with a "text" field '
                                f'(MiniMind pretrain format {{"text": "..."}}), got {got}; fix or remove this line')
            text = obj["text"]
            if not isinstance(text, str):
                raise UserError(f'{path}:{lineno}: expected "text" to be a string, got {type(text).__name__}; '
                                "fix or remove this line")
            if not text:
                continue
            batch.append(text)
            n_texts += 1
            n_chars += len(text)
            if len(batch) >= batch_size:
                yield batch
                batch = []
            if max_samples is not None and n_texts >= max_samples:
                break
    if batch:
        yield batch
    if stats is not None:
        stats.update(texts=n_texts, chars=n_chars)


def build_tokenizer():
    """An untrained byte-level BPE with MiniMind2's pre-tokenizer and decoder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def added_tokens(family):
    """The tokens a family's tokenizer holds before its BPE vocabulary, in id order."""
    return MINIMIND3_TOKENS if family == "minimind3" else SPECIAL_TOKENS


def train(data_path, vocab_size=6400, max_samples=None, show_progress=True, family="minimind2"):
    """Train on the JSONL file and return (tokenizers.Tokenizer, stats dict)."""
    from tokenizers import AddedToken, pre_tokenizers, trainers

    tok = build_tokenizer()
    tokens = added_tokens(family)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=tokens,  # listed first, so they get ids 0, 1, 2, ...
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    stats = {}
    tok.train_from_iterator(iter_texts(data_path, max_samples, stats=stats), trainer=trainer)
    if stats.get("texts", 0) == 0:
        raise UserError(f'{data_path}: expected at least one non-empty {{"text": "..."}} line, got none; '
                        "point --data_path at a MiniMind pretrain JSONL file")
    if family == "minimind3":  # the tags and spares are plain added tokens: decoding keeps them
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in tokens[MINIMIND3_N_SPECIAL:]])
    for i, t in enumerate(tokens):
        assert tok.token_to_id(t) == i, f"special token {t} got id {tok.token_to_id(t)}, expected {i}"
    return tok, stats


def tokenizer_config(family="minimind2"):
    """tokenizer_config.json: the same special-token setup as the family's (MiniMind2's, or MiniMind-3's 36
    added tokens), with our chat template of its layout."""
    tokens = added_tokens(family)
    n_special = MINIMIND3_N_SPECIAL if family == "minimind3" else len(tokens)
    added = {
        str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                 "single_word": False, "special": i < n_special}
        for i, t in enumerate(tokens)
    }
    if family == "minimind3":
        here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model",
                            "chat_template_minimind3.jinja")
        with open(here, encoding="utf-8") as f:
            template = f.read()
    else:
        template = CHAT_TEMPLATE
    return {
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "unk_token": UNK_TOKEN,
        "clean_up_tokenization_spaces": False,
        "spaces_between_special_tokens": False,
        "model_max_length": 32768,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": template,
        **({"additional_special_tokens": tokens[3:n_special]} if family == "minimind3" else {}),
    }


def _write_atomic(path, text):
    # Write beside the target and rename, so an interrupted run never leaves a half-written file.
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp_", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's private 0600 would hide the file from other users
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save(tok, out_dir, family="minimind2"):
    """Write tokenizer.json and tokenizer_config.json into out_dir (created if needed)."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"{out_dir}: expected a directory for --out_dir, got an existing file; "
                        "choose another --out_dir")
    os.makedirs(out_dir, exist_ok=True)
    _write_atomic(os.path.join(out_dir, "tokenizer.json"), tok.to_str(pretty=True))
    _write_atomic(os.path.join(out_dir, "tokenizer_config.json"),
                  json.dumps(tokenizer_config(family), ensure_ascii=False, indent=2) + "\n")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train MiniMind's byte-level BPE tokenizer (vocab 6400, ChatML).")
    p.add_argument("--data_path", default="./dataset/pretrain_hq.jsonl",
                   help='pretrain JSONL, one {"text": ...} per line (default: %(default)s)')
    p.add_argument("--vocab_size", type=int, default=6400, help="vocabulary size incl. the 3 special tokens")
    p.add_argument("--out_dir", default="./model",
                   help="directory to write tokenizer.json and tokenizer_config.json (default: %(default)s, "
                        "the --tokenizer_path every other script reads)")
    p.add_argument("--max_samples", type=int, default=None,
                   help="train on the first N texts only (default: the whole file)")
    p.add_argument("--model_family", choices=["minimind2", "minimind3"], default="minimind2",
                   help="minimind2 (default: 3 special tokens, MiniMind2's ChatML template) or minimind3 "
                        "(MiniMind-3's layout: 36 added tokens at ids 0-35, <tool_call> = 21, <think> = 25 single "
                        "tokens, its chat template)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    n_added = len(added_tokens(args.model_family))
    if args.vocab_size < 256 + n_added:
        raise UserError(f"--vocab_size: expected at least {256 + n_added} (256 bytes + {n_added} "
                        f"special tokens), got {args.vocab_size}; pass a larger --vocab_size")
    if args.max_samples is not None and args.max_samples < 1:
        raise UserError(f"--max_samples: expected a positive number, got {args.max_samples}; "
                        "drop the flag to use the whole file")
    if not os.path.isfile(args.data_path):
        raise UserError(f"{args.data_path}: expected a pretrain JSONL file, got no such file; "
                        "pass --data_path (MiniMind's pretrain_hq.jsonl, or dataset/demo/pretrain.jsonl)")
    t0 = time.time()
    tok, stats = train(args.data_path, args.vocab_size, args.max_samples, show_progress=not args.quiet,
                       family=args.model_family)
    save(tok, args.out_dir, args.model_family)
    sample = [t for batch in iter_texts(args.data_path, max_samples=2000) for t in batch]
    n_tokens = sum(len(e.ids) for e in tok.encode_batch(sample, add_special_tokens=False))
    ratio = sum(map(len, sample)) / max(n_tokens, 1)
    if tok.get_vocab_size() < args.vocab_size:
        print(f"note: {args.data_path} has too little text for {args.vocab_size} tokens; BPE ran out of pairs "
              f"to merge at {tok.get_vocab_size()} (ids stay below --vocab_size, so models of that size still fit)")
    print(f"trained vocab {tok.get_vocab_size()} on {stats['texts']} texts ({stats['chars']} chars) "
          f"in {time.time() - t0:.1f}s; {ratio:.2f} chars/token on the first {len(sample)} training texts; "
          f"wrote {args.out_dir}/tokenizer.json and tokenizer_config.json")


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        print(f"train_tokenizer.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # unreadable input, unwritable output directory
        print(f"train_tokenizer.py: error: {e.filename}: {e.strerror}; check the path and its permissions",
              file=sys.stderr)
        sys.exit(2)
