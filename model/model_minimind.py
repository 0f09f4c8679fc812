"""
MiniMind2 as a Hugging Face causal LM, dense and mixture-of-experts, in one file.

The architecture is MiniMind2's (a small Llama): pre-norm blocks, RMSNorm, rotary
position embedding, grouped-query attention and a SwiGLU MLP, the input embedding
tied to the LM head; the MoE variant swaps each MLP for 4 routed experts (top-2)
plus 1 shared expert. Parameter names are MiniMind2's, which are Llama's: MiniMind2
checkpoints load as they are, and dense weights load into transformers.LlamaForCausalLM
(and from there into vLLM / llama.cpp / Ollama).

MiniMindForSequenceClassification is the same trunk with a linear `score` head read at each sequence's
last token (a reward model, num_labels=1: train_reward.py), as transformers' LlamaForSequenceClassification.

Sizes (unique parameters): 512 x 8 = 25.830M (MiniMind2-Small),
768 x 16 = 104.031M (MiniMind2), 640 x 8 with MoE = 145.030M (MiniMind2-MoE).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast, SequenceClassifierOutputWithPast


# MiniMind's 2025-10 `inference_rope_scaling=True`: YaRN from its 2048 trained positions to 32768.
MINIMIND_YARN = {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 2048,
                 "beta_fast": 32.0, "beta_slow": 1.0, "attention_factor": 1.0}


# The two model families. MiniMind2 (2025) is a small Llama; MiniMind-3 (2026-04) is aligned with Qwen3: 4
# key/value heads, RMSNorm on each head's queries and keys before RoPE, a wider MLP, eps 1e-6, and an MoE of
# 4 routed experts, top-1, no shared expert, its weight renormalised (so 1) as Qwen3-MoE does. A config
# field left unset takes its family's value.
FAMILIES = {
    "minimind2": dict(num_key_value_heads=2, rms_norm_eps=1e-5, qk_norm=False, num_experts_per_tok=2,
                      n_routed_experts=4, n_shared_experts=1, aux_loss_alpha=0.1, seq_aux=True),
    "minimind3": dict(num_key_value_heads=4, rms_norm_eps=1e-6, qk_norm=True, num_experts_per_tok=1,
                      n_routed_experts=4, n_shared_experts=0, aux_loss_alpha=5e-4, seq_aux=False),
}


def family_intermediate_size(family, hidden_size):
    """The MLP width a family gives a hidden size, rounded up to 64: MiniMind2 8/3 of it (SwiGLU keeps the
    MLP's FLOPs at 4x), MiniMind-3 pi times it."""
    if family == "minimind3":
        return math.ceil(hidden_size * math.pi / 64) * 64
    return 64 * math.ceil(int(hidden_size * 8 / 3) / 64)


class MiniMindConfig(PreTrainedConfig):
    model_type = "minimind"

    def __init__(
        self,
        hidden_size: int = 512,
        num_hidden_layers: int = 8,
        num_attention_heads: int = 8,
        num_key_value_heads: int | None = None,
        head_dim: int | None = None,
        intermediate_size: int | None = None,
        moe_intermediate_size: int | None = None,
        vocab_size: int = 6400,
        rms_norm_eps: float | None = None,
        rope_theta: float = 1e6,
        max_position_embeddings: int = 32768,
        # RoPE scaling in transformers' own terms (rope_type "default" or "yarn", factor, ...), so that
        # the Llama export, vLLM and llama.cpp read the same; MiniMind's switch sets MINIMIND_YARN
        rope_parameters: dict | None = None,
        inference_rope_scaling: bool = False,
        dropout: float = 0.0,
        initializer_range: float = 0.02,
        model_family: str | None = None,
        qk_norm: bool | None = None,
        # mixture of experts (ignored when use_moe is False)
        use_moe: bool = False,
        num_experts_per_tok: int | None = None,
        n_routed_experts: int | None = None,
        n_shared_experts: int | None = None,
        scoring_func: str = "softmax",
        aux_loss_alpha: float | None = None,
        seq_aux: bool | None = None,
        norm_topk_prob: bool = True,
        # transformers 5 no longer ties by default; MiniMind2 always does
        tie_word_embeddings: bool = True,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        pad_token_id: int = 0,
        **kwargs,
    ):
        if model_family is None:  # a config.json without the field: MiniMind-3's own names its MoE fields apart
            model_family = "minimind3" if "router_aux_loss_coef" in kwargs or "num_experts" in kwargs else "minimind2"
        kwargs.pop("rope_scaling", None)  # MiniMind's own spelling of inference_rope_scaling's YaRN
        if model_family not in FAMILIES:
            raise ValueError(f"model_family must be one of {sorted(FAMILIES)}, got {model_family!r}")
        # MiniMind-3's own config.json names for the MoE fields
        n_routed_experts = kwargs.pop("num_experts", n_routed_experts)
        aux_loss_alpha = kwargs.pop("router_aux_loss_coef", aux_loss_alpha)
        given = dict(num_key_value_heads=num_key_value_heads, rms_norm_eps=rms_norm_eps, qk_norm=qk_norm,
                     num_experts_per_tok=num_experts_per_tok, n_routed_experts=n_routed_experts,
                     n_shared_experts=n_shared_experts, aux_loss_alpha=aux_loss_alpha, seq_aux=seq_aux)
        f = {k: FAMILIES[model_family][k] if v is None else v for k, v in given.items()}
        num_key_value_heads, rms_norm_eps, qk_norm = f["num_key_value_heads"], f["rms_norm_eps"], f["qk_norm"]
        num_experts_per_tok, n_routed_experts = f["num_experts_per_tok"], f["n_routed_experts"]
        n_shared_experts, aux_loss_alpha, seq_aux = f["n_shared_experts"], f["aux_loss_alpha"], f["seq_aux"]
        if head_dim is None:
            if hidden_size % num_attention_heads != 0:
                raise ValueError(
                    f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads})"
                )
            head_dim = hidden_size // num_attention_heads
        if num_attention_heads % num_key_value_heads != 0:
            raise ValueError(
                f"num_attention_heads ({num_attention_heads}) must be divisible by "
                f"num_key_value_heads ({num_key_value_heads})"
            )
        if use_moe and not 1 <= num_experts_per_tok <= n_routed_experts:
            raise ValueError(
                f"num_experts_per_tok ({num_experts_per_tok}) must be between 1 and "
                f"n_routed_experts ({n_routed_experts})"
            )
        if scoring_func != "softmax":
            raise ValueError(f"scoring_func must be 'softmax' (the only one MiniMind has), got {scoring_func!r}")
        if intermediate_size is None:
            intermediate_size = family_intermediate_size(model_family, hidden_size)
        self.model_family = model_family
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.qk_norm = bool(qk_norm)
        self.intermediate_size = intermediate_size
        self.moe_intermediate_size = moe_intermediate_size or intermediate_size  # each expert's MLP width
        self.vocab_size = vocab_size
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        if inference_rope_scaling and not rope_parameters:
            rope_parameters = MINIMIND_YARN
        rope_type = (rope_parameters or {}).get("rope_type", "default")
        if rope_type not in ("default", "yarn"):
            raise ValueError(f"rope_type must be 'default' or 'yarn' (MiniMind's two), got {rope_type!r}")
        self.rope_parameters = {**rope_parameters, "rope_theta": rope_theta} if rope_parameters else None
        self.inference_rope_scaling = rope_type == "yarn"
        self.max_position_embeddings = max_position_embeddings
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.use_moe = use_moe
        self.num_experts_per_tok = num_experts_per_tok
        self.n_routed_experts = n_routed_experts
        self.n_shared_experts = n_shared_experts
        self.scoring_func = scoring_func
        self.aux_loss_alpha = aux_loss_alpha
        self.seq_aux = seq_aux
        self.norm_topk_prob = norm_topk_prob
        super().__init__(
            tie_word_embeddings=tie_word_embeddings,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            **kwargs,
        )


