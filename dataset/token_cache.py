"""The token cache: data files tokenized once by `Dataset.map` into memory-mapped Arrow files.

JSONL is read as lines, never by pyarrow's JSON reader (it infers a schema and fails without a line
number): `Dataset.map(batched=True, with_indices=True, num_proc=N)` runs over the lines' byte spans,
parses and checks each line (errors name the file and 1-based line, or row), renders and tokenizes it,
and writes the columns <stream>_ids (list<uint16>) and, for SFT/DPO, <stream>_mask (list<uint8>) and
<stream>_first (first target); DPO's also "margin" (float32). The map's output files are the cache,
memory-mapped (`Dataset.from_file`) and shared by every process through the page cache:
<data dir>/.minimind_cache/, or $MINIMIND_DATA_CACHE when set (a read-only data folder). Their key is an explicit
fingerprint, not a dill hash: the file's absolute path, size, mtime and first/last 64 KiB, the
tokenizer's vocabulary, merges, chat template and special ids, FORMAT_VERSION and the stage. Editing the
file or switching tokenizer builds a new cache (the old one is deleted); later epochs, runs and DDP
ranks reuse it (Trainer.dataset: rank 0 builds, then the others load; a file lock covers other
processes). Tokens are stored untruncated: one cache serves every max_length. datasets runs offline.
The loss masks of SFT and DPO samples are cut here (_chat_segments); dataset/lm_dataset.py says how.
"""
import bisect
import gc
import glob
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import weakref
from contextlib import ExitStack

import numpy as np

from dataset.sources import (_KINDS, DPO, PRETRAIN, RLAIF, DataError, _check_margin, _check_messages,
                             _check_prompt, _field, _parse_line, _pretrain_text, _short, _size, data_error,
                             resolve_sources)

FORMAT_VERSION = 3  # 3: a direct answer's empty think block is tokenized on its own (EMPTY_THINK)
# A stage whose columns changed since FORMAT_VERSION, so that only its caches are built again:
# dpo 2 added "margin" (float32, 0 where a line has none; train_reward.py reads it);
# rlaif 2 added "messages" (the checked prompt conversation as JSON; train_agent.py renders its turns).
# sft 2 and dpo 3 read MiniMind-3's "reasoning_content" (it was left out before).
KIND_VERSION = {"sft": 2, "dpo": 3, "rlaif": 2}
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
ASSISTANT_HEADER = IM_START + "assistant\n"
# A direct answer (adaptive thinking off) opens with this. The template's thinking-off prompt ends
# with it, where BPE reads the final "\n\n" as one token; inside a longer answer it would read as two.
# It is tokenized on its own so that training sees exactly the prompt's tokens.
EMPTY_THINK = "<think>\n\n</think>\n\n"
CACHE_DIRNAME = ".minimind_cache"
_PARALLEL_MIN_BYTES = 16 << 20   # below this, worker start-up costs more than it saves


