"""--streaming 1: pretraining on shards read while training (corpora larger than one machine's disk).

The shards (a JSONL or Parquet file, or a glob / folder of them) are read as a 🤗 datasets
`IterableDataset`: `IterableDataset.from_generator` over "pieces" (line-aligned byte ranges of the JSONL
files, row groups of the Parquet files), `split_dataset_by_node` so that each rank reads a disjoint set
of pieces, and `.map(batched=True)` tokenizing on the fly. Documents ([bos] text [eos]) are packed into
rows of max_length + 1 tokens exactly as PackedPretrainDataset does (X, Y = the row shifted by one; an
<|im_start|> opening a document is not a target).

What it gives up against the map-style data sets: no length grouping and no shuffling beyond the order
of the pieces (reshuffled every pass), no exact epoch: an epoch is the number of batches one pass is
estimated to give (tokens per byte of the first MiB of data x the shards' size), the stream itself is
endless and continues into the next epoch; and a bad line stops training when it is reached (with its
file and line), not before the start. Nothing is cached. The position (the iterable's state_dict() and
the tokens not yet in a row) goes into the resume file, so --from_resume 1 continues from the saved row.
"""
import itertools
import os

import numpy as np
import torch

from dataset.lm_dataset import _check_max_length, _load_tokenizer
from dataset.sources import DataError, _parse_line, _pretrain_text, data_error, resolve_sources
from dataset.token_cache import _encode_batch, _is_rank0, hf_datasets

PIECE_BYTES = 64 << 20  # a JSONL file is cut into line-aligned pieces of about this size
SAMPLE_BYTES = 1 << 20  # the head of the data tokenized to estimate the tokens per pass


def _lines_before(path, pos):
    """1-based line number of the line starting at byte `pos` (counted only to report an error)."""
    n = 0
    with open(path, "rb") as f:
        while pos > 0:
            block = f.read(min(pos, 4 << 20))
            n, pos = n + block.count(b"\n"), pos - len(block)
    return n + 1


def _jsonl_texts(path, start, end):
    """(text, bytes) of the documents in [start, end), checked as the map-style data sets do."""
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        while pos < end:
            raw = f.readline()
            if not raw:
                return
            try:  # the line number is counted only when there is something to report
                obj = _parse_line(raw, path, 1 if pos == 0 else None)
                text = None if obj is None else _pretrain_text(obj, path, None)
            except DataError:
                line = _lines_before(path, pos)
                obj = _parse_line(raw, path, line)
                text = _pretrain_text(obj, path, line)
            pos += len(raw)
            if text is not None:
                yield text, len(raw)


def _parquet_texts(path, group, first_row):
    import pyarrow.parquet as pq
    table = pq.ParquetFile(path).read_row_group(group)
    if "text" not in table.column_names:
        raise data_error(path, None, 'a "text" column', f"columns {table.column_names}",
                         'write the documents as a "text" column')
    for k, text in enumerate(table.column("text").to_pylist()):
        yield _pretrain_text({"text": text}, path, first_row + k + 1), 1


def _texts(pieces):
    """The generator behind the IterableDataset: one list entry per piece, so the pieces are its shards."""
    for kind, path, a, b in pieces:
        texts = _jsonl_texts(path, a, b) if kind == "jsonl" else _parquet_texts(path, a, b) \
            if kind == "parquet" else ()
        for text, _ in texts:
            yield {"text": text}


def _tokenize(batch, tok):
    return {"ids": [[tok.bos_token_id, *x, tok.eos_token_id] for x in _encode_batch(tok, batch["text"])]}


