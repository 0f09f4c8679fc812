"""model/model_minimind.py: MiniMind2's architecture as a transformers causal LM."""
import os
import sys
import threading

import pytest
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM,  # noqa: E402
                          PreTrainedTokenizerFast, TextIteratorStreamer)
from transformers.modeling_outputs import CausalLMOutputWithPast  # noqa: E402

from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402

VOCAB = 97


def tiny_config(**overrides):
    kw = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2, vocab_size=VOCAB)
    kw.update(overrides)
    return MiniMindConfig(**kw)


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = MiniMindForCausalLM(tiny_config(**overrides)).eval()
    # A freshly initialised model with tied embeddings just echoes its last token; louder blocks make
    # greedy decoding produce varied sequences, so the generation tests compare something real.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("model.layers.") and p.dim() == 2:
                p.normal_(0, 0.2)
    return model


def millions(model):
    # as MiniMind prints it: unique parameters, so the tied embedding/LM head counts once
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 3)


# ---------------------------------------------------------------- sizes and config

@pytest.mark.parametrize("hidden,layers,use_moe,expected", [
    (512, 8, False, 25.830),   # MiniMind2-Small
    (768, 16, False, 104.031),  # MiniMind2
    (640, 8, True, 145.030),   # MiniMind2-MoE
])
def test_parameter_counts_match_minimind2(hidden, layers, use_moe, expected):
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = MiniMindForCausalLM(MiniMindConfig(hidden_size=hidden, num_hidden_layers=layers, use_moe=use_moe))
    assert millions(model) == expected
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_config_defaults_are_minimind2():
    cfg = MiniMindConfig()
    assert (cfg.vocab_size, cfg.num_attention_heads, cfg.num_key_value_heads) == (6400, 8, 2)
    assert (cfg.rms_norm_eps, cfg.rope_theta, cfg.max_position_embeddings) == (1e-5, 1e6, 32768)
    assert cfg.tie_word_embeddings is True
    assert MiniMindConfig(hidden_size=512).intermediate_size == 1408
    assert MiniMindConfig(hidden_size=768).intermediate_size == 2048
    assert MiniMindConfig(hidden_size=640).intermediate_size == 1728
    assert MiniMindConfig(hidden_size=512, intermediate_size=1000).intermediate_size == 1000
    moe = MiniMindConfig(use_moe=True)
    assert (moe.n_routed_experts, moe.num_experts_per_tok, moe.n_shared_experts) == (4, 2, 1)
    assert (moe.aux_loss_alpha, moe.seq_aux, moe.norm_topk_prob, moe.scoring_func) == (0.1, True, True, "softmax")


def test_invalid_head_combinations_say_which():
    with pytest.raises(ValueError, match="hidden_size .100. must be divisible by num_attention_heads .8."):
        MiniMindConfig(hidden_size=100)
    with pytest.raises(ValueError, match="num_attention_heads .8. must be divisible by num_key_value_heads .3."):
        MiniMindConfig(hidden_size=64, num_key_value_heads=3)


# ---------------------------------------------------------------- forward

def test_forward_returns_logits_loss_aux_and_cache():
    model = tiny_model()
    ids = torch.randint(0, VOCAB, (2, 12))
    labels = ids.clone()
    labels[0, :5] = -100
    out = model(ids, labels=labels, use_cache=True)
    assert isinstance(out, CausalLMOutputWithPast)
    assert out.logits.shape == (2, 12, VOCAB)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    assert out.aux_loss.item() == 0.0
    assert out.cache.get_seq_length() == 12
    assert len(out.cache.layers) == 2
    # generation asks for the last position's logits only
    last = model(ids, logits_to_keep=1).logits
    assert last.shape == (2, 1, VOCAB)
    torch.testing.assert_close(last, out.logits[:, -1:])
    assert model(ids).cache is None
    with pytest.raises(ValueError, match="logits_to_keep"):
        model(ids, labels=labels, logits_to_keep=1)
    with pytest.raises(ValueError, match="attention_mask covers 5 positions, expected past .0. . new .12. = 12"):
        model(ids, attention_mask=torch.ones(2, 5))