def hf_datasets():
    """🤗 datasets, imported on first use (it takes a second or two) and kept off the network."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets
    return datasets


# ----------------------------------------------------------------------------------------------
# Tokenizing (the map function and its helpers; they run in the map's worker processes)

def tools_of(messages):
    """The tools the system message carries (sources._check_messages keeps them there), or None."""
    return messages[0].get("tools") if messages and messages[0].get("role") == "system" else None


def _assistant_text(msg):
    """An assistant turn's text as the chat template renders it between its header and <|im_end|>: the
    content, then each tool call as format_tool_call writes it ("\\n" before a call after any text)."""
    calls = msg.get("tool_calls")
    if not calls:
        return msg["content"]
    from model.tools import format_tool_call  # only for tool data: it imports the model package
    text = msg["content"]
    for call in calls:
        text += ("\n" if text else "") + format_tool_call(call["name"], call["arguments"])
    return text


_THINK_BLOCK = re.compile(r"<think>\n.*\n</think>\n\n", re.S)


def _renders_turn(body, msg):
    """Whether `body` (what the template put between an assistant header and its <|im_end|>) is the turn:
    its text as it is (the project's and MiniMind2's templates), or, as MiniMind-3's template renders every
    assistant turn, a think block (the message's own, or an empty one) and then the answer after it."""
    whole = _assistant_text(msg)
    if body == whole:
        return True
    answer = _assistant_text({**msg, "content": msg["content"].split("</think>")[-1].lstrip("\n")})
    return body.endswith(answer) and _THINK_BLOCK.fullmatch(body[:len(body) - len(answer)]) is not None


def _chat_segments(tok, messages, field, path, lineno):
    """Render with the chat template and cut it into (text, is_target) pieces.

    Targets: each assistant turn's text (its answer, and its tool calls as <tool_call> blocks) and its
    <|im_end|>. Everything else is not: system (with the tool signatures), user turns, and tool results,
    which the template puts in user turns (<tool_response> blocks)."""
    tools = tools_of(messages)
    try:
        text = tok.apply_chat_template(messages, tools=tools, tokenize=False)
    except Exception as e:  # a template may raise on content it does not accept
        raise data_error(path, lineno, f'"{field}" that the chat template can render',
                         f"{type(e).__name__}: {_short(str(e), 80)}", "fix this line") from None
    pieces, pos, turn = [], 0, 0
    for msg in messages:
        if msg["role"] != "assistant":
            continue
        turn += 1
        at = text.find(ASSISTANT_HEADER, pos)
        start = at + len(ASSISTANT_HEADER)
        close = text.find(IM_END, start) if at >= 0 else -1
        if close < 0 or not _renders_turn(text[start:close], msg):
            if msg.get("tool_calls"):
                raise data_error(path, lineno, f'the chat template to render assistant turn {turn} of "{field}" '
                                 'with its tool calls as <tool_call> blocks (<|im_start|>assistant\\n...'
                                 '<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call><|im_end|>)',
                                 "a rendering without them", "use a tokenizer whose chat template renders tool "
                                 "calls (the project's, ./model)")
            raise data_error(path, lineno, f'the chat template to render assistant turn {turn} of '
                             f'"{field}" as <|im_start|>assistant\\n...<|im_end|>',
                             "a rendering without it", "use a tokenizer with a ChatML chat template "
                             "(--tokenizer_path), and no chat markup inside message contents")
        end = close + len(IM_END)
        pieces.append((text[pos:start], 0))
        if text.startswith(EMPTY_THINK, start):
            pieces.append((EMPTY_THINK, 1))
            start += len(EMPTY_THINK)
        pieces.append((text[start:end], 1))
        pos = end
    if tools:  # a template without tools would leave the signatures out silently
        missing = [t for t in tools if json.dumps(_tool_name(t), ensure_ascii=False) not in text]
        if missing:
            raise data_error(path, lineno, f'the chat template to render the tools of "{field}" in its prompt',
                             f"a rendering without tool {_short(_tool_name(missing[0]))}",
                             "use a tokenizer whose chat template renders tools (the project's, ./model)")
    # what follows the last <|im_end|> can never be a target: leave it out
    return pieces


def _tool_name(entry):
    return (entry.get("function") or entry)["name"]


def _encode_batch(tok, texts):
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:  # the Rust tokenizer directly: same ids, a fraction of the overhead
        return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
    return tok(texts, add_special_tokens=False)["input_ids"]


def _sub_batches(items, size, budget=1 << 16):
    """Slices of items of about `budget` characters: the tokenizer's per-token objects stay a few MB."""
    start, total = 0, 0
    for k, item in enumerate(items):
        total += size(item)
        if total >= budget:
            yield items[start:k + 1]
            start, total = k + 1, 0
    if start < len(items):
        yield items[start:]


_SMALL_CACHE = weakref.WeakSet()


def _small_bpe_cache(tok):
    """A small BPE word cache: the default one (10k words) grows to ~100 MB on Chinese text, where a
    "word" is a whole run of characters, and saves little time. Once per tokenizer copy (process)."""
    if tok not in _SMALL_CACHE:
        try:
            tok.backend_tokenizer.model._resize_cache(1000)
        except Exception:
            pass  # a tokenizer without that knob: correct anyway, only the cache is bigger
        _SMALL_CACHE.add(tok)


def _concat(parts, type_):
    import pyarrow as pa
    return pa.concat_arrays(parts) if parts else pa.array([], type_)


def _encode_chunk(batch, indices, kind, path, tok, dtype, lines, own_tok):
    """The map function: validate and tokenize a batch of rows into a pyarrow Table.

    Rows are JSONL line spans (`lines`: "start"/"end" byte offsets, read from the file here and parsed
    with their 1-based line number) or rows of a Parquet / saved table (numbered 1-based too).
    """
    import pyarrow as pa
    kind, ids_type, mask_type = _KINDS[kind], pa.list_(pa.from_numpy_dtype(np.dtype(dtype))), pa.list_(pa.uint8())
    if own_tok:  # a copy made for building (never the caller's tokenizer)
        _small_bpe_cache(tok)
    objs = []
    if lines:  # JSONL: one read for the batch's lines
        s0 = batch["start"][0]
        with open(path, "rb") as f:
            f.seek(s0)
            blob = f.read(batch["end"][-1] - s0)
        for i, s, e in zip(indices, batch["start"], batch["end"]):
            obj = _parse_line(blob[s - s0:e - s0], path, i + 1)
            if obj is not None:
                objs.append((i + 1, obj))
    else:  # a table: its columns are the fields (a struct's missing key reads as None)
        for j, i in enumerate(indices):
            obj = {k: v[j] for k, v in batch.items()}
            for s in kind.streams:
                if isinstance(obj.get(s), list):
                    obj[s] = [{k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m
                              for m in obj[s]]
            objs.append((i + 1, obj))
    cols = {}
    if kind is PRETRAIN:
        texts = [_pretrain_text(obj, path, lineno) for lineno, obj in objs]
        bos, eos = tok.bos_token_id, tok.eos_token_id
        ids = [pa.array([[bos, *x, eos] for x in _encode_batch(tok, b)], ids_type) for b in _sub_batches(texts, len)]
        return pa.table({"text_ids": _concat(ids, ids_type)})
    if kind is RLAIF:
        return _encode_prompts(objs, path, tok, ids_type)
    for s in kind.streams:
        samples = [_chat_segments(tok, _check_messages(_field(obj, s, path, lineno, kind.example),
                                                       s, path, lineno), s, path, lineno)
                   for lineno, obj in objs]
        ids, masks, first = [], [], []
        for b in _sub_batches(samples, lambda pieces: sum(len(t) for t, _ in pieces)):
            encoded = iter(_encode_batch(tok, [t for pieces in b for t, _ in pieces]))
            seqs, ms = [], []
            for pieces in b:
                seq, m = [], []
                for _, target in pieces:
                    piece = next(encoded)
                    seq.extend(piece)
                    m.extend([target] * len(piece))
                seqs.append(seq)
                ms.append(m)
                first.append(m.index(1))
            ids.append(pa.array(seqs, ids_type))
            masks.append(pa.array(ms, mask_type))
        cols[f"{s}_ids"], cols[f"{s}_mask"] = _concat(ids, ids_type), _concat(masks, mask_type)
        cols[f"{s}_first"] = pa.array(first, pa.int32())
    if kind is DPO:
        cols["margin"] = pa.array([_check_margin(obj, path, lineno) for lineno, obj in objs], pa.float32())
    return pa.table(cols)


def _encode_prompts(objs, path, tok, ids_type):
    """RLAIF rows: the prompt (chat template with the generation prompt) as prompt_ids, the checked
    conversation as JSON in "messages" (a multi-turn rollout renders it again with each turn's tool
    results), and every other field of the row as JSON in "fields" (they reach the reward functions)."""
    import pyarrow as pa
    texts, fields, conversations = [], [], []
    for lineno, obj in objs:
        messages = _check_prompt(_field(obj, "conversations", path, lineno, RLAIF.example), path, lineno)
        conversations.append(json.dumps(messages, ensure_ascii=False, default=str))
        try:
            texts.append(tok.apply_chat_template(messages, tools=tools_of(messages), tokenize=False,
                                                 add_generation_prompt=True))
        except Exception as e:
            raise data_error(path, lineno, '"conversations" that the chat template can render',
                             f"{type(e).__name__}: {_short(str(e), 80)}", "fix this line") from None
        fields.append(json.dumps({k: v for k, v in obj.items() if k != "conversations"}, ensure_ascii=False,
                                 default=str))
    ids = [pa.array(_encode_batch(tok, b), ids_type) for b in _sub_batches(texts, len)]
    return pa.table({"prompt_ids": _concat(ids, ids_type), "fields": pa.array(fields, pa.string()),
                     "messages": pa.array(conversations, pa.string())})


# ----------------------------------------------------------------------------------------------
# The cache

def tokenizer_fingerprint(tok):
    """A hash of everything about a tokenizer that changes token ids or masks."""
    h = hashlib.sha256(type(tok).__name__.encode())
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:  # vocabulary, merges, normalizer, pre-tokenizer, added/special tokens
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tok.get_vocab().items())).encode())
    h.update(str(getattr(tok, "chat_template", None)).encode())
    h.update(repr((tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, len(tok))).encode())
    return h.hexdigest()


