"""The reasoning SFT stage of train_distill_reason.py: SFT with the think/answer tags weighted.

MiniMind2 multiplies the loss of every token whose id is one of the ids of '<think>', '</think>',
'<answer>', '</answer>' by 10: with its byte-level BPE those are pieces such as '<', '>', '</',
'th', 'ink', so any '<' or 'th' anywhere gets the weight, in the prompt as well (outside the loss
mask), and it divides by the unweighted token count. Here:

  * the tags are found as character spans in the text of each assistant target (the rendered
    conversation's training targets), and exactly the target tokens whose text overlaps a tag get
    --tag_weight; every other target token weighs 1, every non-target 0;
  * the loss is sum(w * CE) / sum(w), through the chunked fused head (trainer/fused_loss.py).

The weights are computed per item on top of SFTDataset's public items (X, Y, loss_mask): a token's
text is its bytes in the byte-level vocabulary, so the concatenated bytes of a run of targets are
exactly that stretch of the rendered text, and a tag's span maps back to the tokens it touches.
"""
import math
import random

import numpy as np
import torch
from torch.utils.data import Dataset

from dataset.token_cache import EMPTY_THINK as EMPTY_THINK_TEXT
from trainer.bpb import token_bytes_table
from trainer.checkpoint import unwrap
from model.reasoning import is_well_formed, tag_spans
from trainer.stages import Stage, add_aux_loss


