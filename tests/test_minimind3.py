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


# ---------------------------------------------------------------------------------------------- exports

def convert(*argv):
    import subprocess
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "convert_model.py"), *argv],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module", params=[False, True], ids=["dense", "moe"])
def ckpt3(request, tmp_path_factory):
    """A MiniMind-3 checkpoint (64 x 2, the repo's tokenizer's 6400 tokens) as the training scripts write it."""
    from trainer.checkpoint import load_weights, save_weights
    use_moe = request.param
    out = tmp_path_factory.mktemp("m3")
    net = tiny3(use_moe, vocab_size=6400, max_position_embeddings=32768, num_attention_heads=8)
    path = str(out / f"full_sft_64{'_moe' if use_moe else ''}.pth")
    save_weights(net, path)
    load_weights(net, path)  # the weights as the file holds them (half precision)
    flags = ["--model_family", "minimind3", "--dim", "64", "--n_layers", "2", "--use_moe", str(int(use_moe)),
             "--out_dir", str(out)]
    return net, out, flags


def test_to_qwen3_gives_a_plain_qwen3_folder_with_equal_logits(ckpt3, tmp_path):
    from transformers import AutoModelForCausalLM
    net, out, flags = ckpt3
    r = convert("--to", "qwen3", *flags, "--outtype", "f32", "-o", str(tmp_path / "q"))
    assert r.returncode == 0, r.stderr[-2000:]
    qwen = AutoModelForCausalLM.from_pretrained(tmp_path / "q", dtype=torch.float32).eval()  # no remote code
    assert type(qwen).__name__ == ("Qwen3MoeForCausalLM" if net.config.use_moe else "Qwen3ForCausalLM")
    ids = torch.randint(3, 6400, (2, 21))
    with torch.no_grad():
        assert torch.allclose(qwen(ids).logits, net(ids).logits, atol=1e-5, rtol=1e-4)
    # and back: the project's own class reads the MiniMind-3 .pth it came from; MiniMind2 refuses --to qwen3
    r = convert("--to", "qwen3", "--dim", "64", "--n_layers", "2", "--out_dir", str(out), "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "--to qwen3: a MiniMind2 model has no q/k norms" in r.stderr
    assert r.stderr.count("\n") == 1


def qwen3_gguf_forward(path, ids):
    """qwen3 / qwen3moe logits from the GGUF alone, with llama.cpp's conventions (numpy, float64): RoPE turns
    the two halves of each head (NEOX), queries and keys RMS-normed per head first, top-k experts weighted
    by their renormalised softmax. Independent of the HF code."""
    import gguf
    import numpy as np
    r = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.ggml.")}
    arch = meta["general.architecture"]
    W = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64) for t in r.tensors}
    n_head, n_kv = meta[f"{arch}.attention.head_count"], meta[f"{arch}.attention.head_count_kv"]
    eps, base = meta[f"{arch}.attention.layer_norm_rms_epsilon"], meta[f"{arch}.rope.freq_base"]
    D = meta[f"{arch}.attention.key_length"]

    def norm(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(x):  # (T, H, D): dimension i turns with i + D/2
        T = x.shape[0]
        theta = np.arange(T)[:, None] * base ** (-np.arange(0, D, 2) / D)[None, :]
        cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        x1, x2 = x[..., :D // 2], x[..., D // 2:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    def swiglu(h, g, u, d):
        a = h @ g.T
        return ((a / (1 + np.exp(-a))) * (h @ u.T)) @ d.T

    x = W["token_embd.weight"][ids]
    T = len(ids)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for b in range(meta[f"{arch}.block_count"]):
        p = f"blk.{b}."
        h = norm(x, W[p + "attn_norm.weight"])
        q = norm((h @ W[p + "attn_q.weight"].T).reshape(T, n_head, D), W[p + "attn_q_norm.weight"])
        k = norm((h @ W[p + "attn_k.weight"].T).reshape(T, n_kv, D), W[p + "attn_k_norm.weight"])
        v = (h @ W[p + "attn_v.weight"].T).reshape(T, n_kv, D)
        q, k = rope(q), rope(k)
        heads = []
        for i in range(n_head):
            j = i // (n_head // n_kv)
            s = q[:, i] @ k[:, j].T / np.sqrt(D) + mask
            a = np.exp(s - s.max(-1, keepdims=True))
            heads.append((a / a.sum(-1, keepdims=True)) @ v[:, j])
        x = x + np.concatenate(heads, -1) @ W[p + "attn_output.weight"].T
        h = norm(x, W[p + "ffn_norm.weight"])
        if arch == "qwen3moe":
            top_k = meta[f"{arch}.expert_used_count"]
            logits = h @ W[p + "ffn_gate_inp.weight"].T
            prob = np.exp(logits - logits.max(-1, keepdims=True))
            prob /= prob.sum(-1, keepdims=True)
            out = np.zeros_like(h)
            for t in range(T):
                top = np.argsort(-prob[t])[:top_k]
                wts = prob[t, top] / prob[t, top].sum()
                for e, wt in zip(top, wts):
                    out[t] += wt * swiglu(h[t:t + 1], W[p + "ffn_gate_exps.weight"][e], W[p + "ffn_up_exps.weight"][e],
                                          W[p + "ffn_down_exps.weight"][e])[0]
            x = x + out
        else:
            x = x + swiglu(h, W[p + "ffn_gate.weight"], W[p + "ffn_up.weight"], W[p + "ffn_down.weight"])
    x = norm(x, W["output_norm.weight"])
    return x @ W.get("output.weight", W["token_embd.weight"]).T


def test_gguf_in_llama_cpps_qwen3_layout(ckpt3, tmp_path):
    import gguf
    import numpy as np
    net, out, flags = ckpt3
    path = tmp_path / "m3.gguf"
    r = convert("--to", "gguf", *flags, "--outtype", "f32", "-o", str(path))
    assert r.returncode == 0, r.stderr[-2000:]
    reader = gguf.GGUFReader(str(path))
    arch = reader.fields["general.architecture"].contents()
    assert arch == ("qwen3moe" if net.config.use_moe else "qwen3")
    names = {t.name for t in reader.tensors}
    assert {"blk.0.attn_q_norm.weight", "blk.1.attn_k_norm.weight"} <= names
    if net.config.use_moe:
        assert {"blk.0.ffn_gate_inp.weight", "blk.0.ffn_gate_exps.weight", "blk.1.ffn_down_exps.weight"} <= names
        assert reader.fields["qwen3moe.expert_count"].contents() == 4
        assert reader.fields["qwen3moe.expert_used_count"].contents() == 1
    modelfile = path.with_suffix(".Modelfile").read_text()  # MiniMind-3's layout: no default system prompt
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\n\"\"\"" in modelfile and "SYSTEM" not in modelfile
    ids = torch.randint(3, 6400, (17,))
    with torch.no_grad():
        want = net(ids[None]).logits[0].double().numpy()
    got = qwen3_gguf_forward(str(path), ids.numpy())
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max())


def test_a_minimind3_folder_as_minimind_publishes_it_loads_with_load_1(tmp_path):
    """config.json with MiniMind-3's own fields (its auto_map to its remote code too) and the weights under its
    names: --load 1 reads it through the project's class, as the MiniMind-3 family, with the same logits."""
    import json
    import shutil

    from safetensors.torch import save_file

    from model.loading import REPO_TOKENIZER, load_dir_model
    net = tiny3(True, vocab_size=6400, num_attention_heads=8)
    cfg = {"architectures": ["MiniMindForCausalLM"], "model_type": "minimind",
           "auto_map": {"AutoConfig": "model_minimind.MiniMindConfig",
                        "AutoModelForCausalLM": "model_minimind.MiniMindForCausalLM"},
           "hidden_size": 64, "num_hidden_layers": 2, "use_moe": True, "dropout": 0.0, "vocab_size": 6400,
           "bos_token_id": 1, "eos_token_id": 2, "flash_attn": True, "num_attention_heads": 8,
           "num_key_value_heads": 4, "head_dim": 8, "hidden_act": "silu", "intermediate_size": 256,
           "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 1e6, "tie_word_embeddings": True,
           "inference_rope_scaling": False, "rope_scaling": None, "num_experts": 4, "num_experts_per_tok": 1,
           "moe_intermediate_size": 256, "norm_topk_prob": True, "router_aux_loss_coef": 5e-4,
           "torch_dtype": "float32", "transformers_version": "4.57.1"}
    assert net.config.intermediate_size == 256
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in net.state_dict().items() if k != "lm_head.weight"},
              str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(REPO_TOKENIZER, f), tmp_path / f)
    loaded = load_dir_model(str(tmp_path))
    assert type(loaded) is MiniMindForCausalLM and loaded.config.model_family == "minimind3"
    ids = torch.randint(3, 6400, (1, 19))
    with torch.no_grad():
        assert torch.equal(loaded.eval()(ids).logits, net(ids).logits)


