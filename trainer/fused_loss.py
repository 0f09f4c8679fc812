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


# ----------------------------------------------------------------------------------------------
# Knowledge distillation: alpha * CE + (1 - alpha) * T^2 * KL(teacher || student), chunked
#
# Both models' logits exist only one chunk of target rows at a time: per chunk the student's and
# the teacher's float32 logits, the teacher's log-probs and probs and the student's log-probs at
# temperature T, all reduced at once to per-row KL, CE and top-1 agreement. The gradient of the
# student logits,
#     c_ce * (softmax(z_s) - onehot(y)) + (c_kl / T) * (softmax(z_s / T) - softmax(z_t / T)),
# (c_ce = alpha / n, c_kl = (1 - alpha) * T^2 / n, n = target tokens) is pushed through the student
# head in the same pass and stored, as _SummedCE does. The teacher gets no gradient.

DEFAULT_KL_CHUNK = 1024


class _Distill(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hs, ws, ht, wt, idx, y, c_ce, c_kl, temperature, chunk, dtype, need_grad):
        acc = _acc(dtype)
        wsc, wtc = ws.to(dtype), wt.to(dtype)
        n = len(y)
        kl_rows = torch.zeros(n, dtype=acc, device=hs.device)
        ce_rows = torch.zeros(n, dtype=acc, device=hs.device)
        agree = torch.zeros(n, dtype=torch.bool, device=hs.device)
        gh = torch.zeros_like(hs) if need_grad[0] else None
        gw = torch.zeros(ws.shape, dtype=acc, device=ws.device) if need_grad[1] else None
        T, k = float(temperature), c_kl / float(temperature)
        for s in range(0, n, chunk):
            hc, yc = _rows(hs, idx, s, chunk).to(dtype), y[s:s + chunk]
            zs = (hc @ wsc.t()).to(acc)                                  # student logits
            zt = (_rows(ht, idx, s, chunk).to(dtype) @ wtc.t()).to(acc)  # teacher logits
            agree[s:s + chunk] = zs.argmax(-1) == zt.argmax(-1)
            lse1 = torch.logsumexp(zs, -1)
            ce_rows[s:s + chunk] = lse1 - zs.gather(1, yc[:, None]).squeeze(1)
            if T != 1.0:
                zs.div_(T)
                zt.div_(T)
            lse_s = torch.logsumexp(zs, -1)
            zt.sub_(torch.logsumexp(zt, -1)[:, None])    # zt: teacher log-probs at T
            zs.sub_(lse_s[:, None])                      # zs: student log-probs at T
            pt = zt.exp()
            zt.sub_(zs)                                  # log pt - log ps
            kl_rows[s:s + chunk] = torch.einsum("ij,ij->i", pt, zt)
            del zt
            if gh is None and gw is None:
                continue
            soft = None
            if c_ce and T != 1.0:  # softmax(z_s) at T = 1, from the log-probs at T
                soft = zs.mul(T).add_((T * lse_s - lse1)[:, None]).exp_()
            g = zs.exp_()                                # softmax(z_s / T)
            if c_ce and T == 1.0:
                g.mul_(c_ce + k).sub_(pt, alpha=k)
            else:
                g.sub_(pt).mul_(k)
                if soft is not None:
                    g.add_(soft, alpha=c_ce)
            del pt, soft
            if c_ce:
                g[torch.arange(len(yc), device=g.device), yc] -= c_ce
            g = g.to(dtype)
            if gh is not None:
                _put_rows(gh, idx, s, chunk, (g @ wsc).to(hs.dtype))
            if gw is not None:
                _accumulate(gw, g, hc)
        loss = c_ce * ce_rows.sum() + c_kl * kl_rows.sum()
        ctx.save_for_backward(gh, gw)
        ctx.w_dtype = ws.dtype
        ctx.mark_non_differentiable(kl_rows, ce_rows, agree)
        return loss, kl_rows, ce_rows, agree

    @staticmethod
    def backward(ctx, go, *_):
        gh, gw = ctx.saved_tensors
        gh = gh * go.to(gh.dtype) if gh is not None else None
        gw = (gw * go).to(ctx.w_dtype) if gw is not None else None
        return gh, gw, None, None, None, None, None, None, None, None, None, None


def fused_distill_loss(student_hidden, student_weight, teacher_hidden, teacher_weight, targets, mask,
                       alpha=0.0, temperature=1.0, chunk_size=DEFAULT_KL_CHUNK):
    """alpha * CE + (1 - alpha) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)), both terms means over
    the positions where mask == 1 (MiniMind's `batchmean` over those rows), z = hidden @ weight.T.

    student_hidden (B, T, Ds) with student_weight (V, Ds); teacher_hidden (B, T, Dt) with teacher_weight
    (V, Dt): the same vocabulary V. Gradients reach the student's hidden states and weight only.
    Returns (loss, per_token): per_token holds, for every target position in order, "kl" (at T,
    without the T^2 factor), "ce" (at T = 1) and "agree" (student's top-1 == teacher's), detached.
    """
    if student_weight.shape[0] != teacher_weight.shape[0]:
        raise ValueError(f"student vocabulary {student_weight.shape[0]} != teacher vocabulary "
                         f"{teacher_weight.shape[0]}")
    if student_hidden.shape[:2] != teacher_hidden.shape[:2] or targets.shape != student_hidden.shape[:2]:
        raise ValueError(f"hidden states {tuple(student_hidden.shape)} / {tuple(teacher_hidden.shape)} and "
                         f"targets {tuple(targets.shape)} disagree on (batch, time)")
    if not 0.0 <= alpha <= 1.0 or not temperature > 0:
        raise ValueError(f"expected 0 <= alpha <= 1 and temperature > 0, got {alpha}, {temperature}")
    hs, idx, y = _select(student_hidden, targets, mask)
    ht = teacher_hidden.reshape(-1, teacher_hidden.shape[-1]).detach()
    n = max(len(y), 1)
    c_ce, c_kl = float(alpha) / n, (1.0 - float(alpha)) * float(temperature) ** 2 / n
    dtype = _compute_dtype(student_hidden)
    grad_on = torch.is_grad_enabled()
    need = (grad_on and hs.requires_grad, grad_on and student_weight.requires_grad)
    loss, kl, ce, agree = _Distill.apply(hs, student_weight, ht, teacher_weight.detach(), idx, y, c_ce, c_kl,
                                         float(temperature), max(1, int(chunk_size)), dtype, need)
    return loss, {"kl": kl, "ce": ce, "agree": agree}
