"""The data sets (pretrain, packed pretrain, SFT, DPO, reward pairs) on the token cache, and their collates.

Loss masks (SFT and DPO): the conversation is rendered with the tokenizer's own chat template, in which
each assistant turn must appear as "<|im_start|>assistant\\n{content}<|im_end|>"; the rendering is cut
there and tokenized piece by piece, so the targets are exactly each answer's content tokens and its
closing <|im_end|> (never system/user turns, the header or padding), as the model generates them at
inference. With tool calling, an assistant turn's content is followed by its <tool_call> blocks, which
are targets too; the tool signatures (system turn) and the tool results (<tool_response> blocks, in a
user turn) never are. Tokens after the last target are dropped. A sample with no target left within max_length is
dropped (`num_dropped`), truncated ones are counted (`num_truncated`): `summary()`, printed by rank 0.
The data files and their checks are dataset/sources.py; tokenizing and the cache, dataset/token_cache.py;
streaming (--streaming 1), dataset/streaming.py.
"""
import os
import sys

import numpy as np
import torch
from torch.utils.data import Dataset

from dataset.sources import DPO, PRETRAIN, RLAIF, SFT, data_error
from dataset.token_cache import TokenCache, _is_rank0


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

    def _open(self, data_path, tokenizer, max_length, kind, cache_dir, num_proc):
        tokenizer = _load_tokenizer(tokenizer)
        self.max_length = _check_max_length(max_length)
        self.cache = TokenCache(data_path, tokenizer, kind, cache_dir, num_proc)
        return tokenizer

    def _report(self, verbose):
        if verbose and (self.num_truncated or self.num_dropped) and _is_rank0():
            print(self.summary(), file=sys.stderr, flush=True)