# ---------------------------------------------------------------------------------------------- the scripts

def test_scripts_train_and_chat_a_minimind3_model(tmp_path, capsys):
    """pretrain -> SFT -> eval_model.py on the MiniMind-3 family (tiny dims, the project's tokenizer): the
    checkpoints are MiniMind-3's (q/k norms), the loss falls, the chat loads them; MiniMind2's flags on
    them are one line naming both families."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import train_full_sft
    import train_pretrain
    from test_train_common import tokenizer_dir, write_data
    from test_train_scripts import logged, user_error
    data = write_data(str(tmp_path / "data"))
    out = tmp_path / "out"
    common = ["--model_family", "minimind3", "--dim", "32", "--n_layers", "2", "--max_seq_len", "48",
              "--num_workers", "0", "--tokenizer_path", tokenizer_dir(), "--out_dir", str(out), "--batch_size", "8",
              "--log_interval", "1"]
    train_pretrain.main([*common, "--data_path", data["pretrain"], "--learning_rate", "3e-3", "--epochs", "4"])
    o = capsys.readouterr().out
    losses = logged(o)
    assert losses[max(losses)] < losses[1] - 0.5, losses
    state = torch.load(out / "pretrain_32.pth", weights_only=True)
    assert "model.layers.1.self_attn.q_norm.weight" in state and state["model.layers.0.self_attn.k_proj.weight"].shape == (16, 32)
    train_full_sft.main([*common, "--data_path", data["sft"], "--learning_rate", "1e-3", "--epochs", "1"])
    assert (out / "full_sft_32.pth").is_file()
    capsys.readouterr()
    line = user_error(train_full_sft, [*common[2:], "--data_path", data["sft"], "--from_weight", "pretrain"], capsys)
    assert "pretrain_32.pth: holds a MiniMind-3 model, but the flags build a MiniMind2 one" in line

    import subprocess
    r = subprocess.run([sys.executable, os.path.join(ROOT, "eval_model.py"), "--model_family", "minimind3", "--dim", "32",
                        "--n_layers", "2", "--out_dir", str(out), "--tokenizer_path", tokenizer_dir(), "--device", "cpu",
                        "--max_new_tokens", "8", "--temperature", "0"],
                       input="1\nhello\n", capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    from model import chat as model_chat
    assert f"{model_chat.USER_TAG}hello\n{model_chat.BOT_TAG}" in r.stdout, r.stdout[-2000:]
    # MiniMind2's flags on the MiniMind-3 checkpoint (eval_model.py's loading): one line naming both families
    from model.loading import load_source, model_size
    from trainer.errors import UserError
    flags = model_size(32, 2)
    vars(flags).update(out_dir=str(out), weight=None, model_mode=1, load=0, model_path=None, lora_name=None,
                       tokenizer_path=tokenizer_dir())
    with pytest.raises(UserError, match="full_sft_32.pth: holds a MiniMind-3 model, but the flags build a MiniMind2"):
        load_source(flags)


# ---------------------------------------------------------------------------------------------- its tokenizer

M3_TOKENIZER = os.path.join(ROOT, "..", "shared", "minimind3_tokenizer")


@pytest.fixture(scope="module")
def tok3():
    if not os.path.exists(os.path.join(M3_TOKENIZER, "tokenizer.json")):
        pytest.skip(f"MiniMind-3's tokenizer ({M3_TOKENIZER}) is not present")
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(M3_TOKENIZER)


def oracle3(tok, turns, system=None):
    """(X, Y, mask) by hand from MiniMind-3's layout, independently of its template: no default system turn;
    each assistant turn is its header, then (targets) a think block -- the answer's own reasoning or an empty
    one -- the answer and <|im_end|>; ids after the last target are not kept."""
    ids, mask = [], []

    def add(text, target):
        t = tok(text, add_special_tokens=False)["input_ids"]
        ids.extend(t)
        mask.extend([target] * len(t))

    if system is not None:
        add(f"<|im_start|>system\n{system}<|im_end|>\n", 0)
    for k, content in enumerate(turns):
        if k % 2 == 0:
            add(f"<|im_start|>user\n{content}<|im_end|>\n", 0)
            continue
        add("<|im_start|>assistant\n", 0)
        if "</think>" in content:
            think, answer = content.split("</think>")
            think = think.split("<think>")[-1].strip("\n")
            add(f"<think>\n{think}\n</think>\n\n{answer.lstrip(chr(10))}", 1)
        else:
            add("<think>\n\n</think>\n\n", 1)
            add(content, 1)
        ids.append(tok.convert_tokens_to_ids("<|im_end|>"))
        mask.append(1)
        add("\n", 0)
    last = max(i for i, m in enumerate(mask) if m)
    ids, mask = ids[:last + 1], mask[:last + 1]
    return ids[:-1], ids[1:], mask[1:]


M3_CASES = {
    "single": dict(turns=("你好，请介绍一下你自己。", "我是一个乐于助人的助手。")),
    "with_system": dict(turns=("What is 2+2?", "2+2 equals 4."), system="You are terse."),
    "multi_turn": dict(turns=("Hi!", "Hello, how can I help?", "讲个笑话", "好的。", "Why?", "Because.")),
    "reasoning": dict(turns=("1+1?", "<think>\nOne and one make two.\n</think>\n\n1+1 = 2.")),
    "reasoning_then_direct": dict(turns=("q1", "<think>\nthink 1\n</think>\n\na1", "q2", "a2")),
}


def test_sft_masks_token_by_token_with_minimind3s_tokenizer_and_template(tmp_path, tok3):
    import json

    from dataset.lm_dataset import SFTDataset
    rows = []
    for case in sorted(M3_CASES):
        c = M3_CASES[case]
        msgs = ([{"role": "system", "content": c["system"]}] if "system" in c else []) + \
            [{"role": "user" if k % 2 == 0 else "assistant", "content": t} for k, t in enumerate(c["turns"])]
        rows.append(json.dumps({"conversations": msgs}, ensure_ascii=False))
    path = tmp_path / "sft.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    ds = SFTDataset(str(path), tok3, max_length=4096, verbose=False)
    assert len(ds) == len(M3_CASES)
    for k, case in enumerate(sorted(M3_CASES)):
        c = M3_CASES[case]
        x, y, m = ds[k]
        want = oracle3(tok3, c["turns"], c.get("system"))
        assert (x.tolist(), y.tolist(), m.tolist()) == tuple(list(w) for w in want), case
        # its tags are single tokens (<think> = 25, </think> = 26), and targets: the model learns to write them
        targets = [t for t, on in zip(y.tolist(), m.tolist()) if on]
        assert 25 in targets and 26 in targets and tok3.convert_tokens_to_ids("<|im_start|>") not in targets, case
    assert tok3.convert_tokens_to_ids("<think>") == 25 and tok3.convert_tokens_to_ids("<tool_call>") == 21


@pytest.mark.parametrize("which", ["minimind3", "project"])
def test_reasoning_content_as_minimind3s_sft_files_write_it(tmp_path, which, request):
    """sft_t2t's assistant messages carry their thinking in "reasoning_content": read as the think block in
    front of the answer, with MiniMind-3's template and with the project's (the same tokens as writing the
    block into the content); on a user message it is one line naming the file and line."""
    import json

    from dataset.lm_dataset import SFTDataset
    from trainer.args import load_tokenizer
    tok = request.getfixturevalue("tok3") if which == "minimind3" else load_tokenizer(os.path.join(ROOT, "model"))
    a = [{"role": "user", "content": "1+1?"},
         {"role": "assistant", "content": "1+1 = 2.", "reasoning_content": "One and one make two.",
          "tools": None, "tool_calls": None}]
    b = [{"role": "user", "content": "1+1?"},
         {"role": "assistant", "content": "<think>\nOne and one make two.\n</think>\n\n1+1 = 2."}]
    path = tmp_path / "sft_t2t.jsonl"
    path.write_text("".join(json.dumps({"conversations": c}) + "\n" for c in (a, b)), encoding="utf-8")
    ds = SFTDataset(str(path), tok, max_length=512, verbose=False)
    assert [t.tolist() for t in ds[0]] == [t.tolist() for t in ds[1]]
    targets = tok.decode([t for t, on in zip(ds[0][1].tolist(), ds[0][2].tolist()) if on])
    assert targets.startswith("<think>\nOne and one make two.\n</think>\n\n1+1 = 2.")
    if which == "minimind3":
        assert [t.tolist() for t in ds[0]] == [list(v) for v in oracle3(tok, ("1+1?", b[1]["content"]))]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"conversations": [{"role": "user", "content": "q", "reasoning_content": "x"},
                                                 {"role": "assistant", "content": "a"}]}) + "\n", encoding="utf-8")
    from dataset.sources import DataError
    with pytest.raises(DataError, match=r"bad\.jsonl:1: .*reasoning_content"):
        SFTDataset(str(bad), tok, max_length=512, verbose=False)


RENDER_CASES = [
    ([{"role": "user", "content": "hi"}], {}),
    ([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
      {"role": "user", "content": "more"}], {}),
    ([{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "<think>\nsum\n</think>\n\n2"}], {}),
    ([{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2", "reasoning_content": "sum"}], {}),
    ([{"role": "user", "content": "think"}], {"open_thinking": True}),
    ([{"role": "system", "content": "S"}, {"role": "user", "content": "weather?"},
      {"role": "assistant", "content": "", "tool_calls": [{"name": "get_current_weather", "arguments": {"city": "Oslo"}}]},
      {"role": "tool", "content": "{\"temp\": 3}"}, {"role": "tool", "content": "ok"},
      {"role": "assistant", "content": "3 degrees."}], {"tools": True}),
]


@pytest.mark.parametrize("k", range(len(RENDER_CASES)))
def test_the_family_template_renders_as_minimind3s_own(tok3, k):
    """--model_family minimind3 with the project's tokenizer gives its template MiniMind-3's layout: the same text
    as MiniMind-3's own template, turn for turn (tools, calls, results, reasoning, the thinking switch)."""
    from model.tools import ToolRegistry
    from trainer.args import load_tokenizer
    messages, extra = RENDER_CASES[k]
    extra = dict(extra)
    if extra.pop("tools", False):
        extra["tools"] = ToolRegistry().schemas("get_current_weather")
    ours = load_tokenizer(os.path.join(ROOT, "model"), "minimind3")
    gen = messages[-1]["role"] != "assistant"
    want = tok3.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen, **extra)
    assert ours.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen, **extra) == want
    # MiniMind-3's own tokenizer keeps its own template; MiniMind2's family keeps the project's
    from trainer.args import family_template
    assert family_template(tok3, "minimind3").chat_template == tok3.chat_template
    assert "You are a helpful assistant" in load_tokenizer(os.path.join(ROOT, "model")).apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False)


