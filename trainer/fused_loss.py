"""Cross-entropy straight from the final hidden states, never holding (tokens x vocab) float32 logits.

The plain path makes logits = hidden @ W.T for every position, casts them to float32 and runs
cross_entropy; autograd then keeps the logits and the softmax for the backward pass. At 32 x 512
tokens and vocab 6400 that is 420 MB per float32 copy, a large share of a small model's activation
memory, and most of those rows are padding or prompt tokens that carry no loss.

Here:
  * only the positions that are targets (mask == 1) are scored: padding and SFT prompt tokens never
    reach the LM head (the plain path computes, then discards, their logits);
  * those rows go through the head in chunks of `chunk_size` tokens; a chunk's float32 logits live
    only while that chunk is reduced to (logsumexp, target logit);
  * for a summed loss (pretraining / SFT), each chunk's gradient, (softmax - onehot) for the chunk,
    is pushed through the head at once (d hidden = g @ W, d W += g.T @ hidden) and stored; backward
    only scales the stored gradients by the incoming scalar. No recomputation.
  * for per-token values (DPO's summed log-probs, whose incoming gradient differs per sequence), the
    forward keeps only the logsumexp per token and the backward recomputes each chunk's logits.

The matmuls run in the autocast dtype when autocast is on (as nn.Linear would), the softmax in
float32, and the weight gradient is accumulated in float32. Equal to the plain path within float
tolerance, values and gradients (tests/test_fast_paths.py).

Inputs: hidden (B, T, D), the LM head weight (V, D) (tied to the embedding in MiniMind), targets
(B, T), mask (B, T) with 1 = this target counts.
"""
import torch

DEFAULT_CHUNK = 2048


def _compute_dtype(t):
    dev = t.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return t.dtype


def _acc(dtype):
    """Softmax/accumulation dtype: float32, or float64 when the inputs are float64 (gradcheck)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _chunk_logits(h, w, y):
    """log-softmax of a chunk's logits (accumulation dtype), their logsumexp, and the target log-probs."""
    logits = (h @ w.t()).to(_acc(h.dtype))
    tgt_logit = logits.gather(1, y[:, None]).squeeze(1)
    logp = torch.log_softmax(logits, dim=-1)
    tgt = logp.gather(1, y[:, None]).squeeze(1)
    return logp, tgt_logit - tgt, tgt


def _accumulate(gw, g, h):
    """gw += g.T @ h, in place when the dtypes agree (no (V, D) temporary)."""
    if g.dtype == gw.dtype:
        gw.addmm_(g.t(), h)
    else:
        gw.add_((g.t() @ h).to(gw.dtype))


def _rows(h, idx, s, chunk):
    """Rows s:s+chunk of the selected rows: a slice when every row is selected, else a gather."""
    if idx is None:
        return h[s:s + chunk]
    return h.index_select(0, idx[s:s + chunk])


def _put_rows(gh, idx, s, chunk, value):
    # index_put, not index_add: rows are distinct, and index_add is ~10x slower on CPU
    if idx is None:
        gh[s:s + chunk] = value
    else:
        gh[idx[s:s + chunk]] = value


class _SummedCE(torch.autograd.Function):
    """sum over selected rows i of CE(h_i @ W.T, y_i); gradients computed during the forward."""

    @staticmethod
    def forward(ctx, h, w, idx, y, chunk, dtype, need_grad, row_w=None):
        wc, acc = w.to(dtype), _acc(dtype)
        total = torch.zeros((), dtype=acc, device=h.device)
        gh = torch.zeros_like(h) if need_grad[0] else None
        gw = torch.zeros(w.shape, dtype=acc, device=w.device) if need_grad[1] else None
        for s in range(0, len(y), chunk):
            hc, yc = _rows(h, idx, s, chunk).to(dtype), y[s:s + chunk]
            logp, _, tgt = _chunk_logits(hc, wc, yc)
            wr = None if row_w is None else row_w[s:s + chunk].to(acc)
            total -= tgt.sum() if wr is None else (tgt * wr).sum()
            if gh is None and gw is None:
                continue
            # d CE / d logits = softmax - onehot, made in place in the log-softmax buffer
            g = logp.exp_()
            g[torch.arange(len(yc), device=g.device), yc] -= 1.0
            if wr is not None:  # per-row weights scale each row's gradient
                g.mul_(wr[:, None])
            g = g.to(dtype)
            if gh is not None:
                _put_rows(gh, idx, s, chunk, (g @ wc).to(h.dtype))
            if gw is not None:
                _accumulate(gw, g, hc)
        ctx.save_for_backward(gh, gw)
        ctx.w_dtype = w.dtype
        return total

    @staticmethod
    def backward(ctx, go):
        gh, gw = ctx.saved_tensors
        gh = gh * go.to(gh.dtype) if gh is not None else None
        gw = (gw * go).to(ctx.w_dtype) if gw is not None else None
        return gh, gw, None, None, None, None, None, None


