"""MiniMind's JSONL data sets, tokenized once into memory-mapped token files.

File formats (one JSON object per line, MiniMind's):
    pretrain  {"text": "..."}
    SFT       {"conversations": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
    DPO       {"chosen": [messages], "rejected": [messages]}

Why a token cache instead of Python lists: MiniMind's pretrain file is ~1.6 GB and its SFT files
several GB; holding them as Python strings costs several times their size in RAM, in every rank and
every DataLoader worker. Here the file is streamed once, every line is validated (errors name the file
and the 1-based line), tokenized in worker processes, and written to flat binary files:

    <data dir>/.minimind_cache/<file name>.<kind>.<key>.<stream>.tokens.bin   uint16 (uint32 if vocab > 65535)
                                                          .<stream>.mask.bin     uint8, 1 = training target
                                                          .<stream>.offsets.npy  int64, sample boundaries
                                                          .<stream>.first.npy    first target of each sample
                                                   .<key>.meta.json                written last = cache complete
(<stream> is "text" for pretraining, "conversations" for SFT, "chosen"/"rejected" for DPO; pretraining
has no mask: every token but the opening <|im_start|> is a target)

which are opened with np.memmap: resident memory is the pages actually touched, shared between
processes by the OS page cache. The cache lives beside the data (the folder holds its own .gitignore),
or under $MINIMIND_DATA_CACHE / ~/.cache/minimind/data when that folder is not writable. The key hashes
the file's absolute path, size, mtime and first/last 64 KiB, the tokenizer (vocabulary, merges, chat
template, special ids) and this module's format version, so editing the file or switching tokenizer
rebuilds it, while later epochs, resumed runs and the other DDP ranks reuse it. Tokens are stored
untruncated, so one cache serves every max_length.

Distributed use: constructors are safe to call on every rank at once. The first process to take the
cache's file lock builds it (atomic renames, meta file last); the others wait on the lock and then
memory-map the finished files. A data error found while building is recorded, so waiting ranks raise
the same DataError instead of re-tokenizing the whole file.

Loss masks (SFT and DPO): the conversation is rendered with the tokenizer's own chat template; each
assistant turn must appear in the rendering as "<|im_start|>assistant\\n{content}<|im_end|>". The
rendering is cut at those boundaries and tokenized piece by piece, so the targets are exactly the
content tokens and the closing <|im_end|> of every assistant turn: never the system/user turns, the
"<|im_start|>assistant\\n" header or padding. Cutting there also matches inference, where the prompt
ends with the header and the model generates the content as new tokens. Tokens after the last target
are dropped (they carry no loss). A sample that has no target left after truncation to max_length is
dropped and counted in `num_dropped` (it would contribute 0/0 to a masked mean); every truncated
sample is counted in `num_truncated`; both appear in `summary()`, printed once on stderr by rank 0.
"""
import gc
import hashlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections import deque

import numpy as np
import torch
from torch.utils.data import Dataset

FORMAT_VERSION = 1
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
ASSISTANT_HEADER = IM_START + "assistant\n"
ROLES = ("system", "user", "assistant")
CACHE_DIRNAME = ".minimind_cache"
_CHUNK_BYTES = 1 << 20      # lines handed to a tokenizing worker at a time
_CHUNK_LINES = 2048
_PARALLEL_MIN_BYTES = 16 << 20   # below this, worker start-up costs more than it saves


class DataError(ValueError):
    """A problem with the user's data file: "PATH:LINE: expected ..., got ...; what to do"."""

    def __init__(self, message, path=None, line=None):
        super().__init__(message)
        self.path, self.line = path, line

    def __reduce__(self):  # survives the trip back from a worker process
        return (DataError, (str(self), self.path, self.line))


