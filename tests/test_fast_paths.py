"""The fast paths compute the same thing as the plain ones.

- trainer/fused_loss.py (chunked cross-entropy from hidden states, only target rows scored) equals
  trainer.losses' masked CE / summed log-probs over full logits: values and gradients.
- Length-grouped, padded-to-the-batch's-longest batches give every sample the loss it has alone,
  unpadded, and so does MiniMind's pad-to-max_seq_len batching: each target token counts once.
(Packed pretraining rows keeping every target once is tested in tests/test_lm_dataset.py, cached
DPO reference log-probs against on-the-fly ones in tests/test_train_dpo.py.)
"""
import json
import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from dataset.lm_dataset import DPODataset, SFTDataset, dpo_collate, pad_collate  # noqa: E402
from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from trainer.fused_loss import (fused_masked_ce, fused_masked_ce_sum, fused_sequence_logps,  # noqa: E402
                                linear_cross_entropy)
from trainer.losses import dpo_loss, masked_ce, masked_ce_sum, sequence_logps  # noqa: E402
from trainer.sampler import LengthGroupedBatchSampler  # noqa: E402

TOKENIZER = os.path.join(ROOT, "model")


def rand_case(B=3, T=11, D=16, V=37, dtype=torch.float32, p_mask=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(B, T, D, generator=g, dtype=dtype).requires_grad_()
    w = (torch.randn(V, D, generator=g, dtype=dtype) * 0.5).requires_grad_()
    y = torch.randint(0, V, (B, T), generator=g)
    m = (torch.rand(B, T, generator=g) < p_mask).long()
    return h, w, y, m


def grads(out, *inputs):
    return torch.autograd.grad(out, inputs)


# ---------------------------------------------------------------------------------------------
# Fused / chunked cross-entropy

@pytest.mark.parametrize("chunk", [1, 4, 7, 10 ** 6])
@pytest.mark.parametrize("p_mask", [0.5, 1.0])  # 1.0: every row is a target (the no-gather path)
def test_fused_masked_ce_equals_plain_values_and_grads(chunk, p_mask):
    h, w, y, m = rand_case(p_mask=p_mask)
    plain = masked_ce(h @ w.t(), y, m)
    fused = fused_masked_ce(h, w, y, m, chunk_size=chunk)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads(fused * 3.0, h, w), grads(plain * 3.0, h, w)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    s, n = fused_masked_ce_sum(h, w, y, m, chunk_size=chunk)
    s0, n0 = masked_ce_sum(h @ w.t(), y, m)
    torch.testing.assert_close(s, s0, rtol=1e-5, atol=1e-5)
    assert int(n) == int(n0) == int(m.sum())


def test_fused_ce_gradcheck_float64():
    h, w, y, m = rand_case(B=2, T=4, D=3, V=5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda h, w: fused_masked_ce(h, w, y, m, chunk_size=3), (h, w),
                                    fast_mode=True)
    assert torch.autograd.gradcheck(lambda h, w: fused_sequence_logps(h, w, y, m, chunk_size=2), (h, w),
                                    fast_mode=True)


def test_fused_masked_ce_no_targets_is_zero_not_nan():
    h, w, y, m = rand_case()
    m = torch.zeros_like(m)
    loss = fused_masked_ce(h, w, y, m)
    assert loss.item() == 0.0
    gh, gw = grads(loss, h, w)
    assert not gh.any() and not gw.any()


def test_fused_ignores_non_target_rows_entirely():
    """Non-target rows get no logits: garbage (even inf) there changes nothing, and gets zero gradient."""
    h, w, y, m = rand_case(seed=3)
    loss = fused_masked_ce(h, w, y, m)
    h2 = h.detach().clone()
    h2[m == 0] = float("inf")
    h2.requires_grad_()
    loss2 = fused_masked_ce(h2, w, y, m)
    assert loss2.item() == loss.item()
    (gh,) = grads(loss2, h2)
    assert torch.isfinite(gh).all() and not gh[m == 0].any()


@pytest.mark.parametrize("chunk", [3, 10 ** 6])
def test_fused_sequence_logps_equals_plain(chunk):
    h, w, y, m = rand_case(B=4, T=9, seed=5)
    plain = sequence_logps(h @ w.t(), y, m)
    fused = fused_sequence_logps(h, w, y, m, chunk_size=chunk)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    upstream = torch.tensor([1.0, -2.0, 0.5, 3.0])  # DPO's per-sequence gradients differ
    for a, b in zip(grads((fused * upstream).sum(), h, w), grads((plain * upstream).sum(), h, w)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_linear_cross_entropy_rejects_bad_shapes_and_reduction():
    h, w, y, _ = rand_case()
    with pytest.raises(ValueError, match="expected hidden"):
        linear_cross_entropy(h, w, y)  # 3-D hidden
    with pytest.raises(ValueError, match="reduction"):
        linear_cross_entropy(h.reshape(-1, h.shape[-1]), w, y.reshape(-1), reduction="mean")


def test_fused_under_bf16_autocast_matches_plain_under_autocast():
    h, w, y, m = rand_case(B=2, T=8, D=16, V=40, seed=7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = masked_ce(torch.nn.functional.linear(h, w), y, m)
        fused = fused_masked_ce(h, w, y, m, chunk_size=5)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, plain, rtol=2e-2, atol=2e-2)
    gf, gp = grads(fused, h, w), grads(plain, h, w)
    assert gf[1].dtype == w.dtype == torch.float32  # the weight gradient is accumulated in float32
    for a, b in zip(gf, gp):
        torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-3)


def tiny_model(seed=0, vocab=6400):
    torch.manual_seed(seed)
    cfg = MiniMindConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         vocab_size=vocab)
    return MiniMindForCausalLM(cfg)


