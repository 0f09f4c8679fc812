"""Rollouts: completions sampled from the policy, and the per-token log-probs the update uses.

    ENGINES[name](model, tokenizer, autocast)    a rollout back end (--rollout_engine); "torch" samples from
                                                 the policy itself with model/generation.generate_batch
        .generate(prompts, n, max_new_tokens, temperature, top_p) -> Rollout
        .update_policy(model)                    after an optimizer step (a back end holding its own copy
                                                 of the weights reloads them here; "torch" shares them)
    completion_logprobs(model, rollout, T)       (N, C) log pi(token) of each completion token (pi: the
                                                 policy at the sampling temperature T, as TRL), through the
                                                 same forward and precision the update uses, so the
                                                 importance ratio is exactly 1 before the first update;
                                                 a prompt shared by a group's rows runs through the
                                                 model once (shared_prompt_groups)
    token_logprobs(lm_head, hidden, rollout, T)  the same from a forward's final hidden states (PPO's
                                                 actor-critic forward gives them)
    concat_rollouts(rollouts, pad_id)            one Rollout of several (prompts left-padded, completions
                                                 right-padded to the widest)

A faster back end (vLLM or SGLang serving the Llama export) is a class with these two methods added
to ENGINES; the stages never see which one ran.
"""
from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache

from model.generation import generate_batch
from trainer.checkpoint import unwrap


@dataclass
class Rollout:
    """N = prompts x n completions, a prompt's n rows together.

    input_ids / attention_mask   (N, P + C) the left-padded prompt then the completion, 1 = real token
    completion_ids / mask        (N, C) the generated tokens; mask covers them up to and including the
                                 first <|im_end|> (never padding)
    texts, truncated             the completions decoded; whether a row hit max_new_tokens
    loss_mask                    None: completion_mask; a multi-turn rollout (trainer/rl/agent.py): 1 on
                                 the tokens the model generated, 0 on tool results between its turns
    """
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    texts: list
    truncated: torch.Tensor
    loss_mask: torch.Tensor = None

    def __len__(self):
        return len(self.texts)

    def rows(self, index):
        """The rollout's rows `index` (a slice or index tensor), trimmed to their own widths."""
        ids, att = self.input_ids[index], self.attention_mask[index]
        comp, mask = self.completion_ids[index], self.completion_mask[index]
        keep_c = int(mask.sum(1).max()) if mask.numel() else 0  # no column after every row's end
        keep_c = max(keep_c, 1)
        P = ids.shape[1] - comp.shape[1]
        first = int((att[:, :P].sum(0) > 0).float().argmax()) if P else 0  # no all-padding column before
        ids = torch.cat([ids[:, first:P], comp[:, :keep_c]], 1)
        att = torch.cat([att[:, first:P], mask[:, :keep_c]], 1)
        texts = [self.texts[i] for i in torch.arange(len(self.texts))[index].tolist()]
        loss = self.loss_mask[index][:, :keep_c] if self.loss_mask is not None else None
        return Rollout(ids, att, comp[:, :keep_c], mask[:, :keep_c], texts, self.truncated[index], loss)


class TorchRollout:
    """Samples from the policy being trained (batched, left-padded, KV cache: generate_batch)."""
    name = "torch"

    def __init__(self, model, tokenizer, autocast):
        self.model, self.tokenizer, self.autocast = unwrap(model), tokenizer, autocast

    def generate(self, prompts, n, max_new_tokens, temperature, top_p):
        was_training = self.model.training
        self.model.eval()
        try:
            with self.autocast():
                g = generate_batch(self.model, self.tokenizer, prompts, max_new_tokens, temperature=temperature,
                                   top_p=top_p, num_return_sequences=n)
        finally:
            self.model.train(was_training)
        truncated = torch.tensor([r == "length" for r in g.finish_reasons], device=g.completion_ids.device)
        return Rollout(torch.cat([g.prompt_ids, g.completion_ids], 1), torch.cat([g.prompt_mask, g.completion_mask], 1),
                       g.completion_ids, g.completion_mask, g.texts, truncated)

    def update_policy(self, model):
        """Nothing to do: generation runs on the very weights being trained."""


ENGINES = {"torch": TorchRollout}