def test_labels_loss_and_grads_equal_sliced_logits():
    """model(ids, labels=) shifts the labels (no logits[:, :-1] copy): the same loss as slicing, in its
    value and every gradient; num_items_in_batch (the HF Trainer's) divides the sum by it instead."""
    model = tiny_model()
    ids = torch.randint(0, VOCAB, (3, 17))
    labels = ids.clone()
    labels[0, :6] = -100
    labels[2, 11:] = -100
    loss = model(ids, labels=labels).loss
    loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    logits = model(ids).logits
    ref = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
    ref.backward()
    # the same terms, summed in another order: equal to float32 rounding
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=0)
    for n, p in model.named_parameters():
        torch.testing.assert_close(got[n], p.grad, rtol=1e-5, atol=1e-7, msg=n)
    n_targets = int((labels[:, 1:] != -100).sum())
    summed = model(ids, labels=labels, num_items_in_batch=torch.tensor(2 * n_targets)).loss
    torch.testing.assert_close(summed, ref.detach() / 2)


def test_cached_forward_in_chunks_equals_one_pass():
    model = tiny_model()
    ids = torch.randint(0, VOCAB, (2, 15))
    full = model(ids).logits
    first = model(ids[:, :6], use_cache=True)
    # several new tokens at once on top of a cache (speculative decoding, chunked prefill)
    second = model(ids[:, 6:13], past_key_values=first.cache, use_cache=True)
    third = model(ids[:, 13:], cache=second.cache, use_cache=True)
    torch.testing.assert_close(torch.cat([first.logits, second.logits, third.logits], 1), full, atol=1e-5, rtol=1e-4)


def test_padding_does_not_change_real_tokens():
    model = tiny_model()
    a = torch.randint(3, VOCAB, (1, 9))
    b = torch.randint(3, VOCAB, (1, 5))
    alone_a, alone_b = model(a).logits, model(b).logits
    pad = torch.zeros(1, 4, dtype=torch.long)
    ones, zeros = torch.ones(1, 5, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long)
    # right padding (training batches)
    out = model(torch.cat([a, torch.cat([b, pad], 1)]),
                attention_mask=torch.cat([torch.ones(1, 9, dtype=torch.long), torch.cat([ones, zeros], 1)])).logits
    torch.testing.assert_close(out[0:1], alone_a, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out[1:2, :5], alone_b, atol=1e-5, rtol=1e-4)
    # left padding (batched generation): positions count real tokens only
    out = model(torch.cat([a, torch.cat([pad, b], 1)]),
                attention_mask=torch.cat([torch.ones(1, 9, dtype=torch.long), torch.cat([zeros, ones], 1)])).logits
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1:2, 4:], alone_b, atol=1e-5, rtol=1e-4)


def test_explicit_position_ids_are_used():
    model = tiny_model()
    ids = torch.randint(0, VOCAB, (1, 6))
    default = model(ids).logits
    torch.testing.assert_close(model(ids, position_ids=torch.arange(6)[None]).logits, default)
    assert not torch.allclose(model(ids, position_ids=torch.arange(6)[None] + 7).logits, default)


def test_dense_forward_traces_as_one_graph():
    # torch.compile must not break the graph in the training forward (issue 6 relies on it)
    model = tiny_model()
    ids = torch.randint(0, VOCAB, (2, 8))
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(ids).logits, model(ids).logits)


def test_cpu_bf16_autocast_runs_and_stays_close():
    # CUDA bf16/fp16 autocast is checked on a GPU machine only; CPU autocast exercises the same casts
    model = tiny_model()
    ids = torch.randint(0, VOCAB, (2, 10))
    ref = model(ids).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, labels=ids)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    assert (out.logits.float() - ref).abs().max() < 0.1 * ref.abs().max()
    model.to(torch.bfloat16)
    assert model(ids).logits.dtype == torch.bfloat16


# ---------------------------------------------------------------- compatibility

def llama_twin(cfg):
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=cfg.max_position_embeddings,
        rms_norm_eps=cfg.rms_norm_eps, rope_theta=cfg.rope_theta, tie_word_embeddings=True,
        attention_bias=False, mlp_bias=False, hidden_act="silu")).eval()