def test_train_tokenizer_in_minimind3s_layout(tmp_path):
    """scripts/train_tokenizer.py --model_family minimind3: MiniMind-3's 36 added tokens at ids 0-35 (the first
    21 special, the tags plain: decoding keeps <think>), each one token, and the family's chat template; the
    same ids, contents and flags as MiniMind-3's own tokenizer where it is present."""
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location("train_tokenizer", os.path.join(ROOT, "scripts", "train_tokenizer.py"))
    tt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tt)
    tt.main(["--data_path", os.path.join(ROOT, "dataset", "demo", "pretrain.jsonl"), "--out_dir", str(tmp_path),
             "--model_family", "minimind3", "--quiet"])
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tmp_path)
    ours = [(a["id"], a["content"], a["special"]) for a in json.loads((tmp_path / "tokenizer.json").read_text())["added_tokens"]]
    assert [i for i, _, _ in ours] == list(range(36)) and sum(s for _, _, s in ours) == 21
    assert (tok.convert_tokens_to_ids("<tool_call>"), tok.convert_tokens_to_ids("<think>")) == (21, 25)
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 0)
    assert tok("<think>\nx\n</think>", add_special_tokens=False)["input_ids"][0] == 25
    assert tok.decode([1, 25, 26, 2], skip_special_tokens=True) == "<think></think>"
    with open(os.path.join(ROOT, "model", "chat_template_minimind3.jinja"), encoding="utf-8") as f:
        assert tok.chat_template == f.read()
    theirs_path = os.path.join(M3_TOKENIZER, "tokenizer.json")
    if os.path.exists(theirs_path):
        with open(theirs_path, encoding="utf-8") as f:
            theirs = [(a["id"], a["content"], a["special"]) for a in json.load(f)["added_tokens"]]
        assert ours == theirs