@dataclass
class MiniMindCausalLMOutput(CausalLMOutputWithPast):
    """CausalLMOutputWithPast plus the MoE load-balancing loss (0 for dense models and in eval)."""

    aux_loss: torch.FloatTensor | None = None


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # float32 even under bf16/fp16 autocast: the mean of squares overflows/underflows in half precision
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * x32).type_as(x)


def rope_frequencies(config, device=None):
    """(inverse frequencies (head_dim/2,), attention scaling) of the rotary embedding, float32.

    Plain RoPE, or YaRN computed by transformers' own formula from config.rope_parameters, so the
    model and its Llama export scale alike. MiniMind's YaRN is the same formula but for one clamp (the
    ramp's upper end at head_dim/2 - 1, not head_dim - 1), which bites only when
    original_max_position_embeddings > 2*pi*sqrt(rope_theta) (6283 at theta 1e6); never at its 2048.
    """
    rp = getattr(config, "rope_parameters", None) or {}
    if rp.get("rope_type", "default") == "yarn":
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
        inv_freq, scale = ROPE_INIT_FUNCTIONS["yarn"](config, device)
        return inv_freq.float(), float(scale)
    hd = config.head_dim
    return 1.0 / (config.rope_theta ** (torch.arange(0, hd, 2, device=device).float() / hd)), 1.0