def test_llama_loads_our_weights_and_agrees():
    model = tiny_model()
    llama = llama_twin(model.config)
    llama.load_state_dict(model.state_dict(), strict=True)
    assert llama.lm_head.weight.data_ptr() == llama.model.embed_tokens.weight.data_ptr()
    ids = torch.randint(0, VOCAB, (2, 20))
    assert (llama(ids).logits - model(ids).logits).abs().max() < 1e-4
    prompt = ids[:1, :5]
    ours = model.generate(prompt, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)
    theirs = llama.generate(prompt, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert torch.equal(ours, theirs)


def minimind2_state_dict(cfg):
    """Random tensors under the names and shapes MiniMind2's own code saves."""
    H, I, V, kv = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_key_value_heads * cfg.head_dim
    mlp = {"gate_proj": (I, H), "up_proj": (I, H), "down_proj": (H, I)}
    sd = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,), "lm_head.weight": (V, H)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        sd.update({p + "self_attn.q_proj.weight": (H, H), p + "self_attn.k_proj.weight": (kv, H),
                   p + "self_attn.v_proj.weight": (kv, H), p + "self_attn.o_proj.weight": (H, H),
                   p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,)})
        if not cfg.use_moe:
            sd.update({p + f"mlp.{n}.weight": s for n, s in mlp.items()})
            continue
        sd[p + "mlp.gate.weight"] = (cfg.n_routed_experts, H)
        for e in range(cfg.n_routed_experts):
            sd.update({p + f"mlp.experts.{e}.{n}.weight": s for n, s in mlp.items()})
        for s_ in range(cfg.n_shared_experts):
            sd.update({p + f"mlp.shared_experts.{s_}.{n}.weight": s for n, s in mlp.items()})
    sd = {k: torch.randn(shape) for k, shape in sd.items()}
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"]  # tied in MiniMind2 too
    return sd


@pytest.mark.parametrize("use_moe", [False, True])
def test_minimind2_checkpoint_loads_strict(use_moe):
    model = tiny_model(use_moe=use_moe)
    sd = minimind2_state_dict(model.config)
    assert set(model.state_dict()) == set(sd)  # same names, nothing extra (no rotary tables)
    model.load_state_dict(sd, strict=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, sd[name]), name
    assert model.lm_head.weight is model.model.embed_tokens.weight


# ---------------------------------------------------------------- generation

def count_forward_lengths(model):
    lengths = []
    model.register_forward_pre_hook(lambda mod, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]),
                                    with_kwargs=True)
    return lengths