def _short(value, limit=60):
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _type_name(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def data_error(path, line, expected, got, todo):
    where = f"{path}:{line}" if line else f"{path}"
    return DataError(f"{where}: expected {expected}, got {got}; {todo}", path, line)


# ----------------------------------------------------------------------------------------------
# Parsing and validation (pure functions; they run in tokenizing worker processes)

def _parse_line(raw, path, lineno):
    """bytes -> dict, or None for a blank line (tolerated, e.g. a trailing newline)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise data_error(path, lineno, "UTF-8 text", f"an invalid byte at column {e.start + 1}",
                         "re-save the file as UTF-8") from None
    if lineno == 1:
        text = text.lstrip("\ufeff")
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise data_error(path, lineno, "one JSON object per line",
                         f"invalid JSON ({e.msg} at column {e.colno})",
                         "fix or delete this line") from None
    if not isinstance(obj, dict):
        raise data_error(path, lineno, "a JSON object per line", _type_name(obj),
                         "each line must be an object such as {\"text\": \"...\"}")
    return obj


def _field(obj, name, path, lineno, example):
    if name not in obj:
        raise data_error(path, lineno, f'a "{name}" field', f"keys {sorted(obj)}",
                         f"lines of this file must look like {example}")
    return obj[name]


def _check_messages(value, field, path, lineno):
    """Validate one conversation; returns [{"role", "content"}] with missing roles filled in.

    A turn without "role" takes the role that alternation asks for (user after system/assistant or at
    the start, assistant after user), as in MiniMind's early role-less SFT files. A system turn is
    allowed first only; after it turns must alternate user/assistant, with at least one assistant.
    """
    if not isinstance(value, list) or not value:
        raise data_error(path, lineno, f'"{field}" to be a non-empty list of messages',
                         _short(value), 'write it as [{"role": "user", "content": "..."}, ...]')
    messages, prev = [], None
    for k, msg in enumerate(value, 1):
        if not isinstance(msg, dict):
            raise data_error(path, lineno, f'message {k} of "{field}" to be an object',
                             _type_name(msg), 'write messages as {"role": ..., "content": ...}')
        content = msg.get("content")
        if not isinstance(content, str):
            got = "no content" if "content" not in msg else _type_name(content)
            raise data_error(path, lineno, f'message {k} of "{field}" to have a string "content"',
                             got, "give every message its text")
        want = "assistant" if prev == "user" else "user"
        role = msg.get("role", want)
        if role not in ROLES:
            raise data_error(path, lineno, f'message {k} of "{field}" to have role system, user or '
                             'assistant', f"role {_short(role)}", "fix the role")
        if role == "system" and k != 1:
            raise data_error(path, lineno, f'a system message only as message 1 of "{field}"',
                             f"one as message {k}", "merge it into the first message")
        if role != "system" and role != want:
            raise data_error(path, lineno, f'message {k} of "{field}" to have role {want} (turns '
                             'alternate user/assistant after an optional system message)',
                             f"role {role}", "fix the roles or the order of the messages")
        messages.append({"role": role, "content": content})
        prev = role
    if not any(m["role"] == "assistant" for m in messages):
        raise data_error(path, lineno, f'at least one assistant message in "{field}"',
                         "none", "add the answer the model should learn")
    return messages


def _chat_segments(tok, messages, field, path, lineno):
    """Render with the chat template and cut it into (text, is_target) pieces."""
    try:
        text = tok.apply_chat_template(messages, tokenize=False)
    except Exception as e:  # a template may raise on content it does not accept
        raise data_error(path, lineno, f'"{field}" that the chat template can render',
                         f"{type(e).__name__}: {_short(str(e), 80)}", "fix this line") from None
    pieces, pos, turn = [], 0, 0
    for msg in messages:
        if msg["role"] != "assistant":
            continue
        turn += 1
        needle = ASSISTANT_HEADER + msg["content"] + IM_END
        at = text.find(needle, pos)
        if at < 0:
            raise data_error(path, lineno, f'the chat template to render assistant turn {turn} of '
                             f'"{field}" as <|im_start|>assistant\\n...<|im_end|>',
                             "a rendering without it", "use a tokenizer with a ChatML chat template "
                             "(--tokenizer_path), and no chat markup inside message contents")
        start, end = at + len(ASSISTANT_HEADER), at + len(needle)
        pieces.append((text[pos:start], 0))
        pieces.append((text[start:end], 1))
        pos = end
    # what follows the last <|im_end|> can never be a target: leave it out
    return pieces


def _encode_batch(tok, texts):
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:  # the Rust tokenizer directly: same ids, half the overhead
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
    return tok(texts, add_special_tokens=False)["input_ids"]


def _flatten(seqs, dtype):
    lengths = np.fromiter((len(s) for s in seqs), np.int64, len(seqs))
    flat = np.fromiter(itertools.chain.from_iterable(seqs), dtype, int(lengths.sum()))
    return flat, lengths


class _Kind:
    """What a file kind looks like: its streams (token sequences per line) and its line check."""

    def __init__(self, name, streams, example):
        self.name, self.streams, self.example = name, streams, example


PRETRAIN = _Kind("pretrain", ("text",), '{"text": "..."}')
SFT = _Kind("sft", ("conversations",), '{"conversations": [{"role": "user", "content": "..."}, '
            '{"role": "assistant", "content": "..."}]}')
DPO = _Kind("dpo", ("chosen", "rejected"), '{"chosen": [messages], "rejected": [messages]}')
_KINDS = {k.name: k for k in (PRETRAIN, SFT, DPO)}

_WORKER_TOK = None


def _builder_tokenizer(tok):
    """A private copy for building, with a small BPE word cache: the default one (10k words) grows
    to ~100 MB on Chinese text, where a "word" is a whole run of characters, and saves little time."""
    import copy
    try:
        tok = copy.deepcopy(tok)
        tok.backend_tokenizer.model._resize_cache(1000)
    except Exception:
        pass  # a tokenizer without that knob: correct anyway, only the cache is bigger
    return tok


def _init_worker(tok):
    global _WORKER_TOK
    _WORKER_TOK = tok
    # one tokenizer thread per worker process; the processes are the parallelism
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def _encode_chunk(kind_name, path, first_line, lines, dtype_str, tok=None):
    """Validate and tokenize consecutive raw lines.

    Returns {stream: (tokens, mask, lengths, first)}: flat token ids, flat target mask (None for
    pretraining), per-sample lengths, per-sample index of the first target token (None for pretraining).
    """
    tok = tok if tok is not None else _WORKER_TOK
    kind, dtype = _KINDS[kind_name], np.dtype(dtype_str)
    objs = []
    for k, raw in enumerate(lines):
        obj = _parse_line(raw, path, first_line + k)
        if obj is not None:
            objs.append((first_line + k, obj))
    if kind is PRETRAIN:
        texts = []
        for lineno, obj in objs:
            text = _field(obj, "text", path, lineno, kind.example)
            if not isinstance(text, str):
                raise data_error(path, lineno, '"text" to be a string', _type_name(text),
                                 f"lines of this file must look like {kind.example}")
            texts.append(text)
        bos, eos = tok.bos_token_id, tok.eos_token_id
        parts = []
        for batch in _sub_batches(texts, len):
            ids = [[bos, *x, eos] for x in _encode_batch(tok, batch)]
            tokens, lengths = _flatten(ids, dtype)
            parts.append((tokens, None, lengths, None))
        return {"text": _concat(parts)}
    convs = {s: [] for s in kind.streams}
    for lineno, obj in objs:
        for s in kind.streams:
            messages = _check_messages(_field(obj, s, path, lineno, kind.example), s, path, lineno)
            convs[s].append(_chat_segments(tok, messages, s, path, lineno))
    out = {}
    for s, samples in convs.items():
        parts = []
        for batch in _sub_batches(samples, lambda pieces: sum(len(t) for t, _ in pieces)):
            encoded = iter(_encode_batch(tok, [t for pieces in batch for t, _ in pieces]))
            ids, masks = [], []
            for pieces in batch:
                seq, m = [], []
                for _, target in pieces:
                    piece = next(encoded)
                    seq.extend(piece)
                    m.extend([target] * len(piece))
                ids.append(seq)
                masks.append(m)
            tokens, lengths = _flatten(ids, dtype)
            mask, _ = _flatten(masks, np.uint8)
            first = np.fromiter((m.index(1) for m in masks), np.int64, len(masks))
            parts.append((tokens, mask, lengths, first))
        out[s] = _concat(parts)
    return out


def _sub_batches(items, size, budget=1 << 16):
    """Slices of items of about `budget` characters: the tokenizer's per-token objects (Python ints,
    Rust encodings) then stay a few MB, whatever the chunk size."""
    start, total = 0, 0
    for k, item in enumerate(items):
        total += size(item)
        if total >= budget:
            yield items[start:k + 1]
            start, total = k + 1, 0
    if start < len(items):
        yield items[start:]


def _concat(parts):
    if not parts:
        return (np.zeros(0, np.uint16), None, np.zeros(0, np.int64), None)
    return tuple(None if p[0] is None else np.concatenate(p) for p in zip(*parts))


# ----------------------------------------------------------------------------------------------
# The token cache

def tokenizer_fingerprint(tok):
    """A hash of everything about a tokenizer that changes token ids or masks."""
    h = hashlib.sha256(type(tok).__name__.encode())
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tok.get_vocab().items())).encode())
    h.update(str(getattr(tok, "chat_template", None)).encode())
    h.update(repr((tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, len(tok))).encode())
    return h.hexdigest()


def _file_signature(path):
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:  # cheap content check against edits that keep size and mtime
        h.update(f.read(1 << 16))
        if st.st_size > 1 << 17:
            f.seek(-(1 << 16), os.SEEK_END)
            h.update(f.read())
    return {"source": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sample_sha256": h.hexdigest()}


def _fallback_cache_dir():
    env = os.environ.get("MINIMIND_DATA_CACHE")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "minimind", "data")


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


class TokenCache:
    """Flat memory-mapped tokens (+ masks) of one JSONL file, built once under a file lock."""

    def __init__(self, path, tok, kind, cache_dir=None, num_proc=None):
        path = os.fspath(path)
        self.path, self.kind = path, _KINDS[kind] if isinstance(kind, str) else kind
        if not os.path.exists(path):
            raise data_error(path, None, "a JSONL file", "no such file",
                             "check the path, or download/generate the data first")
        if os.path.isdir(path):
            raise data_error(path, None, "a JSONL file", "a directory", "pass the file inside it")
        if os.path.getsize(path) == 0:
            raise data_error(path, None, "at least one JSON line", "an empty file",
                             "check the file was fully written")
        for name in ("bos_token_id", "eos_token_id"):
            if getattr(tok, name, None) is None:
                raise DataError(f"{getattr(tok, 'name_or_path', 'tokenizer')}: expected a tokenizer "
                                f"with {name[:3]} token, got none; use --tokenizer_path ./model")
        if self.kind is not PRETRAIN and not getattr(tok, "chat_template", None):
            raise DataError(f"{getattr(tok, 'name_or_path', 'tokenizer')}: expected a tokenizer with "
                            "a chat template, got none; use --tokenizer_path ./model")
        sig = _file_signature(path)
        self.dtype = np.dtype(np.uint16 if len(tok) <= 1 << 16 else np.uint32)
        key_src = json.dumps([FORMAT_VERSION, self.kind.name, sig, tokenizer_fingerprint(tok),
                              self.dtype.str], sort_keys=True)
        key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
        self.stem = f"{os.path.basename(path)}.{self.kind.name}.{key}"
        dirs = [cache_dir] if cache_dir else [
            os.path.join(os.path.dirname(os.path.abspath(path)), CACHE_DIRNAME), _fallback_cache_dir()]
        self.dir = next((d for d in dirs if os.path.exists(self._file(d, "meta.json"))), None)
        self.built = False
        if self.dir is None:
            self.dir = next((d for d in dirs if _usable_dir(d)), None)
            if self.dir is None:
                raise DataError(f"{path}: expected a writable cache folder, got none of {dirs}; "
                                "set MINIMIND_DATA_CACHE to a writable folder")
            self._build_locked(tok, sig, num_proc)
        with open(self._file(self.dir, "meta.json")) as f:
            self.meta = json.load(f)
        self._arrays = {}

    def _file(self, d, suffix):
        return os.path.join(d, f"{self.stem}.{suffix}")

    def _build_locked(self, tok, sig, num_proc):
        from filelock import FileLock, Timeout  # installed with `datasets`; works on every OS

        lock = FileLock(self._file(self.dir, "lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if _is_rank0():
                print(f"waiting for another process to finish tokenizing {self.path} ...",
                      file=sys.stderr, flush=True)
            lock.acquire()
        try:
            err = self._file(self.dir, "error.json")
            if os.path.exists(err):  # a rank before us found bad data: same answer, no rebuild
                with open(err) as f:
                    e = json.load(f)
                raise DataError(e["message"], e["path"], e["line"])
            if os.path.exists(self._file(self.dir, "meta.json")):
                return
            try:
                self._build(tok, sig, num_proc)
            except DataError as e:
                _atomic_write_text(err, json.dumps({"message": str(e), "path": e.path,
                                                    "line": e.line}))
                raise
            self.built = True
            self._evict_stale(sig)
        finally:
            lock.release()

    def _build(self, tok, sig, num_proc):
        t0 = time.time()
        streams = self.kind.streams
        size = sig["size"]
        if num_proc is None:
            num_proc = 1 if size < _PARALLEL_MIN_BYTES else min(os.cpu_count() or 1, 8)
        tok = _builder_tokenizer(tok)
        tmp = {}  # final name -> temporary name; renamed only when everything is written
        outs = {}
        for s in streams:
            for part in ("tokens.bin", "mask.bin") if self.kind is not PRETRAIN else ("tokens.bin",):
                final = self._file(self.dir, f"{s}.{part}")
                tmp[final] = f"{final}.tmp{os.getpid()}"
                outs[(s, part)] = open(tmp[final], "wb")
        lengths = {s: [] for s in streams}
        firsts = {s: [] for s in streams}
        n_tokens = {s: 0 for s in streams}

        def write(result):
            for s, (tokens, mask, lens, first) in result.items():
                outs[(s, "tokens.bin")].write(tokens.tobytes())
                if mask is not None:
                    outs[(s, "mask.bin")].write(mask.tobytes())
                lengths[s].append(lens)
                if first is not None:
                    firsts[s].append(first)
                n_tokens[s] += len(tokens)

        from tqdm import tqdm
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"tokenizing {os.path.basename(self.path)}",
                   disable=size < (64 << 20) or not _is_rank0(), mininterval=2.0)
        pool = None
        try:
            if num_proc > 1:
                import multiprocessing as mp
                from concurrent.futures import ProcessPoolExecutor
                ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
                # forked workers share the parent's heap copy-on-write; keep their garbage collector
                # from touching (and so copying) every page of it
                gc.freeze()
                pool = ProcessPoolExecutor(num_proc, mp_context=ctx, initializer=_init_worker,
                                           initargs=(tok,))
            pending = deque()  # bounded, so a multi-GB file is never queued in memory
            for first_line, lines, nbytes in _read_chunks(self.path):
                if pool is None:
                    write(_encode_chunk(self.kind.name, self.path, first_line, lines, self.dtype.str, tok))
                else:
                    pending.append(pool.submit(_encode_chunk, self.kind.name, self.path, first_line,
                                               lines, self.dtype.str))
                    while len(pending) > 2 * num_proc:
                        write(pending.popleft().result())
                bar.update(nbytes)
            while pending:
                write(pending.popleft().result())
            for f in outs.values():
                f.close()
            n = None
            for s in streams:
                lens = np.concatenate(lengths[s]) if lengths[s] else np.zeros(0, np.int64)
                n = len(lens)
                offsets = np.zeros(n + 1, np.int64)
                np.cumsum(lens, out=offsets[1:])
                final = self._file(self.dir, f"{s}.offsets.npy")
                tmp[final] = f"{final}.tmp{os.getpid()}.npy"
                np.save(tmp[final], offsets)
                if firsts[s]:
                    final = self._file(self.dir, f"{s}.first.npy")
                    tmp[final] = f"{final}.tmp{os.getpid()}.npy"
                    np.save(tmp[final], np.concatenate(firsts[s]))
            if not n:
                raise data_error(self.path, None, "at least one JSON line", "only blank lines",
                                 "check the file was fully written")
            for final, t in tmp.items():
                os.replace(t, final)
        except BaseException:
            for f in outs.values():
                f.close()
            for t in tmp.values():
                if os.path.exists(t):
                    os.remove(t)
            raise
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if num_proc > 1:
                gc.unfreeze()
        meta = dict(sig, version=FORMAT_VERSION, kind=self.kind.name, dtype=self.dtype.str,
                    num_samples=n, num_tokens=n_tokens, build_seconds=round(time.time() - t0, 2))
        _atomic_write_text(self._file(self.dir, "meta.json"), json.dumps(meta, indent=1))

    def _evict_stale(self, sig):
        """Remove caches of earlier versions of the same file (same tokenizer or not)."""
        prefix = f"{os.path.basename(self.path)}.{self.kind.name}."
        try:
            names = os.listdir(self.dir)
        except OSError:
            return
        for name in names:
            if not (name.startswith(prefix) and name.endswith(".meta.json")) or name.startswith(self.stem):
                continue
            try:
                with open(os.path.join(self.dir, name)) as f:
                    old = json.load(f)
                if old.get("source") != sig["source"] or (old.get("size"), old.get("mtime_ns")) == (
                        sig["size"], sig["mtime_ns"]):
                    continue  # another file, or the same file with another tokenizer
                old_stem = name[: -len(".meta.json")]
                for other in names:
                    if other.startswith(old_stem + "."):
                        os.remove(os.path.join(self.dir, other))
            except (OSError, ValueError):
                pass

    # -- reading ------------------------------------------------------------------------------
    def array(self, stream, part):
        """Memory-mapped arrays, opened lazily so that pickling (DataLoader workers) stays cheap."""
        a = self._arrays.get((stream, part))
        if a is None:
            f = self._file(self.dir, f"{stream}.{part}")
            if part.endswith(".npy"):
                a = np.load(f, mmap_mode="r")
            else:
                dtype = self.dtype if part == "tokens.bin" else np.uint8
                a = np.memmap(f, dtype=dtype, mode="r")
            self._arrays[(stream, part)] = a
        return a

    def sequence_lengths(self, stream):
        return np.diff(np.asarray(self.array(stream, "offsets.npy")))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arrays"] = {}
        return state


def _atomic_write_text(path, text):
    t = f"{path}.tmp{os.getpid()}"
    with open(t, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(t, path)


def _read_chunks(path):
    """Yield (first line number, [raw lines], bytes) of about _CHUNK_BYTES each."""
    with open(path, "rb") as f:
        lines, nbytes, first = [], 0, 1
        for lineno, raw in enumerate(f, 1):
            lines.append(raw)
            nbytes += len(raw)
            if nbytes >= _CHUNK_BYTES or len(lines) >= _CHUNK_LINES:
                yield first, lines, nbytes
                lines, nbytes, first = [], 0, lineno + 1
        if lines:
            yield first, lines, nbytes


def _load_tokenizer(tokenizer):
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(os.fspath(tokenizer))
    return tokenizer


def _check_max_length(max_length):
    if not isinstance(max_length, (int, np.integer)) or max_length < 2:
        raise ValueError(f"max_length must be an int >= 2 (one input and one target), got {max_length!r}")
    return int(max_length)


def _long(a):
    return torch.from_numpy(np.asarray(a, dtype=np.int64))


# ----------------------------------------------------------------------------------------------
# Data sets

class _Base(Dataset):
    num_truncated = 0
    num_dropped = 0

    def __len__(self):
        return len(self.lengths)

    def summary(self):
        name = os.path.basename(self.cache.path)
        parts = [f"{name}: {len(self)} samples"]
        if self.num_truncated:
            parts.append(f"{self.num_truncated} truncated to max_length={self.max_length}")
        if self.num_dropped:
            parts.append(f"{self.num_dropped} dropped (no target token left within max_length)")
        return ", ".join(parts)

    def _report(self, verbose):
        if verbose and (self.num_truncated or self.num_dropped) and _is_rank0():
            print(self.summary(), file=sys.stderr, flush=True)


class PretrainDataset(_Base):
    """{"text"} lines -> (X, Y, loss_mask), unpadded: ids = [bos] text [eos] cut to max_length."""

    def __init__(self, data_path, tokenizer, max_length=512, *, cache_dir=None, num_proc=None,
                 verbose=True):
        tokenizer = _load_tokenizer(tokenizer)
        self.max_length = _check_max_length(max_length)
        self.cache = TokenCache(data_path, tokenizer, PRETRAIN, cache_dir, num_proc)
        full = self.cache.sequence_lengths("text")
        self.num_truncated = int((full > self.max_length).sum())
        self.lengths = np.minimum(full, self.max_length) - 1
        self._report(verbose)

    def __getitem__(self, i):
        i = range(len(self))[i]  # negative indices; IndexError past the end
        start = int(self.cache.array("text", "offsets.npy")[i])
        ids = _long(self.cache.array("text", "tokens.bin")[start:start + self.lengths[i] + 1])
        return ids[:-1], ids[1:], torch.ones(len(ids) - 1, dtype=torch.long)


class PackedPretrainDataset(_Base):
    """{"text"} lines packed: all documents ([bos] text [eos] ...) in one token stream, cut into rows.

    Row r holds stream tokens [r*L, r*L + L] (L = max_length): X = the first L, Y = the last L, so
    consecutive rows share one token and every token after the first is a target exactly once. The
    <|im_start|> opening a document is not a target (nothing predicts it, as in PretrainDataset), and
    the last row is padded (pad_id, mask 0) rather than dropped. Attention crosses document
    boundaries, as usual for GPT pretraining.
    """

    def __init__(self, data_path, tokenizer, max_length=512, *, cache_dir=None, num_proc=None,
                 verbose=True):
        tokenizer = _load_tokenizer(tokenizer)
        self.max_length = _check_max_length(max_length)
        self.cache = TokenCache(data_path, tokenizer, PRETRAIN, cache_dir, num_proc)
        self.bos_id = tokenizer.bos_token_id
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else tokenizer.eos_token_id
        self.num_tokens = int(self.cache.meta["num_tokens"]["text"])
        rows = -(-(self.num_tokens - 1) // self.max_length)
        self.lengths = np.full(rows, self.max_length, dtype=np.int64)

    def __getitem__(self, r):
        if r < 0:
            r += len(self)
        if not 0 <= r < len(self):
            raise IndexError(r)
        L = self.max_length
        start = r * L
        tokens = self.cache.array("text", "tokens.bin")
        row = np.full(L + 1, self.pad_id, dtype=np.int64)
        chunk = tokens[start:start + L + 1]
        row[:len(chunk)] = chunk
        mask = np.zeros(L, dtype=np.int64)
        mask[:len(chunk) - 1] = 1
        offsets = self.cache.array("text", "offsets.npy")
        lo, hi = np.searchsorted(offsets, [start + 1, start + L + 1])
        mask[np.asarray(offsets[lo:hi]) - (start + 1)] = 0  # targets that open a new document
        row = torch.from_numpy(row)
        return row[:-1], row[1:], torch.from_numpy(mask)


class _ChatBase(_Base):
    def _select(self, streams, tokenizer, data_path, kind, cache_dir, num_proc):
        """Per stream: length kept and whether a target survives truncation; keep samples where all do."""
        self.cache = TokenCache(data_path, tokenizer, kind, cache_dir, num_proc)
        L = self.max_length
        keep, truncated, kept_len = None, None, []
        for s in streams:
            full = self.cache.sequence_lengths(s)
            first = np.load(self.cache._file(self.cache.dir, f"{s}.first.npy"))
            ok = first < L  # position of the first target token must fit in the kept ids
            keep = ok if keep is None else keep & ok
            tr = full > L
            truncated = tr if truncated is None else truncated | tr
            kept_len.append(np.minimum(full, L))
        self.index = np.flatnonzero(keep)
        self.num_dropped = int((~keep).sum())
        self.num_truncated = int(truncated.sum())
        self._kept_len = [k[self.index] for k in kept_len]
        # the collate pads every stream of an item to the longest, so that is an item's length
        self.lengths = np.maximum.reduce(self._kept_len) - 1
        if len(self.index) == 0:
            raise data_error(data_path, None, f"samples with an assistant token within max_length="
                             f"{L}", "none", "raise max_length (--max_seq_len)")

    def _item(self, stream, j, n):
        start = int(self.cache.array(stream, "offsets.npy")[j])
        ids = _long(self.cache.array(stream, "tokens.bin")[start:start + n])
        mask = _long(self.cache.array(stream, "mask.bin")[start + 1:start + n])
        return ids[:-1], ids[1:], mask


class SFTDataset(_ChatBase):
    """{"conversations"} lines -> (X, Y, loss_mask), unpadded; loss_mask[i] = 1 iff Y[i] is an
    assistant content token or the <|im_end|> closing an assistant turn."""

    def __init__(self, jsonl_path, tokenizer, max_length=512, *, cache_dir=None, num_proc=None,
                 verbose=True):
        tokenizer = _load_tokenizer(tokenizer)
        self.max_length = _check_max_length(max_length)
        self._select(("conversations",), tokenizer, jsonl_path, SFT, cache_dir, num_proc)
        self._report(verbose)

    def __getitem__(self, i):
        return self._item("conversations", int(self.index[i]), int(self._kept_len[0][i]))


class DPODataset(_ChatBase):
    """{"chosen", "rejected"} lines -> dict of unpadded x/y/mask for both, plus the item's index
    (stable across epochs and ranks: a key for cached reference log-probs)."""

    def __init__(self, file_path, tokenizer, max_length=1024, *, cache_dir=None, num_proc=None,
                 verbose=True):
        tokenizer = _load_tokenizer(tokenizer)
        self.max_length = _check_max_length(max_length)
        self._select(("chosen", "rejected"), tokenizer, file_path, DPO, cache_dir, num_proc)
        self._report(verbose)

    def __getitem__(self, i):
        j = int(self.index[i])
        xc, yc, mc = self._item("chosen", j, int(self._kept_len[0][i]))
        xr, yr, mr = self._item("rejected", j, int(self._kept_len[1][i]))
        return dict(x_chosen=xc, y_chosen=yc, mask_chosen=mc,
                    x_rejected=xr, y_rejected=yr, mask_rejected=mr, index=int(i))


# ----------------------------------------------------------------------------------------------
# Batching: pad to the batch's longest item, not to max_length

def _pad(seqs, T, value):
    out = torch.full((len(seqs), T), value, dtype=torch.long)
    for b, s in enumerate(seqs):
        out[b, :len(s)] = s
    return out


def pad_collate(pad_id):
    """collate_fn for (X, Y, loss_mask) items: pads (X=pad_id, Y=pad_id, mask=0) to the longest."""

    def collate(batch):
        T = max(len(x) for x, _, _ in batch)
        xs, ys, ms = zip(*batch)
        return _pad(xs, T, pad_id), _pad(ys, T, pad_id), _pad(ms, T, 0)

    return collate


def dpo_collate(pad_id):
    """collate_fn for DPO dicts: chosen and rejected padded to one common length T -> (B, T) each."""

    def collate(batch):
        T = max(max(len(d["x_chosen"]), len(d["x_rejected"])) for d in batch)
        out = {}
        for side in ("chosen", "rejected"):
            out[f"x_{side}"] = _pad([d[f"x_{side}"] for d in batch], T, pad_id)
            out[f"y_{side}"] = _pad([d[f"y_{side}"] for d in batch], T, pad_id)
            out[f"mask_{side}"] = _pad([d[f"mask_{side}"] for d in batch], T, 0)
        out["index"] = torch.tensor([int(d["index"]) for d in batch], dtype=torch.long)
        return out

    return collate


__all__ = ["DataError", "PretrainDataset", "PackedPretrainDataset", "SFTDataset", "DPODataset",
           "pad_collate", "dpo_collate", "TokenCache", "tokenizer_fingerprint"]