class PretrainDataset(_Base):
    """{"text"} lines -> (X, Y, loss_mask), unpadded: ids = [bos] text [eos] cut to max_length."""

    def __init__(self, data_path, tokenizer, max_length=512, *, cache_dir=None, num_proc=None,
                 verbose=True):
        self._open(data_path, tokenizer, max_length, PRETRAIN, cache_dir, num_proc)
        full = self.cache.column("text_ids").lengths()
        self.num_truncated = int((full > self.max_length).sum())
        self.lengths = np.minimum(full, self.max_length) - 1
        self._report(verbose)

    def __getitem__(self, i):
        i = range(len(self))[i]  # negative indices; IndexError past the end
        ids = _long(self.cache.column("text_ids").row(i)[:self.lengths[i] + 1])
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
        tokenizer = self._open(data_path, tokenizer, max_length, PRETRAIN, cache_dir, num_proc)
        self.bos_id = tokenizer.bos_token_id
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else tokenizer.eos_token_id
        self.num_tokens = self.cache.column("text_ids").total
        rows = -(-(self.num_tokens - 1) // self.max_length)
        self.lengths = np.full(rows, self.max_length, dtype=np.int64)

    def __getitem__(self, r):
        r = range(len(self))[r]  # negative indices; IndexError past the end
        L = self.max_length
        start = r * L
        col = self.cache.column("text_ids")
        row = np.full(L + 1, self.pad_id, dtype=np.int64)
        chunk = col.span(start, start + L + 1)
        row[:len(chunk)] = chunk
        mask = np.zeros(L, dtype=np.int64)
        mask[:len(chunk) - 1] = 1
        offsets = col.starts()
        lo, hi = np.searchsorted(offsets, [start + 1, start + L + 1])
        mask[offsets[lo:hi] - (start + 1)] = 0  # targets that open a new document
        row = torch.from_numpy(row)
        return row[:-1], row[1:], torch.from_numpy(mask)


class _ChatBase(_Base):
    def _select(self, streams, tokenizer, max_length, data_path, kind, cache_dir, num_proc):
        """Per stream: length kept and whether a target survives truncation; keep samples where all do."""
        self._open(data_path, tokenizer, max_length, kind, cache_dir, num_proc)
        L = self.max_length
        keep, truncated, kept_len = None, None, []
        for s in streams:
            full = self.cache.column(f"{s}_ids").lengths()
            ok = self.cache.array(f"{s}_first") < L  # the first target must fit in the kept ids
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
        ids = _long(self.cache.column(f"{stream}_ids").row(j)[:n])
        mask = _long(self.cache.column(f"{stream}_mask").row(j)[1:n])
        return ids[:-1], ids[1:], mask


class SFTDataset(_ChatBase):
    """{"conversations"} lines -> (X, Y, loss_mask), unpadded; loss_mask[i] = 1 iff Y[i] is an
    assistant content token (tool-call blocks included) or the <|im_end|> closing an assistant turn."""

    def __init__(self, jsonl_path, tokenizer, max_length=512, *, cache_dir=None, num_proc=None,
                 verbose=True):
        self._select(("conversations",), tokenizer, max_length, jsonl_path, SFT, cache_dir, num_proc)
        self._report(verbose)

    def __getitem__(self, i):
        return self._item("conversations", int(self.index[i]), int(self._kept_len[0][i]))


class DPODataset(_ChatBase):
    """{"chosen", "rejected"} lines -> dict of unpadded x/y/mask for both, plus the item's index
    (stable across epochs and ranks: a key for cached reference log-probs)."""

    def __init__(self, file_path, tokenizer, max_length=1024, *, cache_dir=None, num_proc=None,
                 verbose=True):
        self._select(("chosen", "rejected"), tokenizer, max_length, file_path, DPO, cache_dir, num_proc)
        self._report(verbose)

    def __getitem__(self, i):
        j = int(self.index[i])
        xc, yc, mc = self._item("chosen", j, int(self._kept_len[0][i]))
        xr, yr, mr = self._item("rejected", j, int(self._kept_len[1][i]))
        return dict(x_chosen=xc, y_chosen=yc, mask_chosen=mc,
                    x_rejected=xr, y_rejected=yr, mask_rejected=mr, index=int(i))


def template_tail(tokenizer):
    """The token ids the chat template writes after a conversation's last <|im_end|> ([] if nothing): what a
    reward model reads is the whole rendering (TRL's convention, and what apply_chat_template gives a user),
    scored at its last token, for MiniMind's template the newline after the last <|im_end|>."""
    from dataset.token_cache import IM_END
    text = tokenizer.apply_chat_template([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
                                         tokenize=False)
    tail = text.rsplit(IM_END, 1)[1] if IM_END in text else ""
    return tokenizer(tail, add_special_tokens=False)["input_ids"] if tail else []


class RewardDataset(DPODataset):
    """DPO's {"chosen", "rejected"} lines (and optional "margin") for a reward model: dict(x_chosen,
    x_rejected, margin, index), each conversation whole as the chat template renders it: the cached ids
    (which stop at the last <|im_end|>) and template_tail() after them. A pair that does not fit
    max_length is left out, not cut (TRL's rule: a cut conversation hides the end the score is read at);
    they are counted in num_dropped."""

    def __init__(self, file_path, tokenizer, max_length=1024, *, cache_dir=None, num_proc=None, verbose=True):
        tokenizer = _load_tokenizer(tokenizer)
        super().__init__(file_path, tokenizer, max_length, cache_dir=cache_dir, num_proc=num_proc, verbose=False)
        self.tail = _long(template_tail(tokenizer))
        full = [self.cache.column(f"{s}_ids").lengths()[self.index] + len(self.tail) for s in ("chosen", "rejected")]
        keep = (full[0] <= self.max_length) & (full[1] <= self.max_length)
        self.index = self.index[keep]
        self.lengths = np.maximum(full[0], full[1])[keep]
        self.num_dropped, self.num_truncated = len(self.cache.data) - len(self.index), 0
        if len(self.index) == 0:
            raise data_error(file_path, None, f"pairs whose conversations fit max_length={self.max_length} tokens "
                             "whole", f"none (the shortest needs {int(np.maximum(*full).min())})",
                             "raise --max_seq_len")
        self.margins = self.cache.array("margin")[self.index]
        self._report(verbose)

    def summary(self):
        text = f"{os.path.basename(self.cache.path)}: {len(self)} pairs"
        if self.num_dropped:
            text += (f", {self.num_dropped} left out (a conversation longer than max_length={self.max_length} "
                     "tokens: a reward model reads it whole)")
        return text

    def __getitem__(self, i):
        j = int(self.index[i])
        x = {s: torch.cat([_long(self.cache.column(f"{s}_ids").row(j)), self.tail]) for s in ("chosen", "rejected")}
        return dict(x_chosen=x["chosen"], x_rejected=x["rejected"], margin=float(self.margins[i]), index=int(i))


class PromptDataset(_Base):
    """RLAIF {"conversations"} lines -> dict(prompt_ids, fields, index, messages): the prompt as the chat
    template renders it with the generation prompt (its last assistant turn dropped), cut to its LAST
    max_length tokens as MiniMind cuts it (the question is at the end); `fields` are the line's other fields
    (a dict), for the reward functions; `messages` the conversation rendered (the system message's tools
    decoded), for a rollout that renders further turns. Items go to the RL stages as they are
    (prompt_collate), unpadded."""

    def __init__(self, jsonl_path, tokenizer, max_length=512, *, cache_dir=None, num_proc=None, verbose=True):
        self._open(jsonl_path, tokenizer, max(int(max_length), 2), RLAIF, cache_dir, num_proc)
        full = self.cache.column("prompt_ids").lengths()
        self.num_truncated = int((full > self.max_length).sum())
        self.lengths = np.minimum(full, self.max_length)
        self._report(verbose)

    def summary(self):
        text = super().summary()
        return text.replace("truncated to", "prompts cut to their last") + (" tokens" if self.num_truncated else "")

    def __getitem__(self, i):
        import json
        ids = _long(self.cache.column("prompt_ids").row(int(i))[-self.max_length:])
        table = self.cache.data.data.table
        return dict(prompt_ids=ids, fields=json.loads(table.column("fields")[int(i)].as_py()), index=int(i),
                    messages=json.loads(table.column("messages")[int(i)].as_py()))


def prompt_collate(batch):
    """collate_fn for PromptDataset: the items as a list (an RL stage generates from them)."""
    return list(batch)


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


def reward_collate(pad_id):
    """collate_fn for RewardDataset dicts: input_ids (2B, T), the B chosen conversations then the B rejected,
    right-padded with pad_id (the reward model reads each row at its last non-pad token); margin (B,)."""

    def collate(batch):
        seqs = [d["x_chosen"] for d in batch] + [d["x_rejected"] for d in batch]
        return {"input_ids": _pad(seqs, max(len(x) for x in seqs), pad_id),
                "margin": torch.tensor([d["margin"] for d in batch], dtype=torch.float32),
                "index": torch.tensor([int(d["index"]) for d in batch], dtype=torch.long)}

    return collate


__all__ = ["PretrainDataset", "PackedPretrainDataset", "SFTDataset", "DPODataset", "RewardDataset", "pad_collate",
           "dpo_collate", "reward_collate"]