def test_fused_loss_through_the_model_equals_plain_including_tied_weight_grads():
    """Hidden states from model.model + the tied lm_head weight: every parameter's gradient matches."""
    model = tiny_model(vocab=300)
    g = torch.Generator().manual_seed(1)
    X = torch.randint(0, 300, (3, 14), generator=g)
    Y = torch.randint(0, 300, (3, 14), generator=g)
    M = (torch.rand(3, 14, generator=g) < 0.6).long()
    plain = masked_ce(model(X).logits, Y, M)
    plain.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    hidden, aux = model.model(X)
    fused = fused_masked_ce(hidden, model.lm_head.weight, Y, M, chunk_size=8) + aux
    fused.backward()
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[n], rtol=1e-4, atol=1e-6, msg=n)


# ---------------------------------------------------------------------------------------------
# Batching: padded / length-grouped batches vs each sample alone

@pytest.fixture(scope="module")
def tok():
    if not os.path.exists(os.path.join(TOKENIZER, "tokenizer.json")):
        pytest.skip("project tokenizer not present")
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(TOKENIZER)


def chat(q, a):
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return str(path)


def sft_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    words = ["cat", "river", "猫", "河流", "blue", "蓝色", "seven", "七", "quiet", "安静"]
    rows = []
    for i in range(n):
        q = " ".join(rng.choice(words, size=int(rng.integers(1, 6))))
        a = " ".join(rng.choice(words, size=int(rng.lognormal(2.0, 0.9)) + 1))
        rows.append({"conversations": chat(f"{i}: {q}?", a)})
    return rows


def per_sample_sums(model, items):
    """CE sum and target count of each item run alone, unpadded."""
    out = []
    for x, y, m in items:
        s, n = masked_ce_sum(model(x[None]).logits, y[None], m[None])
        out.append((s.item(), int(n)))
    return out