class _TokenCE(torch.autograd.Function):
    """Per selected row i, CE(h_i @ W.T, y_i); the backward recomputes each chunk's logits."""

    @staticmethod
    def forward(ctx, h, w, idx, y, chunk, dtype):
        wc = w.to(dtype)
        out = torch.empty(len(y), dtype=_acc(dtype), device=h.device)
        lse_all = torch.empty_like(out)
        for s in range(0, len(y), chunk):
            _, lse, tgt = _chunk_logits(_rows(h, idx, s, chunk).to(dtype), wc, y[s:s + chunk])
            out[s:s + chunk] = -tgt
            lse_all[s:s + chunk] = lse
        ctx.save_for_backward(h, w, idx, y, lse_all)
        ctx.chunk, ctx.dtype = chunk, dtype
        return out

    @staticmethod
    def backward(ctx, go):
        h, w, idx, y, lse_all = ctx.saved_tensors
        chunk, dtype = ctx.chunk, ctx.dtype
        wc, acc = w.to(dtype), _acc(dtype)
        gh = torch.zeros_like(h) if ctx.needs_input_grad[0] else None
        gw = torch.zeros(w.shape, dtype=acc, device=w.device) if ctx.needs_input_grad[1] else None
        for s in range(0, len(y), chunk):
            hc, yc = _rows(h, idx, s, chunk).to(dtype), y[s:s + chunk]
            g = (hc @ wc.t()).to(acc).sub_(lse_all[s:s + chunk, None]).exp_()
            g[torch.arange(len(yc), device=g.device), yc] -= 1.0
            g = (g * go[s:s + chunk, None].to(acc)).to(dtype)
            if gh is not None:
                _put_rows(gh, idx, s, chunk, (g @ wc).to(h.dtype))
            if gw is not None:
                _accumulate(gw, g, hc)
        return gh, gw.to(w.dtype) if gw is not None else None, None, None, None, None


def linear_cross_entropy(hidden, weight, targets, reduction="sum", chunk_size=DEFAULT_CHUNK, rows=None,
                         row_weights=None):
    """CE of logits = hidden @ weight.T against targets, chunked over rows.

    hidden (N, D), weight (V, D). rows: optional sorted LongTensor of the rows that count (others get
    no logits and zero gradient); targets has one entry per counted row (N of them when rows is None).
    reduction "sum" -> scalar; "none" -> one CE per counted row (float32; float64 for float64 inputs).
    row_weights (reduction "sum" only): one weight per counted row, the sum becomes sum_i w_i CE_i.
    """
    n = hidden.shape[0] if rows is None else rows.shape[0]
    if hidden.dim() != 2 or targets.shape != (n,):
        raise ValueError(f"expected hidden (N, D) and {n} targets, got {tuple(hidden.shape)} and "
                         f"{tuple(targets.shape)}")
    dtype = _compute_dtype(hidden)
    chunk = max(1, int(chunk_size))
    if reduction == "sum":
        grad_on = torch.is_grad_enabled()
        need = (grad_on and hidden.requires_grad, grad_on and weight.requires_grad)
        if row_weights is not None:
            if row_weights.shape != (n,):
                raise ValueError(f"expected {n} row weights, got {tuple(row_weights.shape)}")
            row_weights = row_weights.detach()
        return _SummedCE.apply(hidden, weight, rows, targets, chunk, dtype, need, row_weights)
    if row_weights is not None:
        raise ValueError("row_weights needs reduction='sum'")
    if reduction == "none":
        return _TokenCE.apply(hidden, weight, rows, targets, chunk, dtype)
    raise ValueError(f"reduction must be 'sum' or 'none', got {reduction!r}")


def _select(hidden, targets, mask):
    """(B*T, D) hidden states, the flat positions that are targets (None = all), their targets."""
    flat = mask.reshape(-1) != 0
    h = hidden.reshape(-1, hidden.shape[-1])
    y = targets.reshape(-1)
    if bool(flat.all()):
        return h, None, y
    idx = flat.nonzero().squeeze(1)
    return h, idx, y.index_select(0, idx)


def fused_masked_ce_sum(hidden, weight, targets, mask, chunk_size=DEFAULT_CHUNK):
    """(sum of CE over tokens where mask == 1, their count): trainer.losses.masked_ce_sum from hidden states."""
    h, idx, y = _select(hidden, targets, mask)
    return linear_cross_entropy(h, weight, y, "sum", chunk_size, rows=idx), mask.sum()


def fused_masked_ce(hidden, weight, targets, mask, chunk_size=DEFAULT_CHUNK):
    """Mean CE over the masked tokens (0, not NaN, for a batch with none): trainer.losses.masked_ce."""
    s, n = fused_masked_ce_sum(hidden, weight, targets, mask, chunk_size)
    return s / n.clamp(min=1)


def fused_weighted_ce_sum(hidden, weight, targets, token_weights, chunk_size=DEFAULT_CHUNK):
    """(sum of w * CE over the positions with weight w != 0, sum of w): the tag-weighted SFT loss of
    train_distill_reason.py is their ratio. token_weights (B, T) float, 0 = not a target."""
    h, idx, y = _select(hidden, targets, token_weights)
    w = token_weights.reshape(-1)
    w = w if idx is None else w.index_select(0, idx)
    w = w.to(_acc(_compute_dtype(hidden)))
    return linear_cross_entropy(h, weight, y, "sum", chunk_size, rows=idx, row_weights=w), w.sum()


def fused_sequence_logps(hidden, weight, targets, mask, chunk_size=DEFAULT_CHUNK):
    """Per-sequence SUM of log p(target) over mask == 1: trainer.losses.sequence_logps from hidden states."""
    B, T = targets.shape
    h, idx, y = _select(hidden, targets, mask)
    logp = -linear_cross_entropy(h, weight, y, "none", chunk_size, rows=idx)
    seq = torch.arange(B * T, device=hidden.device) // T if idx is None else idx // T
    return torch.zeros(B, dtype=logp.dtype, device=hidden.device).index_add(0, seq, logp)