@pytest.mark.parametrize("use_moe", [False, True])
def test_greedy_generate_with_cache_equals_without(use_moe):
    model = tiny_model(use_moe=use_moe)
    prompt = torch.randint(3, VOCAB, (2, 7))
    lengths = count_forward_lengths(model)
    cached = model.generate(prompt, max_new_tokens=16, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert lengths == [7] + [1] * 15  # the cache really was used: one new token per step
    lengths.clear()
    uncached = model.generate(prompt, max_new_tokens=16, do_sample=False, eos_token_id=None, pad_token_id=0,
                              use_cache=False)
    assert lengths == list(range(7, 7 + 16))
    assert cached.shape == (2, 7 + 16)
    assert torch.equal(cached, uncached)
    assert len(set(cached[0, 7:].tolist())) > 2  # a real sequence, not one token repeated


def test_sampling_options():
    model = tiny_model()
    prompt = torch.randint(3, VOCAB, (1, 5))
    kw = dict(max_new_tokens=20, do_sample=True, temperature=0.8, top_p=0.9, top_k=20, repetition_penalty=1.3,
              eos_token_id=None, pad_token_id=0)
    torch.manual_seed(1)
    a = model.generate(prompt, **kw)
    torch.manual_seed(1)
    b = model.generate(prompt, **kw)
    assert torch.equal(a, b) and a.shape == (1, 25)
    assert ((a >= 0) & (a < VOCAB)).all()
    torch.manual_seed(2)
    assert not torch.equal(model.generate(prompt, **kw), a)  # it does sample
    # top_k=1 leaves one candidate: sampling must reduce to greedy
    greedy = model.generate(prompt, max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert torch.equal(model.generate(prompt, **{**kw, "top_k": 1, "repetition_penalty": 1.0}), greedy)


def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    vocab = {f"w{i}": i for i in range(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="w0", eos_token="w2")


def test_text_iterator_streamer_streams():
    model, tok = tiny_model(), word_tokenizer()
    prompt = torch.randint(3, VOCAB, (1, 4))
    streamer = TextIteratorStreamer(tok, skip_prompt=True, timeout=60)
    kw = dict(max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)
    thread = threading.Thread(target=model.generate, kwargs=dict(input_ids=prompt, streamer=streamer, **kw))
    thread.start()
    chunks = [c for c in streamer]
    thread.join()
    expected = model.generate(prompt, **kw)[0, 4:]
    assert len([c for c in chunks if c.strip()]) > 1  # arrives piece by piece
    assert "".join(chunks).split() == tok.decode(expected).split()


def test_left_padded_batch_generates_like_each_prompt_alone():
    model = tiny_model()
    prompts = [torch.randint(3, VOCAB, (n,)) for n in (9, 4, 6)]
    kw = dict(max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=0)
    longest = max(len(p) for p in prompts)
    ids = torch.stack([F.pad(p, (longest - len(p), 0), value=0) for p in prompts])
    mask = torch.stack([F.pad(torch.ones(len(p), dtype=torch.long), (longest - len(p), 0)) for p in prompts])
    batch = model.generate(ids, attention_mask=mask, **kw)[:, longest:]
    for row, p in zip(batch, prompts):
        assert torch.equal(row, model.generate(p[None], **kw)[0, len(p):])


def test_static_cache_generation_matches_dynamic():
    # the compilable static cache hands the model a ready 4-D mask
    model = tiny_model()
    ids = torch.randint(3, VOCAB, (2, 6))
    ids[1, :2] = 0
    mask = (ids != 0).long()
    kw = dict(attention_mask=mask, max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert torch.equal(model.generate(ids, **kw), model.generate(ids, cache_implementation="static", **kw))


# ---------------------------------------------------------------- save / load

@pytest.mark.parametrize("use_moe", [False, True])
def test_save_pretrained_round_trip(tmp_path, use_moe):
    model = tiny_model(use_moe=use_moe)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is MiniMindForCausalLM and loaded.config.use_moe == use_moe
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    ids = torch.randint(0, VOCAB, (2, 10))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


# ---------------------------------------------------------------- mixture of experts

def moe_reference(moe, x):
    """Token by token, straight from the definition: sum_k w_k * expert_k(x) + shared(x)."""
    out = torch.zeros_like(x)
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            h = x[b, t]
            probs = moe.gate(h).softmax(-1)
            w, idx = probs.topk(moe.top_k)
            w = w / w.sum()
            out[b, t] = sum(wi * moe.experts[i](h) for wi, i in zip(w, idx.tolist()))
            out[b, t] += sum(e(h) for e in moe.shared_experts)
    return out


def test_moe_dispatch_matches_per_token_definition():
    model = tiny_model(use_moe=True)
    moe = model.model.layers[0].mlp
    x = torch.randn(3, 7, 64)
    y, aux = moe(x)
    torch.testing.assert_close(y, moe_reference(moe, x), atol=1e-5, rtol=1e-4)
    assert aux.item() == 0.0  # eval mode


@pytest.mark.parametrize("seq_aux", [True, False])
def test_moe_aux_loss_is_alpha_per_layer_under_uniform_routing(seq_aux):
    # with a zero router every expert has probability 1/E and the load term sums to E: loss = alpha per layer
    model = tiny_model(use_moe=True, seq_aux=seq_aux).train()
    for layer in model.model.layers:
        torch.nn.init.zeros_(layer.mlp.gate.weight)
    out = model(torch.randint(0, VOCAB, (2, 8)))
    torch.testing.assert_close(out.aux_loss, torch.tensor(0.1 * 2))


def test_moe_trains_every_parameter():
    model = tiny_model(use_moe=True).train()
    seen_grad = {n: False for n, _ in model.named_parameters()}
    for step in range(4):
        ids = torch.randint(0, VOCAB, (4, 16))
        out = model(ids, labels=ids)
        assert out.aux_loss.item() > 0
        (out.loss + out.aux_loss).backward()
        for n, p in model.named_parameters():
            assert p.grad is not None, n  # every parameter is in the graph every step (DDP needs that)
            seen_grad[n] |= bool(p.grad.abs().sum() > 0)
        model.zero_grad()
    assert all(seen_grad.values()), [n for n, ok in seen_grad.items() if not ok]
    model.eval()
    assert model(ids).aux_loss.item() == 0.0