def completion_logprobs(model, rollout, temperature=1.0, with_entropy=False, share_prompts=True):
    """(N, C) log-probs of the completion tokens under `model` (and their entropies, detached).

    Hidden states come from a forward over prompt + completion (the model counts positions over the
    real tokens, so left padding does not move them); the LM head then runs on the C positions that
    predict completion tokens only, and log_softmax of logits / temperature in float32 (the distribution
    the tokens were sampled from), inside the same autocast the update runs in. Padding positions are 0.

    When rows share their prompt (GRPO's G samples of one prompt), the prompt runs once and its keys and
    values are repeated for the group's rows, which then run only their completions on top of them: the
    same arithmetic (the same positions and masks; gradients flow back through the shared keys and values
    into the one prompt forward), without G - 1 copies of the prompt in the forward and the backward.
    MoE models always take the one plain forward, so that their load-balancing loss counts every row."""
    raw = unwrap(model)
    groups = shared_prompt_groups(rollout) if share_prompts and not getattr(raw.config, "use_moe", False) else None
    if groups is None:
        out = model(rollout.input_ids, attention_mask=rollout.attention_mask, skip_logits=True)
        hidden = out.hidden_states[-1]
    else:
        first, counts = groups
        C = rollout.completion_ids.shape[1]
        P = rollout.input_ids.shape[1] - C
        # The prompt forward runs on the bare module: under DDP the one wrapped call below is the
        # iteration's forward, and the backward reduces the gradients of both, once.
        cache = DynamicCache(config=raw.config)  # filled in place by the prompt forward
        prefix = raw(rollout.input_ids[first, :P], attention_mask=rollout.attention_mask[first, :P],
                     past_key_values=cache, use_cache=True, skip_logits=True)
        cache.batch_repeat_interleave(counts)
        out = model(rollout.input_ids[:, P:], attention_mask=rollout.attention_mask, past_key_values=cache,
                    use_cache=True, skip_logits=True)
        last_prompt = prefix.hidden_states[-1][:, -1:].repeat_interleave(counts, dim=0)  # predicts token 1
        hidden = torch.cat([last_prompt, out.hidden_states[-1]], 1)
    logps, entropy = token_logprobs(raw.lm_head, hidden, rollout, temperature, with_entropy)
    return logps, entropy, out


def shared_prompt_groups(rollout):
    """(index of each group's first row, rows per group) for runs of consecutive rows whose prompt (ids and
    padding) is the same, or None when no two neighbours share one (nothing to save)."""
    C = rollout.completion_ids.shape[1]
    P = rollout.input_ids.shape[1] - C
    if P == 0 or len(rollout) < 2:
        return None
    ids, att = rollout.input_ids[:, :P], rollout.attention_mask[:, :P]
    same = (ids[1:] == ids[:-1]).all(1) & (att[1:] == att[:-1]).all(1)
    if not bool(same.any()):
        return None
    first = torch.cat([same.new_ones(1), ~same]).nonzero().squeeze(1)
    counts = torch.diff(torch.cat([first, first.new_tensor([len(rollout)])]))
    return first, counts


def token_logprobs(lm_head, hidden, rollout, temperature=1.0, with_entropy=False):
    """(logps, entropy or None), both (N, C), from the final hidden states (N, P + C, d) of a forward over
    the rollout: completion_logprobs' arithmetic."""
    C = rollout.completion_ids.shape[1]
    logits = lm_head(hidden[:, -C - 1:-1]).float() / temperature
    logp_all = torch.log_softmax(logits, -1)
    mask = rollout.completion_mask
    logps = logp_all.gather(-1, rollout.completion_ids[..., None]).squeeze(-1) * mask
    if not with_entropy:
        return logps, None
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1) * mask
    return logps, entropy


def concat_rollouts(rollouts, pad_id):
    """One Rollout of several, rows in order: prompts left-padded and completions right-padded to the
    widest (padding is pad_id, masked 0)."""
    if len(rollouts) == 1:
        return rollouts[0]
    P = max(r.input_ids.shape[1] - r.completion_ids.shape[1] for r in rollouts)
    C = max(r.completion_ids.shape[1] for r in rollouts)
    ids, att, comp, cmask = [], [], [], []
    for r in rollouts:
        p, c = r.input_ids.shape[1] - r.completion_ids.shape[1], r.completion_ids.shape[1]
        n = len(r)
        left = r.input_ids.new_full((n, P - p), pad_id)
        ids.append(torch.cat([left, r.input_ids, r.input_ids.new_full((n, C - c), pad_id)], 1))
        att.append(torch.cat([r.attention_mask.new_zeros(n, P - p), r.attention_mask,
                              r.attention_mask.new_zeros(n, C - c)], 1))
        comp.append(torch.cat([r.completion_ids, r.completion_ids.new_full((n, C - c), pad_id)], 1))
        cmask.append(torch.cat([r.completion_mask, r.completion_mask.new_zeros(n, C - c)], 1))
    return Rollout(torch.cat(ids), torch.cat(att), torch.cat(comp), torch.cat(cmask),
                   [t for r in rollouts for t in r.texts], torch.cat([r.truncated for r in rollouts]))