def rotary_cos_sin(position_ids, inv_freq, scale=1.0):
    """cos/sin of the rotary angles for the given positions: (B or 1, T) -> 2 x (B or 1, 1, T, head_dim), float32.

    Computed on every call from the frequencies rather than kept as a buffer: it costs a few tiny kernels,
    lets any position_ids through (left padding), cannot be lost to meta-device loading or rounded by
    model.to(bfloat16), and leaves the state_dict with exactly MiniMind2's / Llama's keys.
    """
    angles = position_ids[..., None].float() * inv_freq
    angles = torch.cat((angles, angles), dim=-1)  # "rotate_half" layout: dim i pairs with dim i + head_dim/2
    return (angles.cos() * scale)[:, None], (angles.sin() * scale)[:, None]


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x, cos, sin):
    x32 = x.float()  # rotate in float32: bf16 angles lose position information at long context
    return (x32 * cos + rotate_half(x32) * sin).type_as(x)


class Attention(nn.Module):
    def __init__(self, config: MiniMindConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx  # where this layer's keys/values live in the cache
        self.n_heads = config.num_attention_heads
        self.n_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        self.q_proj = nn.Linear(config.hidden_size, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, config.hidden_size, bias=False)
        if config.qk_norm:  # MiniMind-3 / Qwen3: each head's queries and keys RMS-normed before RoPE
            self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.qk_norm = config.qk_norm
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, rotary, mask, cache):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = rotary
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # now every position so far, (B, H_kv, past + T, D)

        if mask is None:
            # Plain causal (or a single new token that sees everything): SDPA can use its flash kernels,
            # and those read the shared key/value heads directly.
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=T > 1, enable_gqa=True, dropout_p=self.dropout if self.training else 0.0
            )
        else:
            # With a mask the GQA path would fall back to the slow math kernel; repeating the heads keeps
            # the memory-efficient kernel available.
            n_rep = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
            )
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)
        return self.resid_dropout(self.o_proj(y))


class FeedForward(nn.Module):
    """SwiGLU MLP; also one expert of the MoE layer."""

    def __init__(self, config: MiniMindConfig, width: int | None = None):
        super().__init__()
        width = width or config.intermediate_size
        self.gate_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.down_proj = nn.Linear(width, config.hidden_size, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)))


class MoEFeedForward(nn.Module):
    """Top-k routed experts plus always-on shared experts (DeepSeek-MoE style, as in MiniMind2; MiniMind-3 has
    none, as Qwen3-MoE)."""

    def __init__(self, config: MiniMindConfig):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.n_experts = config.n_routed_experts
        # MiniMind2 renormalises the chosen experts' weights only when it chooses several; MiniMind-3 (and
        # Qwen3-MoE) always, so its single expert's weight is 1
        self.norm_topk_prob = config.norm_topk_prob and (self.top_k > 1 or config.model_family == "minimind3")
        self.aux_loss_alpha = config.aux_loss_alpha
        self.seq_aux = config.seq_aux
        self.family = config.model_family
        self.gate = nn.Linear(config.hidden_size, config.n_routed_experts, bias=False)  # the router
        self.experts = nn.ModuleList(FeedForward(config, config.moe_intermediate_size)
                                     for _ in range(config.n_routed_experts))
        self.shared_experts = nn.ModuleList(FeedForward(config) for _ in range(config.n_shared_experts))

    def forward(self, x):
        B, T, C = x.shape
        x_flat = x.reshape(B * T, C)
        scores = self.gate(x_flat).float().softmax(dim=-1)  # (B*T, E)
        top_weight, top_expert = scores.topk(self.top_k, dim=-1)  # (B*T, k)
        if self.norm_topk_prob:
            top_weight = top_weight / (top_weight.sum(dim=-1, keepdim=True) + 1e-20)

        # Dispatch: sort the B*T*k (token, expert) slots by expert so each expert runs once on a
        # contiguous batch of its tokens. An expert that got no tokens still runs on an empty batch,
        # which gives its weights a (zero) gradient: DDP needs every parameter in the graph.
        slot_expert = top_expert.flatten()
        slot_order = slot_expert.argsort(stable=True)
        tokens_per_expert = torch.bincount(slot_expert, minlength=self.n_experts).tolist()
        slot_weight = top_weight.flatten()
        y = torch.zeros_like(x_flat)
        for expert, slots in zip(self.experts, slot_order.split(tokens_per_expert)):
            token_idx = slots // self.top_k
            out = expert(x_flat[token_idx]) * slot_weight[slots, None]
            y.index_add_(0, token_idx, out.to(y.dtype))
        for expert in self.shared_experts:
            y = y + expert(x_flat)
        return y.view(B, T, C), self.load_balancing_loss(scores, top_expert, B, T)

    def load_balancing_loss(self, scores, top_expert, B, T):
        """Penalise routing that piles onto few experts: sum_e (load_e * mean_prob_e), uniform routing = 1 * alpha."""
        if not self.training or self.aux_loss_alpha <= 0:
            return scores.new_zeros(())
        E, k = self.n_experts, self.top_k
        if self.seq_aux:  # balance within each sequence, then average over the batch
            load = torch.zeros(B, E, device=scores.device)
            load.scatter_add_(1, top_expert.view(B, T * k), torch.ones(B, T * k, device=scores.device))
            load = load / (T * k / E)  # 1.0 per expert when perfectly balanced
            return (load * scores.view(B, T, E).mean(dim=1)).sum(dim=1).mean() * self.aux_loss_alpha
        # over the batch: MiniMind2 averages over the B*T*k routed slots; MiniMind-3 over the tokens, each of a
        # token's k slots counting (so uniform routing gives k * alpha; the family routes top-1, where they agree)
        load = F.one_hot(top_expert.flatten(), E).float().mean(0) * E * (k if self.family == "minimind3" else 1)
        return (load * scores.mean(0)).sum() * self.aux_loss_alpha


