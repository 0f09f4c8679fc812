"""PPO's arithmetic (train_ppo.py), as MiniMind's 2026 train_ppo.py defines it, with TRL's PPOTrainer beside it.

    ActorCritic(actor, critic)        the two trained networks as one module (one optimizer, one DDP wrapper,
                                      one resume file): forward -> (actor output, values (B, T), critic aux loss)
    make_critic(actor)                the critic: MiniMindForSequenceClassification (a trunk + the scalar head
                                      `score`, as train_reward.py's) whose trunk is a copy of the actor's
    last_token_rewards(r, mask)       (N, C): each row's reward on its last response token, 0 elsewhere
    gae(rewards, values, mask, gamma, lam) -> (advantages, returns), both (N, C), 0 on padding
    masked_whiten(x, mask)            (x - mean) / sqrt(var + 1e-8) over the real tokens (of every rank with
                                      `all_reduce`), 0 on padding
    explained_variance(v, ret, mask)  1 - Var(returns - values) / Var(returns) over the real tokens
    ppo_loss(...)                     one micro-batch's loss and its per-token statistics

The per-token loss, with r = pi / pi_old, A the whitened advantage, R the return, V the value and V_old the
rollout's value:
    policy   max(-A r, -A clip(r, 1 - clip_epsilon, 1 + clip_epsilon))
             + kl_coef (exp(ref - logp) - (ref - logp) - 1)             (k3 KL to the frozen reference)
    value    1/2 max((V - R)^2, (clip(V, V_old - cliprange_value, V_old + cliprange_value) - R)^2)
    loss     policy + vf_coef value
each summed over the real tokens and divided by the minibatch's token count (MiniMind's and TRL's masked
means). The KL is a loss term, as MiniMind's; TRL subtracts kl_coef KL from each token's reward instead.
"""
import torch
import torch.nn as nn


class ActorCritic(nn.Module):
    """The actor (the policy, MiniMindForCausalLM) and the critic (MiniMindForSequenceClassification, its own
    trunk) as one module. Its state dict holds both (actor.*, critic.*); the weights file takes the actor."""

    def __init__(self, actor, critic):
        super().__init__()
        self.actor, self.critic = actor, critic

    def forward(self, input_ids, attention_mask=None):
        """(actor output with its final hidden states, values (B, T) in float32 at every position, the
        critic's MoE auxiliary loss). values[:, t] is the critic's estimate after reading tokens 0..t."""
        out = self.actor(input_ids, attention_mask=attention_mask, skip_logits=True)
        hidden, aux = self.critic.model(input_ids, attention_mask)
        return out, self.critic.score(hidden).squeeze(-1).float(), aux


def make_critic(actor):
    """The critic: the actor's trunk copied (its own parameters, the actor's config) under a fresh scalar head
    (initialised as train_reward.py's; MiniMind's CriticModel: an nn.Linear value head on its trunk)."""
    import copy

    from model import MiniMindForSequenceClassification
    config = copy.deepcopy(actor.config)
    config.num_labels = 1
    critic = MiniMindForSequenceClassification(config)
    critic.model.load_state_dict(actor.model.state_dict(), strict=True)
    return critic.to(next(actor.parameters()).device)


def last_token_rewards(rewards, mask):
    """(N, C) token rewards: rewards[i] on row i's last real token (mask covers a prefix of each row)."""
    out = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    lengths = mask.sum(1).long()
    rows = torch.nonzero(lengths > 0).squeeze(1)
    out[rows, lengths[rows] - 1] = rewards.to(out)[rows]
    return out


def gae(rewards, values, mask, gamma, lam):
    """Generalised advantage estimation over each row's real tokens (a prefix of the row; the value after
    the last one is 0, the episode ends there):
        delta_t = r_t + gamma V_{t+1} - V_t,   A_t = delta_t + gamma lam A_{t+1},   R_t = A_t + V_t."""
    mask = mask.to(values.dtype)
    values, rewards = values * mask, rewards.to(values.dtype) * mask
    C = values.shape[1]
    last = torch.zeros_like(values[:, 0])
    out = [None] * C
    for t in reversed(range(C)):
        next_v = values[:, t + 1] if t + 1 < C else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = delta + gamma * lam * last
        out[t] = last
    adv = torch.stack(out, 1) * mask
    return adv, (adv + values) * mask


def masked_whiten(x, mask, all_reduce=None, eps=1e-8):
    """(x - mean) / sqrt(var + eps) over the real tokens (population variance, MiniMind's), 0 on padding.
    all_reduce(tensor) sums a tensor over the ranks in place: the statistics of the whole step."""
    mask = mask.to(x.dtype)
    vec = torch.stack([(x * mask).sum(), (x * x * mask).sum(), mask.sum()]).double()
    if all_reduce is not None:
        all_reduce(vec)
    s, ss, n = vec.tolist()
    n = max(n, 1.0)
    mean = s / n
    var = max(ss / n - mean * mean, 0.0)
    return (x - mean) * (var + eps) ** -0.5 * mask


def explained_variance(values, returns, mask):
    """1 - Var(returns - values) / Var(returns) over the real tokens: 1 is a perfect critic, 0 one no better
    than a constant, below 0 a harmful one. None when the returns do not vary."""
    m = mask.bool()
    v, r = values[m].double(), returns[m].double()
    if r.numel() < 2 or float(r.var(unbiased=False)) < 1e-12:
        return None
    return 1.0 - float((r - v).var(unbiased=False)) / float(r.var(unbiased=False))


def ppo_loss(logps, old_logps, ref_logps, values, old_values, advantages, returns, mask, clip_epsilon,
             cliprange_value, vf_coef, kl_coef, normalizer):
    """(loss, stats) of one micro-batch; every tensor (N, C), ref_logps None without a reference.

    The per-token terms are summed over the real tokens and divided by `normalizer`: the minibatch's token
    count over its number of micro-batches (the loop averages micro-batches, so a minibatch's loss is its
    token mean). stats: per real token, detached: approx_kl (1/2 (log r)^2, TRL's and MiniMind's),
    clipfrac (|r - 1| > clip_epsilon, MiniMind's), kl_ref (the k3 KL), policy_loss, critic_loss (the value
    term), value_clipfrac (the clipped value term was the larger, TRL's val/clipfrac)."""
    mask = mask.to(logps.dtype)
    real = mask.bool()
    log_ratio = (logps - old_logps) * mask
    ratio = torch.exp(log_ratio)
    adv = advantages.to(logps.dtype)
    pg = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon))
    policy = (pg * mask).sum() / normalizer
    kl = None
    if ref_logps is not None:
        delta = ref_logps - logps
        kl = torch.exp(delta) - delta - 1.0
        policy = policy + kl_coef * (kl * mask).sum() / normalizer
    v_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    vf1, vf2 = (values - returns) ** 2, (v_clipped - returns) ** 2
    vf = 0.5 * torch.max(vf1, vf2)
    value = (vf * mask).sum() / normalizer
    loss = policy + vf_coef * value
    with torch.no_grad():
        stats = {"approx_kl": (0.5 * log_ratio ** 2)[real], "clipfrac": ((ratio - 1.0).abs() > clip_epsilon)[real].float(),
                 "policy_loss": pg[real].detach(), "critic_loss": vf[real].detach(),
                 "value_clipfrac": (vf2 > vf1)[real].float()}
        if kl is not None:
            stats["kl_ref"] = kl[real].detach()
    return loss, stats
