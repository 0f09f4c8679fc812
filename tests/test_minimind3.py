"""The MiniMind-3 family (--model_family minimind3) beside MiniMind2: its architecture (read from MiniMind's
code at its HEAD: 4 key/value heads, RMSNorm on each head's queries and keys before RoPE, an MLP of
ceil(hidden * pi / 64) * 64, eps 1e-6, an MoE of 4 experts, top-1, no shared expert, weight renormalised),
its parameter counts, logits equal to transformers' own Qwen3 / Qwen3-MoE on the same weights, a state
dict under MiniMind's names loading strictly, MiniMind-3's config.json, and the family in the flags and
the checkpoints."""
import math
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from model.model_minimind import describe_params  # noqa: E402


def tiny3(use_moe=False, **over):
    kw = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=320, model_family="minimind3",
              use_moe=use_moe, max_position_embeddings=512)
    kw.update(over)
    torch.manual_seed(0)
    net = MiniMindForCausalLM(MiniMindConfig(**kw)).eval()
    with torch.no_grad():  # norms away from 1, so a missing or misplaced norm shows in the logits
        for n, p in net.named_parameters():
            if n.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return net


# ---------------------------------------------------------------------------------------------- the config

def test_family_defaults_and_parameter_counts():
    c = MiniMindConfig(hidden_size=768, num_hidden_layers=8, model_family="minimind3")
    assert (c.num_key_value_heads, c.head_dim, c.intermediate_size, c.rms_norm_eps, c.qk_norm) == (4, 96, 2432, 1e-6, True)
    assert c.intermediate_size == math.ceil(768 * math.pi / 64) * 64
    assert (c.n_routed_experts, c.num_experts_per_tok, c.n_shared_experts, c.aux_loss_alpha, c.seq_aux) == (4, 1, 0, 5e-4, False)
    # MiniMind2 is as it was
    c2 = MiniMindConfig(hidden_size=512, num_hidden_layers=8)
    assert (c2.model_family, c2.num_key_value_heads, c2.intermediate_size, c2.rms_norm_eps, c2.qk_norm) == \
        ("minimind2", 2, 1408, 1e-5, False)
    assert (c2.n_routed_experts, c2.num_experts_per_tok, c2.n_shared_experts) == (4, 2, 1)
    with torch.device("meta"):
        dense = MiniMindForCausalLM(MiniMindConfig(hidden_size=768, num_hidden_layers=8, model_family="minimind3"))
        moe = MiniMindForCausalLM(MiniMindConfig(hidden_size=768, num_hidden_layers=8, model_family="minimind3",
                                                 use_moe=True))
    # MiniMind's README: minimind-3 63.91M; minimind-3-moe ~198M total, ~64M active
    assert describe_params(dense) == "LLM total params: 63.912 M"
    assert describe_params(moe) == ("LLM total params: 198.417 M\nMoE: 63.937 M active per token (1 of 4 routed "
                                    "experts per layer, 0 shared)")
    with pytest.raises(ValueError, match="model_family must be one of"):
        MiniMindConfig(model_family="minimind4")


def test_minimind3_config_json_as_minimind_publishes_it():
    """MiniMind-3's config.json (its field names: num_experts, router_aux_loss_coef, moe_intermediate_size,
    rope_scaling; no model_family) is read as the MiniMind-3 family."""
    theirs = {"model_type": "minimind", "hidden_size": 768, "num_hidden_layers": 8, "use_moe": True, "dropout": 0.0,
              "vocab_size": 6400, "bos_token_id": 1, "eos_token_id": 2, "flash_attn": True, "num_attention_heads": 8,
              "num_key_value_heads": 4, "head_dim": 96, "hidden_act": "silu", "intermediate_size": 2432,
              "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1e6, "tie_word_embeddings": True,
              "inference_rope_scaling": False, "rope_scaling": None, "num_experts": 4, "num_experts_per_tok": 1,
              "moe_intermediate_size": 2432, "norm_topk_prob": True, "router_aux_loss_coef": 5e-4}
    c = MiniMindConfig(**theirs)
    assert (c.model_family, c.n_routed_experts, c.aux_loss_alpha, c.moe_intermediate_size, c.n_shared_experts) == \
        ("minimind3", 4, 5e-4, 2432, 0)
    assert (c.head_dim, c.qk_norm, c.num_key_value_heads) == (96, True, 4)


# ---------------------------------------------------------------------------------------------- Qwen3 parity

def test_dense_logits_equal_transformers_qwen3():
    from transformers import Qwen3ForCausalLM

    from model.export import qwen3_config_from
    net = tiny3()
    qwen = Qwen3ForCausalLM(qwen3_config_from(net.config)).eval()
    missing, unexpected = qwen.load_state_dict(net.state_dict(), strict=True)
    ids = torch.randint(3, 320, (2, 37))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # a left-padded row
    with torch.no_grad():
        for m in (None, mask):
            ours, theirs = net(ids, attention_mask=m).logits, qwen(ids, attention_mask=m).logits
            real = slice(None) if m is None else (m.bool())
            assert torch.allclose(ours[real], theirs[real], atol=1e-5, rtol=1e-4), (ours - theirs).abs().max()
        # greedy continuations agree token for token
        a = net.generate(ids[:1, :12], max_new_tokens=10, do_sample=False)
        b = qwen.generate(ids[:1, :12], max_new_tokens=10, do_sample=False)
    assert torch.equal(a, b)


