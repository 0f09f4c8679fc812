"""Batch order: shuffled, length-grouped, sharded across ranks, resumable.

The whole order is a pure function of (seed, epoch, world size, batch size), so every rank
computes the same global plan without talking to the others, `set_epoch` reshuffles like
DistributedSampler, and a resumed run regenerates the plan and skips what it already did.

Length grouping: random megabatches of `group` global batches are sorted by length and cut into
batches, so each batch holds similar lengths and pads little once collated to its longest
item; the batches are then shuffled so long and short ones alternate through the epoch.

--streaming 1 (StreamSampler): the data set is an endless, resumable stream (dataset/streaming.py);
an epoch is the number of batches one pass is estimated to give, and its batches are simply the
stream's next ones, read in the training process.
"""
import itertools

import numpy as np
import torch


class LengthGroupedBatchSampler:
    def __init__(self, lengths, batch_size, rank=0, world_size=1, seed=0,
                 group_by_length=True, megabatch_mult=64):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.seed = int(seed)
        self.group_by_length = bool(group_by_length)
        self.megabatch_mult = int(megabatch_mult)
        self.epoch = 0
        self.start = 0  # batches of this epoch to skip (resume)

    def set_epoch(self, epoch, start_batch=0):
        self.epoch, self.start = int(epoch), int(start_batch)

    def global_batches(self):
        """This epoch's batches for all ranks: a list of (world_size, <=batch_size) index arrays."""
        n, W, B = len(self.lengths), self.world_size, self.batch_size
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(n, generator=g).numpy()
        if n % W:  # like DistributedSampler: repeat a few samples so every rank gets as many
            perm = np.concatenate([perm, perm[: W - n % W]])
        gb = B * W
        if self.group_by_length:
            mega = gb * self.megabatch_mult
            chunks = []
            for s in range(0, len(perm), mega):
                m = perm[s:s + mega]
                # stable sort, longest first; ties keep their random order
                chunks.append(m[np.argsort(-self.lengths[m], kind="stable")])
            perm = np.concatenate(chunks) if chunks else perm
        batches = [perm[s:s + gb] for s in range(0, len(perm), gb)]
        if self.group_by_length and len(batches) > 1:
            order = torch.randperm(len(batches), generator=g).numpy()
            batches = [batches[i] for i in order]
        # rank r takes every W-th item of a global batch: with sorted lengths, all ranks
        # get equally long batches (no rank waits for a longer one at the gradient sync).
        return [b.reshape(-1, W).T for b in batches]  # every batch length is a multiple of W

    def __iter__(self):
        for i, b in enumerate(self.global_batches()):
            if i < self.start:
                continue
            yield b[self.rank].tolist()

    def __len__(self):
        """Batches per rank per epoch (including any skipped at resume)."""
        n = len(self.lengths) + (-len(self.lengths)) % self.world_size
        return -(-n // (self.batch_size * self.world_size))


class ShardedEvalSampler:
    """Validation: each rank takes a disjoint, unpadded, length-sorted share (no repeats)."""

    def __init__(self, lengths, batch_size, rank=0, world_size=1):
        lengths = np.asarray(lengths)
        idx = np.arange(len(lengths))[rank::world_size]
        idx = idx[np.argsort(-lengths[idx], kind="stable")]
        self.batches = [idx[s:s + batch_size].tolist() for s in range(0, len(idx), batch_size)]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


class StreamSampler:
    """The epoch plan of a streaming data set: len(ds) estimated rows per pass -> batches per rank."""

    def __init__(self, ds, batch_size, world_size=1):
        self.batch_size = int(batch_size)
        self.batches = max(1, len(ds) // (self.batch_size * int(world_size)))
        self.start = 0

    def set_epoch(self, epoch, start_batch=0):
        self.start = int(start_batch)  # the stream's position (resume file) says where it is

    def __len__(self):
        return self.batches

    def loader(self, ds, collate):
        """This epoch's remaining batches: the next ones of the stream (no workers: the position is
        this process's)."""
        from torch.utils.data import DataLoader
        return itertools.islice(DataLoader(ds, batch_size=self.batch_size, collate_fn=collate),
                                self.batches - self.start)