def test_minimind3s_sft_processing_adds_system_prompts_and_drops_empty_think_blocks(tmp_path):
    """train_full_sft.py --model_family minimind3: MiniMind-3's data processing with its ratios (0.2, 0.2): a
    system prompt in front of about a fifth of the conversations without one (never a target, never a second
    one), the empty think block kept in about a fifth of the direct answers; fixed per sample by the seed.
    MiniMind2's family reads the data as it is."""
    import json

    import train_full_sft
    from dataset.lm_dataset import SFTDataset
    from trainer.args import load_tokenizer
    from trainer.stages.chat_augment import SYSTEM_PROMPTS, ChatAugment
    a3 = train_full_sft.parse_args(["--model_family", "minimind3"])
    assert (a3.add_system_ratio, a3.empty_think_ratio) == (0.2, 0.2)
    a2 = train_full_sft.parse_args([])
    assert (a2.add_system_ratio, a2.empty_think_ratio) == (0.0, None)
    tok = load_tokenizer(os.path.join(ROOT, "model"), "minimind3")  # MiniMind-3's layout
    rows = [{"conversations": [{"role": "user", "content": f"question {k}"}, {"role": "assistant", "content": f"answer {k}"}]}
            for k in range(300)]
    rows.append({"conversations": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"},
                                   {"role": "assistant", "content": "a"}]})
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    base = SFTDataset(str(path), tok, max_length=256, verbose=False)
    aug = ChatAugment(base, tok, 0.2, 0.2, seed=7, max_length=256)
    systems = {tok.decode(tok(f"<|im_start|>system\n{p}<|im_end|>\n", add_special_tokens=False)["input_ids"])
               for p in SYSTEM_PROMPTS}
    n_system = n_kept = 0
    for i in range(300):
        x, y, m = aug[i]
        ids = torch.cat([x, y[-1:]]).tolist()
        text = tok.decode(ids)
        targets = tok.decode([t for t, on in zip(y.tolist(), m.tolist()) if on])
        assert targets.endswith(f"answer {i}<|im_end|>") and "system" not in targets
        if text.startswith("<|im_start|>system\n"):
            n_system += 1
            assert text[:text.index("<|im_end|>\n") + len("<|im_end|>\n")] in systems
        kept = "<think>\n\n</think>\n\n" in text
        n_kept += kept
        assert kept == targets.startswith("<think>\n\n</think>\n\n")
        assert all(torch.equal(p, q) for p, q in zip(aug[i], (x, y, m)))  # the same draw every read
    assert 30 <= n_system <= 90 and 30 <= n_kept <= 90, (n_system, n_kept)
    x, _, _ = aug[300]  # it had a system turn: never a second
    assert tok.decode(x.tolist()).count("<|im_start|>system") == 1


