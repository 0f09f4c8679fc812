"""YaRN (MiniMind's 2025-10 `inference_rope_scaling`) in transformers' own RoPE parameters: the same
frequencies as MiniMind's formula, the same logits as transformers' Llama past the trained length,
and carried by the exports (Llama config, GGUF keys); refused by the training scripts."""
import json
import math
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from model.export import export_gguf, export_llama, llama_config_from  # noqa: E402
from model.loading import as_minimind, load_dir_model, load_source  # noqa: E402
from model.model_minimind import MINIMIND_YARN, rope_frequencies, rotary_cos_sin  # noqa: E402
from test_train_common import tokenizer_dir  # noqa: E402
from trainer.args import load_tokenizer  # noqa: E402
from trainer.checkpoint import save_weights  # noqa: E402
from trainer.errors import run_main  # noqa: E402


def minimind_2510_cos_sin(dim, end, rope_base, rope_scaling):
    """MiniMind 83e52f6's precompute_freqs_cis, its formula written out: f'(i) = f(i)((1-g) + g/s) with
    g a linear ramp between the correction dimensions of beta_fast and beta_slow, cos/sin times the
    attention factor."""
    freqs = 1.0 / (rope_base ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    orig, factor = rope_scaling["original_max_position_embeddings"], rope_scaling["factor"]
    fast, slow, attn = rope_scaling["beta_fast"], rope_scaling["beta_slow"], rope_scaling["attention_factor"]
    if end / orig > 1.0:
        def inv_dim(b):
            return (dim * math.log(orig / (b * 2 * math.pi))) / (2 * math.log(rope_base))
        low, high = max(math.floor(inv_dim(fast)), 0), min(math.ceil(inv_dim(slow)), dim // 2 - 1)
        ramp = torch.clamp((torch.arange(dim // 2).float() - low) / max(high - low, 0.001), 0, 1)
        freqs = freqs * (1 - ramp + ramp / factor)
    angles = torch.outer(torch.arange(end).float(), freqs)
    return freqs, torch.cat([angles.cos()] * 2, -1) * attn, torch.cat([angles.sin()] * 2, -1) * attn


@pytest.mark.parametrize("hidden, heads", [(512, 8), (768, 8), (128, 8)])
def test_frequencies_equal_minimind_2510s_formula(hidden, heads):
    cfg = MiniMindConfig(hidden_size=hidden, num_attention_heads=heads, inference_rope_scaling=True)
    assert cfg.rope_parameters["rope_type"] == "yarn" and cfg.rope_parameters["factor"] == 16
    inv_freq, scale = rope_frequencies(cfg)
    positions = torch.arange(cfg.max_position_embeddings)[None]
    cos, sin = rotary_cos_sin(positions, inv_freq, scale)
    want_freqs, want_cos, want_sin = minimind_2510_cos_sin(cfg.head_dim, cfg.max_position_embeddings, cfg.rope_theta,
                                                           MINIMIND_YARN)
    assert scale == 1.0
    torch.testing.assert_close(inv_freq, want_freqs, atol=0, rtol=1e-6)  # the same frequencies, to float rounding
    # over all 32768 positions the angles (up to 32767 rad) differ only by that rounding
    torch.testing.assert_close(cos[0, 0], want_cos, atol=5e-4, rtol=0)
    torch.testing.assert_close(sin[0, 0], want_sin, atol=5e-4, rtol=0)
    plain, _ = rope_frequencies(MiniMindConfig(hidden_size=hidden, num_attention_heads=heads))
    assert not torch.allclose(inv_freq, plain)  # the low frequencies are stretched


def small(**rope):
    torch.manual_seed(0)
    cfg = MiniMindConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, **rope)
    return MiniMindForCausalLM(cfg).eval()


YARN_32x8 = {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 32, "beta_fast": 32.0,
             "beta_slow": 1.0, "attention_factor": 1.0}


def test_logits_equal_transformers_llama_past_the_trained_length():
    from transformers import LlamaForCausalLM
    net = small(rope_parameters=YARN_32x8)
    llama = LlamaForCausalLM(llama_config_from(net.config)).eval()
    llama.load_state_dict(net.state_dict(), strict=True)
    ids = torch.randint(3, 6400, (2, 200), generator=torch.Generator().manual_seed(1))  # 6x the 32 trained
    with torch.no_grad():
        ours, theirs = net(ids).logits, llama(ids).logits
    torch.testing.assert_close(ours, theirs, atol=2e-4, rtol=0)
    plain = small()
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain(ids).logits[:, 100:], ours[:, 100:], atol=1e-3)  # it does change the model


def test_exports_carry_it(tmp_path):
    gguf = pytest.importorskip("gguf")
    net = small(rope_parameters=YARN_32x8)
    tok = load_tokenizer(tokenizer_dir())
    export_llama(net, tok, str(tmp_path / "llama"), outtype="f32")
    cfg = json.loads((tmp_path / "llama" / "config.json").read_text())
    assert cfg["rope_parameters"]["rope_type"] == "yarn" and cfg["rope_parameters"]["factor"] == 8.0
    assert cfg["rope_scaling"]["original_max_position_embeddings"] == 32  # transformers 4 readers (vLLM, TGI)
    back = as_minimind(load_dir_model(str(tmp_path / "llama")))
    assert back.config.rope_parameters["rope_type"] == "yarn"
    ids = torch.randint(3, 6400, (1, 150), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, net(ids).logits, atol=2e-4, rtol=0)
    export_gguf(net, tok, str(tmp_path / "m.gguf"), outtype="f32")
    r = gguf.GGUFReader(str(tmp_path / "m.gguf"))

    def value(key):
        f = r.fields[key]
        return f.parts[f.data[0]].tolist()[0] if not isinstance(f.parts[f.data[0]], str) else f.parts[f.data[0]]
    assert bytes(r.fields["llama.rope.scaling.type"].parts[-1]).decode() == "yarn"
    assert value("llama.rope.scaling.factor") == 8.0
    assert value("llama.rope.scaling.original_context_length") == 32
    assert value("llama.rope.scaling.yarn_beta_fast") == 32.0 and value("llama.rope.scaling.yarn_beta_slow") == 1.0


def test_the_flag_loads_minimind_yarn_in_every_front_end(tmp_path):
    from model import chat_cli
    from scripts import convert_model, serve_openai_api
    save_weights(MiniMindForCausalLM(MiniMindConfig(hidden_size=64, num_hidden_layers=2)), str(tmp_path / "full_sft_64.pth"))
    base = ["--out_dir", str(tmp_path), "--dim", "64", "--n_layers", "2", "--tokenizer_path", tokenizer_dir()]
    for parser, extra in ((chat_cli.get_parser(), []), (serve_openai_api.get_parser(), []),
                          (convert_model.get_parser(), ["--to", "llama", "-o", str(tmp_path / "x")])):
        a = parser.parse_args(base + extra + ["--inference_rope_scaling"])
        if not hasattr(a, "device"):
            a.device, a.dtype = "cpu", "float32"
        net, _, _ = load_source(a)
        assert net.config.rope_parameters["rope_type"] == "yarn" and net.config.rope_parameters["factor"] == 16
        b = parser.parse_args(base + extra)
        assert load_source(b)[0].config.rope_parameters.get("rope_type", "default") == "default"
    from scripts import eval_benchmarks
    assert eval_benchmarks.get_parser().parse_args(base + ["--inference_rope_scaling"]).inference_rope_scaling
    import importlib.util
    spec = importlib.util.spec_from_file_location("web_demo_flags", os.path.join(ROOT, "scripts", "web_demo.py"))
    page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(page)
    a = page.get_parser().parse_args(["--out_dir", str(tmp_path), "--device", "cpu", "--inference_rope_scaling"])
    entry = page.pth_entry(str(tmp_path / "full_sft_64.pth"), str(tmp_path))
    a.tokenizer_path = tokenizer_dir()
    net, _ = page.load_entry(entry, None, a)
    assert net.config.rope_parameters["rope_type"] == "yarn"


def test_training_scripts_refuse_it(tmp_path, capsys):
    import train_pretrain
    with pytest.raises(SystemExit) as e:
        run_main(train_pretrain.main, ["--out_dir", str(tmp_path), "--dim", "32", "--n_layers", "1", "--device", "cpu",
                                       "--inference_rope_scaling"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "--inference_rope_scaling" in err[0] and "--max_seq_len" in err[0]