def _runs(mask):
    """[(start, end)] of the runs of 1 in a 0/1 vector."""
    m = np.concatenate([[0], np.asarray(mask, dtype=np.int8) != 0, [0]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def target_runs(y, mask, table):
    """Per run of targets: (start, end, its text as bytes, byte offset of each token in it)."""
    y = np.asarray(y)
    out = []
    for a, b in _runs(mask):
        pieces = [table[t] for t in y[a:b]]
        starts = np.cumsum([0] + [len(p) for p in pieces])
        out.append((a, b, b"".join(pieces), starts))
    return out


def tag_weights(y, mask, table, tag_weight):
    """Float weights for targets y under loss mask: tag_weight on target tokens that spell a tag
    (their bytes overlap the tag's span in the target text), 1 on other targets, 0 elsewhere."""
    w = (np.asarray(mask) != 0).astype(np.float32)
    for a, b, text, starts in target_runs(y, mask, table):
        # the tags are ASCII, so their spans in the decoded text and in its bytes coincide
        s = text.decode("latin-1")
        for lo, hi in tag_spans(s):
            first = np.searchsorted(starts, lo, side="right") - 1     # token holding the tag's first byte
            last = np.searchsorted(starts, hi, side="left") - 1       # token holding its last byte
            w[a + first:a + last + 1] = tag_weight
    return torch.from_numpy(w)


def well_formed_turns(y, mask, table, eos_bytes):
    """Whether every assistant target (a run of targets, less its closing <|im_end|>) is well formed."""
    runs = target_runs(y, mask, table)
    ok = bool(runs)
    for _, _, text, _ in runs:
        if eos_bytes and text.endswith(eos_bytes):
            text = text[:-len(eos_bytes)]
        ok = ok and is_well_formed(text.decode("utf-8", errors="replace"))
    return ok


EMPTY_THINK = EMPTY_THINK_TEXT.encode()  # what MiniMind's 2025-10 template puts before a direct answer


def empty_think_tokens(y, mask, table):
    """[(start, end)] of the target positions in y whose tokens spell exactly one EMPTY_THINK; a block
    whose edges fall inside a token (no tokenizer in this project does that) is left alone."""
    spans = []
    for a, _, text, starts in target_runs(y, mask, table):
        at = text.find(EMPTY_THINK)
        while at >= 0:
            lo, hi = np.searchsorted(starts, [at, at + len(EMPTY_THINK)])
            if lo < len(starts) and hi < len(starts) and starts[lo] == at and starts[hi] == at + len(EMPTY_THINK):
                spans.append((a + int(lo), a + int(hi)))
            at = text.find(EMPTY_THINK, at + len(EMPTY_THINK))
    return spans


def drop_positions(x, y, m, spans):
    """(x, y, m) of the sequence with the target positions `spans` of y cut out (and so of x one later)."""
    ids = torch.cat([x, y[-1:]])
    full_mask = torch.cat([m.new_zeros(1), m])
    keep = torch.ones(len(ids), dtype=torch.bool)
    for a, b in spans:
        keep[a + 1:b + 1] = False  # target position k of y is position k + 1 of the whole sequence
    ids, full_mask = ids[keep], full_mask[keep]
    return ids[:-1], ids[1:], full_mask[1:]


class TagWeighted(Dataset):
    """An SFT data set's (X, Y, loss_mask) items, plus the tag weights: (X, Y, loss_mask, weights).

    empty_think_ratio (MiniMind 2025-10's `post_processing_chat`): an answer that opens with the empty
    think block `<think>\n\n</think>\n\n` (a direct answer, adaptive thinking's "off" side) keeps it in
    this share of the samples and has it cut out in the others, so the model learns to answer directly
    both after the block (the template's thinking-off prompt) and without it. MiniMind draws anew at
    every read; here sample i's draw is fixed by (seed, i), so a resumed run sees the same data.
    None leaves every sample as it is.
    """

    def __init__(self, ds, tokenizer, tag_weight, empty_think_ratio=None, seed=0):
        self.ds, self.tag_weight = ds, float(tag_weight)
        self.empty_think_ratio, self.seed = empty_think_ratio, int(seed)
        self.lengths = ds.lengths  # an upper bound once a block is cut: only batching reads it
        self.table = token_bytes_table(tokenizer)
        eos = tokenizer.eos_token
        self.eos_bytes = eos.encode("utf-8") if eos else b""

    def __len__(self):
        return len(self.ds)

    def keeps_empty_think(self, i):
        return random.Random(self.seed * 1_000_003 + i).random() <= self.empty_think_ratio

    def __getitem__(self, i):
        x, y, m = self.ds[i]
        if self.empty_think_ratio is not None and not self.keeps_empty_think(i):
            spans = empty_think_tokens(y.numpy(), m.numpy(), self.table)
            if spans:
                x, y, m = drop_positions(x, y, m, spans)
        return x, y, m, tag_weights(y.numpy(), m.numpy(), self.table, self.tag_weight)

    def count_empty_think(self):
        """(samples whose answers hold an empty think block, how many of them keep it)."""
        n = kept = 0
        for i in range(len(self.ds)):
            _, y, m = self.ds[i]
            if empty_think_tokens(y.numpy(), m.numpy(), self.table):
                n += 1
                kept += self.empty_think_ratio is None or self.keeps_empty_think(i)
        return n, kept

    def count_malformed(self):
        """Samples whose assistant turns are not all <think>...</think><answer>...</answer> (direct
        answers, with an empty think block, among them)."""
        bad = 0
        for i in range(len(self.ds)):
            _, y, m = self.ds[i]
            bad += not well_formed_turns(y.numpy(), m.numpy(), self.table, self.eos_bytes)
        return bad


def weighted_collate(pad_id):
    """(X, Y, mask, weights) items padded to the longest: X, Y with pad_id, mask and weights with 0."""

    def collate(batch):
        T = max(len(it[0]) for it in batch)
        out = [torch.full((len(batch), T), pad_id, dtype=torch.long) for _ in range(2)]
        out.append(torch.zeros((len(batch), T), dtype=torch.long))
        out.append(torch.zeros((len(batch), T), dtype=torch.float32))
        for b, it in enumerate(batch):
            for k in range(4):
                out[k][b, :len(it[k])] = it[k]
        return tuple(out)

    return collate


class ReasonStage(Stage):
    """sum(w * CE) / sum(w) with the tag weights; validation also reports the plain CE."""
    name = "reason"
    title = "Distill-Reasoning"
    eval_keys = ("wce_sum", "w_sum", "ce_sum", "tokens")

    def __init__(self, tag_weight, empty_think_ratio=None):
        self.tag_weight, self.empty_think_ratio = float(tag_weight), empty_think_ratio

    def _head(self, model, batch):
        X, Y, mask, w = batch
        out = model(X, skip_logits=True)
        return out, out.hidden_states[-1], unwrap(model).lm_head.weight, Y, mask, w

    def loss(self, model, batch):
        from trainer.fused_loss import fused_weighted_ce_sum
        out, h, W, Y, _, w = self._head(model, batch)
        s, n = fused_weighted_ce_sum(h, W, Y, w)
        return add_aux_loss(s / n.clamp(min=1e-12), out)

    def eval_sums(self, model, batch):
        from trainer.fused_loss import fused_masked_ce_sum, fused_weighted_ce_sum
        _, h, W, Y, mask, w = self._head(model, batch)
        ws, wn = fused_weighted_ce_sum(h, W, Y, w)
        s, n = fused_masked_ce_sum(h, W, Y, mask)
        return {"wce_sum": ws.double(), "w_sum": wn.double(), "ce_sum": s.double(), "tokens": n.double()}

    def eval_metrics(self, sums):
        ce = sums["ce_sum"] / max(sums["tokens"], 1.0)
        return {"val/loss": sums["wce_sum"] / max(sums["w_sum"], 1e-12), "val/ce": ce,
                "val/ppl": math.exp(min(ce, 50.0))}

    def fingerprint(self):
        return {"tag_weight": self.tag_weight, "empty_think_ratio": self.empty_think_ratio}


__all__ = ["TagWeighted", "ReasonStage", "weighted_collate", "tag_weights",
           "token_bytes_table", "well_formed_turns"]


# -- the script (train_distill_reason.py, and train_reason.py: the same under MiniMind's 2025-10 name) --
def parse_args(argv=None, prog=None):
    from trainer.args import make_parser, nonneg_float, unit_float
    p = make_parser("MiniMind Distill Reasoning", stage="reason", epochs=1, batch_size=8, learning_rate=1e-6,
                    accumulation_steps=1, max_seq_len=1024, data_path="./dataset/r1_mix_1024.jsonl",
                    from_weight="rlhf", save_weight="reason", wandb_project="MiniMind-Full-SFT",
                    log_interval=1, save_interval=50)
    p.add_argument("--tag_weight", type=nonneg_float, default=10.0,
                   help="loss weight of the target tokens spelling <think> </think> <answer> </answer> "
                        "(other answer tokens weigh 1; default %(default)s, as MiniMind2)")
    p.add_argument("--empty_think_ratio", type=unit_float, default=0.05,
                   help="share of the direct answers (opening with an empty <think>\\n\\n</think>\\n\\n block) "
                        "that keep the block; the others are trained without it (default %(default)s, as "
                        "MiniMind's 2025-10 SFT data processing; which samples keep it is fixed by --seed)")
    if prog:
        p.prog = prog
    return p.parse_args(argv)


def main(argv=None, prog=None):
    """train_distill_reason.py (MiniMind2's name) and train_reason.py (its 2025-10 one): one script, two names."""
    args = parse_args(argv, prog)
    from dataset.lm_dataset import SFTDataset
    from trainer.loop import Trainer
    with Trainer(args) as trainer:
        model = trainer.build_model()
        def tagged(path):
            return TagWeighted(trainer.dataset(SFTDataset, path, max_length=args.max_seq_len), trainer.tokenizer,
                               args.tag_weight, args.empty_think_ratio, args.seed)

        train_ds = tagged(args.data_path)
        if trainer.is_main:
            bad = train_ds.count_malformed()
            direct, kept = train_ds.count_empty_think()
            trainer.log(f"{args.data_path}: {len(train_ds)} samples, {bad} without well-formed "
                        "<think>...</think><answer>...</answer> in every answer"
                        + (" (trained on as they are; their tags, if any, still weighted)" if bad else "")
                        + (f"; {direct} direct answers after an empty think block, which {kept} keep and "
                           f"{direct - kept} are trained without (--empty_think_ratio {args.empty_think_ratio})"
                           if direct else ""))
        val_ds = tagged(args.val_data_path) if args.val_data_path else None
        trainer.fit(model, train_ds, weighted_collate(trainer.pad_id), ReasonStage(args.tag_weight, args.empty_think_ratio), val_ds)