def test_minimind3s_data_files_read_as_they_are(tmp_path):
    """One line of each of MiniMind-3's files, in its fields (tools and tool calls as JSON strings, every message
    carrying reasoning_content/tools/tool_calls keys as its loader's features do): pretrain_t2t, sft_t2t, dpo,
    rlaif and agent_rl read with the family's layout, the targets where they belong."""
    import json

    from dataset.lm_dataset import DPODataset, PretrainDataset, PromptDataset, SFTDataset
    from trainer.args import load_tokenizer
    tok = load_tokenizer(os.path.join(ROOT, "model"), "minimind3")
    tools = json.dumps([{"type": "function", "function": {"name": "calculate_math", "description": "math",
                         "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                                        "required": ["expression"]}}}], ensure_ascii=False)

    def msg(role, content, **kw):
        return {"role": role, "content": content, "reasoning_content": kw.get("reasoning_content"),
                "tools": kw.get("tools"), "tool_calls": kw.get("tool_calls")}
    files = {
        "pretrain_t2t_mini.jsonl": {"text": "<|im_start|>长江全长约6300公里。<|im_end|>"},
        "sft_t2t_mini.jsonl": {"conversations": [
            msg("system", "你是一个计算助手", tools=tools), msg("user", "2的10次方是多少？"),
            msg("assistant", "", reasoning_content="用工具算。",
                tool_calls=json.dumps([{"name": "calculate_math", "arguments": {"expression": "2**10"}}])),
            msg("tool", "{\"result\": 1024}"), msg("assistant", "是1024。")]},
        "dpo.jsonl": {"chosen": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}],
                      "rejected": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "3"}]},
        "rlaif.jsonl": {"conversations": [{"role": "user", "content": "讲个笑话"}, {"role": "assistant", "content": ""}]},
        "agent_rl.jsonl": {"conversations": [{"role": "system", "content": "", "tools": tools},
                                             {"role": "user", "content": "2的10次方？"},
                                             {"role": "assistant", "content": ""}], "gt": ["1024"]},
    }
    for name, row in files.items():
        (tmp_path / name).write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    x, y = PretrainDataset(str(tmp_path / "pretrain_t2t_mini.jsonl"), tok, 64, verbose=False)[0][:2]
    assert "长江全长约6300公里" in tok.decode(torch.cat([x, y[-1:]]).tolist())
    x, y, m = SFTDataset(str(tmp_path / "sft_t2t_mini.jsonl"), tok, 512, verbose=False)[0]
    targets = tok.decode([t for t, on in zip(y.tolist(), m.tolist()) if on])
    assert targets == ('<think>\n用工具算。\n</think>\n\n<tool_call>\n{"name": "calculate_math", "arguments": '
                       '{"expression": "2**10"}}\n</tool_call><|im_end|><think>\n\n</think>\n\n是1024。<|im_end|>')
    assert "calculate_math" in tok.decode(x.tolist()) and "1024}" in tok.decode(x.tolist())  # signatures, result
    pair = DPODataset(str(tmp_path / "dpo.jsonl"), tok, 128, verbose=False)[0]
    assert tok.decode([t for t, on in zip(pair["y_chosen"].tolist(), pair["mask_chosen"].tolist()) if on]) == \
        "<think>\n\n</think>\n\n2<|im_end|>"
    for name in ("rlaif.jsonl", "agent_rl.jsonl"):
        item = PromptDataset(str(tmp_path / name), tok, 512, verbose=False)[0]
        prompt = tok.decode(item["prompt_ids"].tolist())
        assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n"), prompt
    assert item["fields"]["gt"] == ["1024"] and "calculate_math" in prompt