def _file_signature(path):
    """Path, size, mtime and the first/last 64 KiB of a file (of each file of a saved dataset)."""
    if os.path.isdir(path):
        return [_file_signature(os.path.join(path, f)) for f in sorted(os.listdir(path))]
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:  # cheap content check against edits that keep size and mtime
        h.update(f.read(1 << 16))
        if st.st_size > 1 << 17:
            f.seek(-(1 << 16), os.SEEK_END)
            h.update(f.read())
    return {"source": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sample_sha256": h.hexdigest()}


def _usable_dir(d):
    try:
        created = not os.path.isdir(d)
        os.makedirs(d, exist_ok=True)
        if created:  # a cache beside tracked data must not show up in git (only in folders we made)
            with open(os.path.join(d, ".gitignore"), "w") as f:
                f.write("# token caches built by dataset/lm_dataset.py\n*\n")
        with tempfile.TemporaryFile(dir=d):
            pass
        return True
    except OSError:
        return False


def _is_rank0():
    return os.environ.get("RANK", "0") in ("", "0")


def _cache_files(d, stem):
    """The map's output files if a complete set (_R_of_N for R = 0..N-1) is there, else None."""
    files = set(glob.glob(os.path.join(glob.escape(d), glob.escape(stem) + ".tokens_*_of_*.arrow")))
    for n in sorted({int(f[-11:-6]) for f in files}):
        want = [os.path.join(d, f"{stem}.tokens_{r:05d}_of_{n:05d}.arrow") for r in range(n)]
        if files.issuperset(want):
            return want
    return None


class TokenCache:
    """The tokenized Arrow table of a data path: one memory-mapped cache per source file, concatenated."""

    def __init__(self, path, tok, kind, cache_dir=None, num_proc=None):
        self.path, self.kind = os.fspath(path), _KINDS[kind] if isinstance(kind, str) else kind
        for name in ("bos_token_id", "eos_token_id"):
            if getattr(tok, name, None) is None:
                raise DataError(f"{getattr(tok, 'name_or_path', 'tokenizer')}: expected a tokenizer "
                                f"with {name[:3]} token, got none; use --tokenizer_path ./model")
        if self.kind is not PRETRAIN and not getattr(tok, "chat_template", None):
            raise DataError(f"{getattr(tok, 'name_or_path', 'tokenizer')}: expected a tokenizer with "
                            "a chat template, got none; use --tokenizer_path ./model")
        sources = resolve_sources(self.path)
        self.dtype = np.dtype(np.uint16 if len(tok) <= 1 << 16 else np.uint32)
        if num_proc is None:
            size = sum(_size(f) for f, _ in sources)
            num_proc = 1 if size < _PARALLEL_MIN_BYTES else min(os.cpu_count() or 1, 8)
        tok_key = tokenizer_fingerprint(tok)
        parts, self.built = [], False
        for src in sources:
            parts.append(self._open(src, tok, tok_key, cache_dir, num_proc))
        hf = hf_datasets()
        self.files = [(src[0], len(part)) for src, part in zip(sources, parts)]  # (file, rows) read
        self.data = parts[0] if len(parts) == 1 else hf.concatenate_datasets(parts)
        if len(self.data) == 0:
            raise data_error(self.path, None, "at least one JSON line", "only blank lines",
                             "check the file was fully written")
        self._cols = {}

    def _open(self, src, tok, tok_key, cache_dir, num_proc):
        hf = hf_datasets()
        path, _ = src
        version = [KIND_VERSION[self.kind.name]] if self.kind.name in KIND_VERSION else []
        key = hashlib.sha256(json.dumps([FORMAT_VERSION, self.kind.name, _file_signature(path), tok_key,
                                         self.dtype.str, *version], sort_keys=True).encode()).hexdigest()[:16]
        where = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:8]
        base = f"{os.path.basename(os.path.normpath(path))}.{self.kind.name}.{where}"
        stem = f"{base}-{key}"
        d = cache_dir or os.environ.get("MINIMIND_DATA_CACHE") or os.path.join(
            os.path.dirname(os.path.abspath(path)), CACHE_DIRNAME)
        data = None
        if not _cache_files(d, stem):
            from filelock import FileLock
            if not _usable_dir(d):
                raise DataError(f"{path}: expected a writable cache folder, got {d}; "
                                "set MINIMIND_DATA_CACHE to a writable folder")
            with FileLock(os.path.join(d, stem + ".lock")):  # one process builds, the others wait
                if not _cache_files(d, stem):
                    data = self._build(src, tok, os.path.join(d, stem + ".tokens"), key, num_proc)
                    self.built = True
                    for f in os.listdir(d):  # earlier versions of this file, or another tokenizer
                        if f.startswith(base + "-") and not f.startswith(stem + "."):
                            os.remove(os.path.join(d, f))
        if not hasattr(self, "dir"):
            self.dir, self.stem = d, stem
        if data is None:  # the map's result is these files, opened once
            parts = [hf.Dataset.from_file(f) for f in _cache_files(d, stem)]
            data = parts[0] if len(parts) == 1 else hf.concatenate_datasets(parts)
        return data

    def _build(self, src, tok, prefix, key, num_proc):
        import copy
        hf = hf_datasets()
        path, typ = src
        t0 = time.time()
        size = _size(path)
        big = size >= 1 << 20
        # datasets' progress bar for big files only, on rank 0
        (hf.enable_progress_bars if _is_rank0() and size >= 64 << 20 else hf.disable_progress_bars)()
        with ExitStack() as stack:
            if typ == "jsonl":  # rows = the lines' byte spans; the map reads and parses them
                import datasets.table
                spans = datasets.table.InMemoryTable.from_pydict(dict(zip(("start", "end"), _line_spans(path))))
                rows = hf.Dataset(spans, fingerprint=key + "-lines")
            elif typ == "parquet":  # as Arrow in a temporary folder, deleted once tokenized
                tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=os.path.dirname(prefix)))
                rows = hf.Dataset.from_parquet(path, cache_dir=tmp)
            else:
                rows = hf.load_from_disk(path)
                if isinstance(rows, hf.DatasetDict):
                    if "train" not in rows:
                        raise data_error(path, None, 'a saved Dataset (or a DatasetDict with a "train" '
                                         'split)', f"splits {sorted(rows)}", "save the split to train on")
                    rows = rows["train"]
            if len(rows) == 0:
                raise data_error(path, None, "at least one row", "none", "check the file was fully written")
            n = min(num_proc, len(rows))
            if n > 1:  # forked workers: keep their garbage collector from copying the parent's heap
                stack.callback(gc.unfreeze)
                gc.freeze()
            data = rows.map(  # a big build tokenizes with a copy that gets a small BPE cache
                _encode_chunk, batched=True, with_indices=True, num_proc=n if n > 1 else None,
                remove_columns=rows.column_names, cache_file_name=prefix + (".arrow" if n > 1 else "_00000_of_00001.arrow"),
                fn_kwargs=dict(kind=self.kind.name, path=path, tok=copy.deepcopy(tok) if big else tok,
                               dtype=self.dtype.str, lines=typ == "jsonl", own_tok=big),
                new_fingerprint=key, desc=f"tokenizing {os.path.basename(path)}")
        print(f"tokenized {path} in {time.time() - t0:.1f}s -> {prefix}_*.arrow", file=sys.stderr, flush=True)
        return data

    # -- reading ------------------------------------------------------------------------------
    def column(self, name):
        """A list column as numpy views of the memory-mapped Arrow buffers, opened on first use."""
        col = self._cols.get(name)
        if col is None:
            col = self._cols[name] = _Lists(self.data.data.table.column(name))
        return col

    def array(self, name):
        return self.data.data.table.column(name).to_numpy()

    def __getstate__(self):  # DataLoader workers get the file paths, not the tokens
        state = dict(self.__dict__)
        state["_cols"] = {}
        return state