def test_moe_logits_equal_transformers_qwen3_moe(tmp_path):
    """The MoE under Qwen3-MoE's names (one tensor per expert, as the Hub's Qwen3-MoE checkpoints and MiniMind's
    are): transformers reads the folder, fusing the experts itself, and computes the same logits."""
    from safetensors.torch import save_file
    from transformers import Qwen3MoeForCausalLM

    from model.export import qwen3_config_from
    net = tiny3(use_moe=True)
    cfg = qwen3_config_from(net.config)
    cfg.save_pretrained(tmp_path)
    state = {k: v.contiguous() for k, v in net.state_dict().items() if k != "lm_head.weight"}  # tied
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    qwen = Qwen3MoeForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids = torch.randint(3, 320, (2, 29))
    with torch.no_grad():
        ours, theirs = net(ids).logits, qwen(ids).logits
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-4), (ours - theirs).abs().max()
    # top-1 with the weight renormalised: each token's expert output enters unscaled (Qwen3-MoE's rule);
    # MiniMind2 keeps the softmax weight when it routes to one expert
    assert net.model.layers[0].mlp.norm_topk_prob is True
    two = MiniMindForCausalLM(MiniMindConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, use_moe=True,
                                             num_experts_per_tok=1, vocab_size=320))
    assert two.model.layers[0].mlp.norm_topk_prob is False


# ---------------------------------------------------------------------------------------------- MiniMind's names

def minimind_head_keys(n_layers, use_moe, n_experts=4):
    """The state-dict keys MiniMind's HEAD model_minimind.py gives its MiniMindForCausalLM (its RoPE buffers
    are not persistent), in its module order."""
    keys = ["model.embed_tokens.weight"]
    for i in range(n_layers):
        p = f"model.layers.{i}."
        keys += [p + f"self_attn.{n}.weight" for n in ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")]
        keys += [p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
        if use_moe:
            keys.append(p + "mlp.gate.weight")
            keys += [p + f"mlp.experts.{e}.{n}.weight" for e in range(n_experts) for n in ("gate_proj", "down_proj", "up_proj")]
        else:
            keys += [p + f"mlp.{n}.weight" for n in ("gate_proj", "down_proj", "up_proj")]
    return keys + ["model.norm.weight", "lm_head.weight"]


@pytest.mark.parametrize("use_moe", [False, True])
def test_a_pth_under_minimind_heads_names_loads_strictly(tmp_path, use_moe):
    """A .pth as MiniMind's HEAD trainer saves one (its state dict in half precision, every key including the
    tied lm_head) loads here with strict=True and gives the logits of the weights it holds."""
    from trainer.checkpoint import load_weights
    src = tiny3(use_moe)
    assert set(src.state_dict()) == set(minimind_head_keys(2, use_moe))
    path = tmp_path / "full_sft_64.pth"
    torch.save({k: v.half() for k, v in src.state_dict().items()}, path)
    net = MiniMindForCausalLM(MiniMindConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                             vocab_size=320, model_family="minimind3", use_moe=use_moe,
                                             max_position_embeddings=512)).eval()
    load_weights(net, str(path))
    ref = src.half().float()
    ids = torch.randint(3, 320, (1, 16))
    with torch.no_grad():
        assert torch.equal(net(ids).logits, ref(ids).logits)


def test_the_wrong_family_is_one_line_naming_both(tmp_path):
    from trainer.checkpoint import load_weights
    from trainer.errors import UserError
    path = tmp_path / "full_sft_64.pth"
    torch.save(tiny3().state_dict(), path)
    two = MiniMindForCausalLM(MiniMindConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                             vocab_size=320))
    with pytest.raises(UserError) as e:
        load_weights(two, str(path))
    msg = str(e.value)
    assert "holds a MiniMind-3 model, but the flags build a MiniMind2 one" in msg and "--model_family minimind3" in msg
    assert "\n" not in msg


# ---------------------------------------------------------------------------------------------- the flags

def test_model_family_flag_picks_the_family_and_its_sizes():
    import train_full_sft
    from trainer.args import build_config
    a = train_full_sft.parse_args([])
    assert (a.model_family, a.dim, a.n_layers) == ("minimind2", 512, 8) and type(a.dim) is int
    a = train_full_sft.parse_args(["--model_family", "minimind3"])
    assert (a.model_family, a.dim, a.n_layers) == ("minimind3", 768, 8) and type(a.dim) is int
    assert build_config(a).model_family == "minimind3" and build_config(a).num_key_value_heads == 4
    # an explicit size wins, before or after the family
    assert train_full_sft.parse_args(["--model_family", "minimind3", "--dim", "512"]).dim == 512
    assert train_full_sft.parse_args(["--n_layers", "16", "--model_family", "minimind3"]).n_layers == 16