def _pieces(sources, world_size):
    """Line-aligned byte ranges of the JSONL files and row groups of the Parquet files, padded with
    empty pieces to a multiple of world_size (so that split_dataset_by_node deals out whole pieces)."""
    import pyarrow.parquet as pq
    pieces = []
    for path, typ in sources:
        if typ == "parquet":
            meta, row = pq.ParquetFile(path).metadata, 0
            for g in range(meta.num_row_groups):
                pieces.append(("parquet", path, g, row))
                row += meta.row_group(g).num_rows
            continue
        size = os.path.getsize(path)
        n = world_size * -(-size // (world_size * PIECE_BYTES))
        cuts = [0]
        with open(path, "rb") as f:
            for k in range(1, n):
                f.seek(max(size * k // n - 1, cuts[-1]))
                f.readline()  # to the start of the next line
                cuts.append(min(f.tell(), size))
        pieces += [("jsonl", path, a, b) for a, b in zip(cuts, cuts[1:] + [size])]
    return pieces + [("none", "", 0, 0)] * (-len(pieces) % world_size)


def _estimate_tokens(sources, tok):
    """Tokens in all shards: tokens per byte (JSONL) or per row (Parquet) of the first ~1 MiB, scaled."""
    import pyarrow.parquet as pq
    total = 0.0
    for typ in ("jsonl", "parquet"):
        files = [p for p, t in sources if t == typ]
        if not files:
            continue
        if typ == "jsonl":
            sample = list(itertools.islice(_jsonl_texts(files[0], 0, SAMPLE_BYTES), 10000))
            units = sum(os.path.getsize(p) for p in files)
        else:
            sample = list(itertools.islice(_parquet_texts(files[0], 0, 0), 1000))
            units = sum(pq.ParquetFile(p).metadata.num_rows for p in files)
        n_tok = sum(len(ids) + 2 for ids in _encode_batch(tok, [t for t, _ in sample]))
        total += n_tok / max(sum(u for _, u in sample), 1) * units
    return int(total)


class StreamingPretrainDataset(torch.utils.data.IterableDataset):
    """{"text"} shards -> endless packed rows (X, Y, loss_mask) of max_length, this rank's share."""
    streaming = True

    def __init__(self, data_path, tokenizer, max_length=512, *, rank=None, world_size=None, verbose=True):
        tok = _load_tokenizer(tokenizer)
        self.max_length = _check_max_length(max_length)
        self.path = os.fspath(data_path)
        self.rank = int(os.environ.get("RANK", 0)) if rank is None else int(rank)
        self.world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else int(world_size)
        sources = resolve_sources(self.path, "a JSONL or Parquet file")
        if any(t == "saved" for _, t in sources):
            raise data_error(self.path, None, "JSONL or Parquet shards to stream", "a saved dataset folder",
                             "train on it without --streaming (it is memory-mapped already)")
        self.bos_id = tok.bos_token_id
        hf = hf_datasets()
        from datasets.distributed import split_dataset_by_node
        self.pieces = _pieces(sources, self.world_size)
        docs = hf.IterableDataset.from_generator(_texts, gen_kwargs={"pieces": self.pieces},
                                                 features=hf.Features({"text": hf.Value("string")}))
        docs = split_dataset_by_node(docs, rank=self.rank, world_size=self.world_size)
        self.docs = docs.map(_tokenize, batched=True, batch_size=64, remove_columns=["text"],
                             fn_kwargs={"tok": tok})
        self.estimated_rows = _estimate_tokens(sources, tok) // self.max_length
        self._buf, self._pass, self._it, self._docs_state = np.zeros(0, np.int64), 0, None, None
        if verbose and _is_rank0():
            print(f"streaming {self.path}: {len(self.pieces)} pieces over {self.world_size} process(es), "
                  f"about {self.estimated_rows} rows of {self.max_length} tokens per pass (estimated)",
                  flush=True)

    def __len__(self):
        """Rows in one pass over all shards (all ranks), estimated."""
        return self.estimated_rows

    def __iter__(self):
        """Rows from where the stream is (it carries on across epochs, and passes over the data)."""
        L = self.max_length
        while True:
            if self._it is None:
                self.docs.set_epoch(self._pass)  # a new order of the pieces each pass
                self._it = iter(self.docs)
            empty = True
            for doc in self._it:
                empty = False
                self._docs_state = self.docs.state_dict()  # the position after this document
                self._buf = np.concatenate([self._buf, np.asarray(doc["ids"], np.int64)])
                while len(self._buf) > L:
                    row, self._buf = torch.from_numpy(self._buf[:L + 1].copy()), self._buf[L:]
                    yield row[:-1], row[1:], (row[1:] != self.bos_id).long()
            self._it, self._docs_state, self._pass = None, None, self._pass + 1
            if empty and not len(self._buf):
                raise DataError(f"{self.path}: expected documents for process {self.rank} of "
                                f"{self.world_size}, got none; use fewer processes or more data")

    def state_dict(self):
        return {"docs": self._docs_state, "buf": self._buf.tolist(), "pass": self._pass}

    def load_state_dict(self, state):
        self._pass, self._buf = int(state["pass"]), np.asarray(state["buf"], np.int64)
        self._docs_state, self._it = state["docs"], None
        self.docs.set_epoch(self._pass)
        if state["docs"] is not None:
            self.docs.load_state_dict(state["docs"])
            self._it = iter(self.docs)