def test_length_grouped_padded_batches_equal_per_sample_losses(tmp_path, tok):
    ds = SFTDataset(write_jsonl(tmp_path / "s.jsonl", sft_rows(23)), tok, max_length=48,
                    cache_dir=str(tmp_path / "c"), verbose=False)
    model = tiny_model().eval()
    alone = per_sample_sums(model, [ds[i] for i in range(len(ds))])
    collate = pad_collate(tok.pad_token_id)
    sampler = LengthGroupedBatchSampler(ds.lengths, 4, seed=3)
    sampler.set_epoch(1)
    seen, total, count, pad_cells = [], 0.0, 0, 0
    with torch.no_grad():
        for idx in sampler:
            X, Y, M = collate([ds[i] for i in idx])
            pad_cells += X.numel() - sum(len(ds[i][0]) for i in idx)
            logits = model(X).logits
            for b, i in enumerate(idx):  # each row of the batch scores exactly like its sample alone
                s, n = masked_ce_sum(logits[b:b + 1], Y[b:b + 1], M[b:b + 1])
                assert int(n) == alone[i][1]
                assert s.item() == pytest.approx(alone[i][0], rel=1e-4, abs=1e-3)
            s, n = masked_ce_sum(logits, Y, M)
            total, count = total + s.item(), count + int(n)
            seen += idx
        # MiniMind's batching (everything padded to max_length) scores the same targets too
        mm = [list(range(i, min(i + 4, len(ds)))) for i in range(0, len(ds), 4)]
        mm_total, mm_count = 0.0, 0
        for idx in mm:
            X, Y, M = collate([ds[i] for i in idx])
            pad = ds.max_length - 1 - X.shape[1]
            X = torch.nn.functional.pad(X, (0, pad), value=tok.pad_token_id)
            Y = torch.nn.functional.pad(Y, (0, pad), value=tok.pad_token_id)
            M = torch.nn.functional.pad(M, (0, pad), value=0)
            s, n = masked_ce_sum(model(X).logits, Y, M)
            mm_total, mm_count = mm_total + s.item(), mm_count + int(n)
    assert sorted(seen) == list(range(len(ds)))  # every sample once per epoch
    assert count == mm_count == sum(n for _, n in alone) > 0  # every target token exactly once
    assert total == pytest.approx(sum(s for s, _ in alone), rel=1e-4)
    assert mm_total == pytest.approx(total, rel=1e-4)
    assert pad_cells < 0.5 * sum(len(ds[i][0]) for i in range(len(ds)))  # grouping kept padding small


def dpo_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        q = f"question {i} " + "词 " * int(rng.integers(0, 8))
        rows.append({"chosen": chat(q, "good answer " * int(rng.integers(1, 9))),
                     "rejected": chat(q, "bad " * int(rng.integers(1, 12)))})
    return rows


def test_fused_dpo_logps_equal_plain_on_real_batches(tmp_path, tok):
    """The per-sequence fused path on dpo_collate batches (padding, prompt masks) = log-probs from full logits."""
    ds = DPODataset(write_jsonl(tmp_path / "d.jsonl", dpo_rows(6, seed=4)), tok, max_length=64,
                    cache_dir=str(tmp_path / "c"), verbose=False)
    model = tiny_model(seed=3)
    batch = dpo_collate(tok.pad_token_id)([ds[i] for i in range(len(ds))])
    x = torch.cat([batch["x_chosen"], batch["x_rejected"]])
    y = torch.cat([batch["y_chosen"], batch["y_rejected"]])
    m = torch.cat([batch["mask_chosen"], batch["mask_rejected"]])
    assert 0 < m.sum() < m.numel()  # prompts and padding are masked out
    pc, pr = sequence_logps(model(x).logits, y, m).chunk(2)
    hidden, _ = model.model(x)
    fc, fr = fused_sequence_logps(hidden, model.lm_head.weight, y, m, chunk_size=16).chunk(2)
    torch.testing.assert_close(fc, pc, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(fr, pr, rtol=1e-5, atol=1e-4)
    loss_plain = dpo_loss(pc, pr, pc.detach() - 1, pr.detach(), 0.1)[0].mean()
    loss_fused = dpo_loss(fc, fr, pc.detach() - 1, pr.detach(), 0.1)[0].mean()
    g_plain = torch.autograd.grad(loss_plain, list(model.parameters()))
    g_fused = torch.autograd.grad(loss_fused, list(model.parameters()))
    for a, b in zip(g_fused, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)