def _line_spans(path):
    """Byte offsets (start, end) of every line: newline positions found 4 MiB at a time."""
    starts, pos = [np.zeros(1, np.int64)], 0
    with open(path, "rb") as f:
        while block := f.read(4 << 20):
            starts.append(np.flatnonzero(np.frombuffer(block, np.uint8) == 10) + (pos + 1))
            pos += len(block)
    starts = np.concatenate(starts)
    if starts[-1] == pos:  # the file ends with a newline: no line after it
        starts = starts[:-1]
    return starts, np.append(starts[1:], pos)


class _Lists:
    """One list<int> column of a chunked Arrow table, read without copies: rows, or spans of the
    concatenated values (the packed token stream)."""

    def __init__(self, column):
        self.parts = [(c.offsets.to_numpy(), c.values.to_numpy()) for c in column.chunks]
        self.first_row = np.cumsum([0] + [len(o) - 1 for o, _ in self.parts])
        self.first_value = np.cumsum([0] + [int(o[-1] - o[0]) for o, _ in self.parts])
        self._first_row, self._first_value = self.first_row.tolist(), self.first_value.tolist()  # for bisect
        self.total = int(self.first_value[-1])
        self._starts = None

    def lengths(self):
        return np.concatenate([np.diff(o) for o, _ in self.parts] or [np.zeros(0, np.int64)]).astype(np.int64)

    def row(self, i):
        k = bisect.bisect_right(self._first_row, i) - 1
        offsets, values = self.parts[k]
        j = i - self._first_row[k]
        return values[offsets[j]:offsets[j + 1]]

    def span(self, a, b):
        out, first = [], self._first_value
        k = bisect.bisect_right(first, a) - 1
        while a < b and k < len(self.parts):
            offsets, values = self.parts[k]
            lo = int(offsets[0]) + a - first[k]
            out.append(values[lo:lo + min(b, first[k + 1]) - a])
            a, k = first[k + 1], k + 1
        return out[0] if len(out) == 1 else np.concatenate(out) if out else np.zeros(0, np.int64)

    def starts(self):
        """Where each row starts in the concatenated values (n + 1 offsets, int64)."""
        if self._starts is None:
            self._starts = np.zeros(self.first_row[-1] + 1, np.int64)
            np.cumsum(self.lengths(), out=self._starts[1:])
        return self._starts

