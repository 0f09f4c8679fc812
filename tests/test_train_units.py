"""Sampler, LR schedule and losses of trainer/: properties checked directly, no training run."""
import math
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainer.losses import dpo_loss, masked_ce, sequence_logps  # noqa: E402
from trainer.sampler import LengthGroupedBatchSampler, ShardedEvalSampler  # noqa: E402
from trainer.schedule import get_lr  # noqa: E402


def epoch_batches(lengths, B, W, seed, epoch, group=True):
    out = []
    for r in range(W):
        s = LengthGroupedBatchSampler(lengths, B, rank=r, world_size=W, seed=seed, group_by_length=group)
        s.set_epoch(epoch)
        out.append(list(s))
    return out


@pytest.mark.parametrize("n,B,W", [(103, 4, 1), (103, 4, 2), (100, 8, 3), (5, 4, 2)])
def test_sampler_covers_every_sample_and_shards_disjointly(n, B, W):
    lengths = np.random.RandomState(0).randint(1, 500, size=n)
    per_rank = epoch_batches(lengths, B, W, seed=7, epoch=0)
    assert len({len(b) for b in per_rank}) == 1, "every rank must run the same number of steps"
    assert all(len(r) == len(LengthGroupedBatchSampler(lengths, B, 0, W)) for r in per_rank)
    flat = [i for r in per_rank for b in r for i in b]
    pad = (-n) % W
    assert len(flat) == n + pad
    assert set(flat) == set(range(n))
    if pad == 0:  # disjoint: nothing seen twice, not across ranks either
        assert len(set(flat)) == n
    for step in zip(*per_rank):  # the ranks' batches of one step are equally big
        assert len({len(b) for b in step}) == 1


def test_sampler_deterministic_reshuffled_per_epoch_and_resumable():
    lengths = np.random.RandomState(1).randint(1, 300, size=64)
    a0 = epoch_batches(lengths, 4, 2, seed=3, epoch=0)
    assert a0 == epoch_batches(lengths, 4, 2, seed=3, epoch=0)
    assert a0 != epoch_batches(lengths, 4, 2, seed=3, epoch=1)
    assert a0 != epoch_batches(lengths, 4, 2, seed=4, epoch=0)
    s = LengthGroupedBatchSampler(lengths, 4, rank=1, world_size=2, seed=3)
    s.set_epoch(0, start_batch=5)
    assert list(s) == a0[1][5:]


def test_length_grouping_cuts_padding():
    rng = np.random.RandomState(2)
    lengths = np.minimum(rng.lognormal(4, 1, size=2000).astype(int) + 1, 512)  # chat-like mix

    def padded(group):
        (batches,) = epoch_batches(lengths, 16, 1, seed=0, epoch=0, group=group)
        return sum(len(b) * lengths[b].max() for b in batches)
    real = lengths.sum()
    assert padded(True) < 1.1 * real < padded(False)


def test_eval_sampler_disjoint_unpadded():
    lengths = np.arange(11)
    shards = [sum(ShardedEvalSampler(lengths, 3, r, 2), []) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(11))


def test_lr_schedule_counts_optimizer_steps():
    lr, total = 1e-3, 100
    assert get_lr(0, total, lr) == pytest.approx(lr)
    assert get_lr(total, total, lr) == pytest.approx(lr / 10)
    assert get_lr(50, total, lr) == pytest.approx(lr / 10 + 0.5 * (lr - lr / 10))
    assert min(get_lr(s, total, lr) for s in range(total + 1)) >= lr / 10 - 1e-12
    # warmup: linear up to the peak over the first 10 steps, then cosine
    w = [get_lr(s, total, lr, warmup_iters=10) for s in range(12)]
    assert w[0] == pytest.approx(lr / 10) and w[9] == pytest.approx(lr) and w[10] == pytest.approx(lr)
    assert all(a < b for a, b in zip(w[:9], w[1:10]))


def test_masked_ce_matches_manual():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    y = torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 1, 1, 1, 0]])
    per = F.cross_entropy(logits.reshape(-1, 7), y.reshape(-1), reduction="none").view(2, 5)
    assert masked_ce(logits, y, mask).item() == pytest.approx((per * mask).sum().item() / 5, rel=1e-6)
    assert masked_ce(logits, y, torch.zeros_like(mask)).item() == 0.0


def test_sequence_logps_sums_response_tokens_only():
    torch.manual_seed(1)
    logits = torch.randn(1, 4, 6)
    y = torch.tensor([[3, 1, 0, 5]])
    mask = torch.tensor([[0, 1, 1, 0]])
    lp = torch.log_softmax(logits, -1)
    want = lp[0, 1, 1] + lp[0, 2, 0]
    assert sequence_logps(logits, y, mask).item() == pytest.approx(want.item(), rel=1e-6)


def test_dpo_loss_against_hand_computation():
    beta = 0.1
    pc, pr = torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -15.0])
    rc, rr = torch.tensor([-11.0, -19.0]), torch.tensor([-11.0, -16.0])
    losses, m = dpo_loss(pc, pr, rc, rr, beta)
    # pair 0: (pc-pr)-(rc-rr) = 2 - 0 = 2   -> -log sigmoid(0.2)
    # pair 1: (-5) - (-3)        = -2       -> -log sigmoid(-0.2)
    want = [-math.log(1 / (1 + math.exp(-0.2))), -math.log(1 / (1 + math.exp(0.2)))]
    assert losses.tolist() == pytest.approx(want, rel=1e-6)
    assert m["rewards/chosen"].tolist() == pytest.approx([0.1, -0.1])
    assert m["rewards/rejected"].tolist() == pytest.approx([-0.1, 0.1])
    assert m["rewards/margins"].tolist() == pytest.approx([0.2, -0.2])
    assert m["rewards/accuracies"].tolist() == [1.0, 0.0]
    assert m["logps/chosen"].tolist() == [-10.0, -20.0]
    # at the start of training policy == reference: loss is ln 2 whatever the log-probs
    l0, _ = dpo_loss(pc, pr, pc.clone(), pr.clone(), beta)
    assert l0.tolist() == pytest.approx([math.log(2)] * 2)


def test_padding_to_batch_longest_keeps_the_loss_of_padding_to_max_len():
    """Length-grouped batches padded to their longest item give MiniMind's pad-to-max_seq_len loss."""
    from test_train_common import tokenizer_dir, write_data
    import tempfile
    from dataset.lm_dataset import SFTDataset, pad_collate
    from model import MiniMindConfig, MiniMindForCausalLM
    with tempfile.TemporaryDirectory() as d:
        ds = SFTDataset(write_data(d, n_pretrain=1, n_sft=12, n_dpo=1)["sft"], tokenizer_dir(), max_length=96)
        items = [ds[i] for i in range(len(ds))]
    torch.manual_seed(0)
    model = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1)).eval()
    X, Y, M = pad_collate(0)(items)
    assert X.shape[1] == max(len(x) for x, _, _ in items) < 96
    pad = 96 - X.shape[1]
    Xm, Ym, Mm = (F.pad(t, (0, pad), value=0) for t in (X, Y, M))
    with torch.no_grad():
        short = masked_ce(model(X).logits, Y, M)
        full = masked_ce(model(Xm).logits, Ym, Mm)
    assert M.sum() == Mm.sum() > 0
    assert short.item() == pytest.approx(full.item(), rel=1e-5)