class MiniMindBlock(nn.Module):
    def __init__(self, config: MiniMindConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MoEFeedForward(config) if config.use_moe else FeedForward(config)

    def forward(self, x, rotary, mask, cache):
        x = x + self.self_attn(self.input_layernorm(x), rotary, mask, cache)
        if isinstance(self.mlp, MoEFeedForward):
            mlp_out, aux_loss = self.mlp(self.post_attention_layernorm(x))
        else:
            mlp_out, aux_loss = self.mlp(self.post_attention_layernorm(x)), None
        return x + mlp_out, aux_loss


def build_attention_mask(attention_mask, q_len, past_len, device):
    """Boolean (B, 1, q_len, past_len + q_len) mask for SDPA, True = may attend; None = plain causal.

    attention_mask is the usual (B, past_len + q_len) 1/0 padding mask over every position so far.
    A 4-D mask is taken as already built (generate() makes one for a static, compilable cache).
    """
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask
    if attention_mask is None and (past_len == 0 or q_len == 1):
        return None  # SDPA's is_causal (or, for one new token, no mask at all) says it all
    q_pos = torch.arange(past_len, past_len + q_len, device=device)[:, None]
    k_pos = torch.arange(past_len + q_len, device=device)[None, :]
    allowed = (k_pos <= q_pos)[None, None]  # (1, 1, q, kv)
    if attention_mask is not None:
        if attention_mask.shape[-1] != past_len + q_len:
            raise ValueError(
                f"attention_mask covers {attention_mask.shape[-1]} positions, expected past ({past_len}) + "
                f"new ({q_len}) = {past_len + q_len}"
            )
        is_real = attention_mask.bool()[:, None, None, :]
        # A padding query still attends to itself: a row with nothing allowed would make SDPA return NaN,
        # and NaN leaks into real tokens through the next layer's (zero-weighted) values.
        allowed = (allowed & is_real) | (k_pos == q_pos)
    return allowed


class MiniMindModel(nn.Module):
    """The transformer body: embeddings -> blocks -> final norm (state-dict prefix "model.")."""

    def __init__(self, config: MiniMindConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(MiniMindBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.config = config
        self._rope = {}  # device -> (inverse frequencies, attention scaling), made on first use

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None):
        B, T = input_ids.shape
        past_len = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            if attention_mask is not None:
                # count only real tokens, so a left-padded prompt gets the same positions as when alone
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -T:]
            else:
                position_ids = torch.arange(past_len, past_len + T, device=input_ids.device)[None]
        if position_ids.device not in self._rope:
            self._rope[position_ids.device] = rope_frequencies(self.config, position_ids.device)
        rotary = rotary_cos_sin(position_ids, *self._rope[position_ids.device])
        mask = build_attention_mask(attention_mask, T, past_len, input_ids.device)

        x = self.dropout(self.embed_tokens(input_ids))
        aux_loss = x.new_zeros((), dtype=torch.float32)
        for layer in self.layers:
            x, layer_aux_loss = layer(x, rotary, mask, cache)
            if layer_aux_loss is not None:
                aux_loss = aux_loss + layer_aux_loss
        return self.norm(x), aux_loss


class MiniMindForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = MiniMindConfig
    base_model_prefix = "model"
    _no_split_modules = ["MiniMindBlock"]
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: MiniMindConfig):
        super().__init__(config)
        self.model = MiniMindModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        # transformers' default init: normal(0, initializer_range) weights, ones for norms; ties lm_head
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        past_key_values: Cache | None = None,
        skip_logits: bool = False,
        **kwargs,
    ) -> MiniMindCausalLMOutput:
        """
        input_ids (B, T); attention_mask (B, past + T) with 1 = token, 0 = padding (left or right);
        position_ids default to counting real tokens. Training batches padded on the right need no
        attention_mask: causal attention already hides trailing pads from real tokens, and without a
        mask SDPA keeps its fastest (flash) kernel.
        The KV cache is a transformers Cache: generate() passes it as `cache` (transformers 5), older
        callers as `past_key_values`; the output carries it as `.cache`.
        labels (B, T) gives the shifted next-token cross-entropy, -100 = ignore.
        logits_to_keep=n computes logits for the last n positions only (0 = all): generation needs one.
        skip_logits=True returns the final hidden states (hidden_states=(h,), logits=None) for a loss that
        applies lm_head itself (trainer/fused_loss.py: in chunks, at target positions only).
        """
        if labels is not None and logits_to_keep:
            raise ValueError("labels need the logits of every position; do not combine them with logits_to_keep")
        cache = cache if cache is not None else past_key_values
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        hidden, aux_loss = self.model(input_ids, attention_mask, position_ids, cache)
        if skip_logits:
            return MiniMindCausalLMOutput(hidden_states=(hidden,), cache=cache, aux_loss=aux_loss)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)

        loss = None
        if labels is not None:
            # transformers' causal-LM loss, as Llama's: it shifts the labels (padding them with -100)
            # instead of slicing logits[:, :-1], a copy of the largest tensor whose backward writes a
            # zero-padded full-size gradient; it also honours the HF Trainer's num_items_in_batch
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        return MiniMindCausalLMOutput(loss=loss, logits=logits, cache=cache, aux_loss=aux_loss)