def test_the_familys_script_defaults_and_the_environment_variable():
    """--model_family minimind3 gives MiniMind-3's script defaults (its data names, lengths, epochs, DPO's
    save name, RL from full_sft), MINIMIND_MODEL_FAMILY=minimind3 makes it the default, an explicit flag wins
    (--model_family minimind2 too), and a bad value of the variable is one line."""
    import subprocess
    code = ("import sys, json; sys.path.insert(0, %r)\n"
            "import train_pretrain, train_full_sft, train_dpo, train_grpo\n"
            "out = {}\n"
            "for m in (train_pretrain, train_full_sft, train_dpo, train_grpo):\n"
            "    for argv in ([], ['--model_family', 'minimind2'], ['--max_seq_len', '99']):\n"
            "        a = vars(m.parse_args(argv))\n"
            "        out[m.__name__ + ' ' + ' '.join(argv)] = {k: a.get(k) for k in ('model_family', 'dim', 'n_layers', "
            "'max_seq_len', 'data_path', 'epochs', 'from_weight', 'save_weight')}\n"
            "print(json.dumps(out))\n") % ROOT
    import json
    env = dict(os.environ, MINIMIND_MODEL_FAMILY="minimind3")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["train_pretrain "] == {"model_family": "minimind3", "dim": 768, "n_layers": 8, "max_seq_len": 340,
                                      "data_path": "./dataset/pretrain_t2t_mini.jsonl", "epochs": 2,
                                      "from_weight": "none", "save_weight": "pretrain"}
    assert got["train_full_sft "]["data_path"] == "./dataset/sft_t2t_mini.jsonl" and got["train_full_sft "]["max_seq_len"] == 768
    assert (got["train_dpo "]["save_weight"], got["train_dpo "]["max_seq_len"]) == ("dpo", 1024)
    assert (got["train_grpo "]["from_weight"], got["train_grpo "]["data_path"]) == ("full_sft", "./dataset/rlaif.jsonl")
    assert got["train_pretrain --max_seq_len 99"]["max_seq_len"] == 99
    assert got["train_pretrain --model_family minimind2"] == {
        "model_family": "minimind2", "dim": 512, "n_layers": 8, "max_seq_len": 512, "data_path": "./dataset/pretrain_hq.jsonl",
        "epochs": 1, "from_weight": "none", "save_weight": "pretrain"}
    assert got["train_grpo --model_family minimind2"]["from_weight"] == "reason"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train_pretrain.py"), "--help"], capture_output=True,
                       text=True, env=dict(os.environ, MINIMIND_MODEL_FAMILY="minimind4"), timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "MINIMIND_MODEL_FAMILY=minimind4: expected one of" in r.stderr