@dataclass
class MiniMindSequenceClassifierOutput(SequenceClassifierOutputWithPast):
    """SequenceClassifierOutputWithPast plus the MoE load-balancing loss."""

    aux_loss: torch.FloatTensor | None = None


def last_token_index(input_ids, pad_token_id):
    """(B,) index of each row's last token: the rightmost one that is not pad_token_id, as transformers'
    sequence classifiers find it (right or left padding); the last position when there is no pad id."""
    if pad_token_id is None:
        return torch.full(input_ids.shape[:1], input_ids.shape[1] - 1, device=input_ids.device)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    return (positions * (input_ids != pad_token_id)).argmax(-1)


class MiniMindForSequenceClassification(PreTrainedModel):
    """The trunk and a linear head (`score`, no bias) read at each row's last non-pad token.

    With num_labels=1 this is a reward model. The names are Llama's (model.*, score.weight): a dense one
    loads into transformers.LlamaForSequenceClassification, which reads the same token."""
    config_class = MiniMindConfig
    base_model_prefix = "model"
    _no_split_modules = ["MiniMindBlock"]

    def __init__(self, config: MiniMindConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = MiniMindModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, position_ids=None, **kwargs):
        """input_ids (B, T), padded with config.pad_token_id (right padding needs no attention_mask: causal
        attention hides trailing pads; left padding does) -> logits (B, num_labels) at each row's last token."""
        hidden, aux_loss = self.model(input_ids, attention_mask, position_ids)
        last = last_token_index(input_ids, self.config.pad_token_id)
        pooled = hidden[torch.arange(len(hidden), device=hidden.device), last]
        return MiniMindSequenceClassifierOutput(logits=self.score(pooled), aux_loss=aux_loss)


def describe_params(model):
    """'LLM total params: N M' (unique parameters, as MiniMind counts them), and for an MoE model the
    parameters one token runs through: the rest plus its top-k routed experts and the shared ones."""
    cfg = model.config
    total = sum(p.numel() for p in model.parameters())
    line = f"LLM total params: {total / 1e6:.3f} M"
    if not getattr(cfg, "use_moe", False):
        return line
    expert = sum(p.numel() for n, p in model.named_parameters() if ".mlp.experts.0." in n)
    active = total - expert * (cfg.n_routed_experts - cfg.num_experts_per_tok)
    return (line + f"\nMoE: {active / 1e6:.3f} M active per token ({cfg.num_experts_per_tok} of "
            f"{cfg.n_routed_experts} routed experts per layer, {cfg.n_shared_experts} shared)")
