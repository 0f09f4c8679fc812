"""scripts/convert_model.py: .pth -> transformers (MiniMind remote code / Llama) -> .pth, and GGUF.

A tiny random model (dim 64, 2 layers, fixed seed, weights drawn wide enough that greedy answers
depend on the prompt) stands in for a trained one: equal logits and equal greedy tokens are
exact checks whatever the weights are.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from model.export import permute_for_gguf  # noqa: E402
from scripts import convert_model as cm  # noqa: E402
from trainer.checkpoint import load_weights, save_weights  # noqa: E402
from trainer.errors import run_main  # noqa: E402

DIM, LAYERS = 64, 2
SIZE = ["--dim", str(DIM), "--n_layers", str(LAYERS)]
TEXT = "<|im_start|>user\n你好，what is DPO? 1+1=2<|im_end|>\n<|im_start|>assistant\n"


def _tokenizer_dir():
    for d in (ROOT / "model", ROOT.parent / "shared" / "minimind_tokenizer"):
        if (d / "tokenizer.json").is_file():
            return str(d)
    pytest.skip("no tokenizer (neither ./model nor ../shared/minimind_tokenizer)")


def tiny(use_moe=False, seed=0):
    torch.manual_seed(seed)
    cfg = MiniMindConfig(hidden_size=DIM, num_hidden_layers=LAYERS, use_moe=use_moe, initializer_range=0.3)
    return MiniMindForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def tok_dir():
    return _tokenizer_dir()


@pytest.fixture(scope="module")
def tokenizer(tok_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tok_dir)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """out/full_sft_64.pth of a dense model (float32, so every format can be compared exactly)."""
    out = tmp_path_factory.mktemp("out")
    net = tiny()
    save_weights(net, str(out / f"full_sft_{DIM}.pth"), dtype=torch.float32)
    return out, net


@pytest.fixture(scope="module")
def ids(tokenizer):
    return tokenizer(TEXT, add_special_tokens=False, return_tensors="pt").input_ids


def convert(*argv):
    cm.main([str(a) for a in argv])


def greedy(net, ids, n=12):
    with torch.no_grad():
        out = net.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                           eos_token_id=None, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def logits(net, ids):
    with torch.no_grad():
        return net(ids).logits.float()


# --------------------------------------------------------------------------- transformers formats

@pytest.fixture(scope="module")
def minimind_dir(ckpt, tok_dir, tmp_path_factory):
    out, _ = ckpt
    d = tmp_path_factory.mktemp("exp") / "MiniMind2-Tiny"
    convert("--to", "minimind", *SIZE, "--out_dir", out, "--tokenizer_path", tok_dir, "--outtype", "f32", "-o", d)
    return d


def test_minimind_dir_loads_with_only_transformers(minimind_dir, ckpt, ids, tmp_path):
    """AutoModelForCausalLM(trust_remote_code=True) in a process that cannot import the repo."""
    _, net = ckpt
    files = set(os.listdir(minimind_dir))
    assert {"config.json", "model.safetensors", "model_minimind.py", "generation_config.json",
            "tokenizer.json", "tokenizer_config.json"} <= files
    cfg = json.loads((minimind_dir / "config.json").read_text())
    assert cfg["auto_map"]["AutoModelForCausalLM"] == "model_minimind.MiniMindForCausalLM"
    assert cfg["architectures"] == ["MiniMindForCausalLM"]
    gen = json.loads((minimind_dir / "generation_config.json").read_text())
    assert (gen["eos_token_id"], gen["pad_token_id"], gen["temperature"]) == (2, 0, 0.85)

    np.save(tmp_path / "ids.npy", ids.numpy())
    probe = textwrap.dedent(f"""
        import sys, numpy as np, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        try:
            import model
            sys.exit("the repo's model package is importable here: " + model.__file__)
        except ImportError:
            pass
        d = {str(minimind_dir)!r}
        m = AutoModelForCausalLM.from_pretrained(d, trust_remote_code=True).eval()
        assert type(m).__module__.startswith("transformers_modules"), type(m).__module__
        tok = AutoTokenizer.from_pretrained(d)
        ids = torch.from_numpy(np.load("ids.npy"))
        prompt = tok.apply_chat_template([{{"role": "user", "content": "hi"}}], tokenize=False, add_generation_prompt=True)
        assert prompt.endswith("<|im_start|>assistant\\n"), prompt
        with torch.no_grad():
            np.save("logits.npy", m(ids).logits.float().numpy())
        out = m.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0)
        np.save("greedy.npy", out[0, ids.shape[1]:].numpy())
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    # -P: nothing prepended to sys.path; cwd is an empty temp dir, far from the repo
    r = subprocess.run([sys.executable, "-P", "-c", probe], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    remote = torch.from_numpy(np.load(tmp_path / "logits.npy"))
    assert torch.allclose(remote, logits(net, ids), atol=1e-5, rtol=0)
    assert np.load(tmp_path / "greedy.npy").tolist() == greedy(net, ids, 8)


def test_minimind_dir_tokenizer_matches(minimind_dir, tokenizer):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(minimind_dir)
    assert tok(TEXT, add_special_tokens=False).input_ids == tokenizer(TEXT, add_special_tokens=False).input_ids
    tc = json.loads((minimind_dir / "tokenizer_config.json").read_text())
    # readable by transformers 4.x too (vLLM, TGI): a class it knows, the template inline
    assert tc["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tc["chat_template"] == tokenizer.chat_template


@pytest.fixture(scope="module")
def llama_dir(ckpt, tok_dir, tmp_path_factory):
    out, _ = ckpt
    d = tmp_path_factory.mktemp("exp") / "MiniMind2-Tiny-Llama"
    convert("--to", "llama", *SIZE, "--out_dir", out, "--tokenizer_path", tok_dir, "--outtype", "f32", "-o", d)
    return d


def test_llama_dir_is_plain_llama(llama_dir, ckpt, ids):
    from transformers import AutoModelForCausalLM, LlamaForCausalLM
    _, net = ckpt
    cfg = json.loads((llama_dir / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "auto_map" not in cfg
    # transformers-4 readers (vLLM, TGI) need the flat key, or they silently use RoPE base 10000
    assert cfg["rope_theta"] == cfg["rope_parameters"]["rope_theta"] == net.config.rope_theta
    assert not any(f.endswith(".py") for f in os.listdir(llama_dir))
    llama = AutoModelForCausalLM.from_pretrained(llama_dir).eval()  # no trust_remote_code
    assert type(llama) is LlamaForCausalLM
    assert llama.config.intermediate_size == net.config.intermediate_size
    assert torch.allclose(logits(llama, ids), logits(net, ids), atol=1e-5, rtol=0)
    assert greedy(llama, ids) == greedy(net, ids)


@pytest.mark.parametrize("which", ["llama", "minimind"])
def test_back_to_pth(which, llama_dir, minimind_dir, ckpt, tmp_path):
    _, net = ckpt
    src = llama_dir if which == "llama" else minimind_dir
    pth = tmp_path / "back.pth"
    convert("--to", "pth", "--model_path", src, "--outtype", "f32", "-o", pth)
    state = torch.load(pth, weights_only=True)
    assert set(state) == set(net.state_dict())
    for k, v in net.state_dict().items():
        assert torch.equal(state[k], v), k
    load_weights(tiny(seed=1), str(pth))  # strict load into a model built from the flags


def test_f16_export_halves_and_stays_close(ckpt, tok_dir, ids, tmp_path):
    from transformers import LlamaForCausalLM
    out, net = ckpt
    d = tmp_path / "llama16"
    convert("--to", "llama", *SIZE, "--out_dir", out, "--tokenizer_path", tok_dir, "-o", d)  # default f16
    llama = LlamaForCausalLM.from_pretrained(d)
    assert llama.dtype == torch.float16
    diff = (logits(llama.float(), ids) - logits(net, ids)).abs().max().item()
    assert 0 < diff < 0.05


def test_moe_exports_as_minimind_only(tok_dir, ids, tmp_path, capsys):
    out = tmp_path / "out"
    net = tiny(use_moe=True)
    save_weights(net, str(out / f"full_sft_{DIM}_moe.pth"), dtype=torch.float32)
    d = tmp_path / "moe"
    convert("--to", "minimind", *SIZE, "--use_moe", "1", "--out_dir", out, "--tokenizer_path", tok_dir,
            "--outtype", "f32", "-o", d)
    back = MiniMindForCausalLM.from_pretrained(d).eval()
    assert back.config.use_moe
    assert torch.allclose(logits(back, ids), logits(net, ids), atol=1e-5, rtol=0)
    for to, o in (("llama", tmp_path / "l"), ("gguf", tmp_path / "m.gguf")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            run_main(cm.main, ["--to", to, *SIZE, "--use_moe", "1", "--out_dir", str(out),
                               "--tokenizer_path", tok_dir, "-o", str(o)])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "mixture-of-experts" in err and "--to minimind" in err
        assert not o.exists()


def test_user_errors_one_line(ckpt, tok_dir, tmp_path, capsys):
    out, _ = ckpt
    cases = [
        (["--to", "llama", *SIZE, "--out_dir", str(tmp_path / "none"), "-o", str(tmp_path / "x")],
         "train_full_sft.py"),
        (["--to", "llama", "--dim", "128", "--n_layers", "2", "--weight", str(out / f"full_sft_{DIM}.pth"),
          "--tokenizer_path", tok_dir, "-o", str(tmp_path / "x")], "--dim 64"),
        (["--to", "pth", *SIZE, "--out_dir", str(out), "-o", str(tmp_path / "x.pth")], "--model_path"),
        (["--to", "llama", *SIZE, "--out_dir", str(out), "--outtype", "q8_0", "-o", str(tmp_path / "x")], "q8_0"),
        (["--to", "pth", "--model_path", str(tmp_path), "-o", str(tmp_path / "x.pth")], "config.json"),
    ]
    capsys.readouterr()
    for argv, needle in cases:
        with pytest.raises(SystemExit) as e:
            run_main(cm.main, argv)
        assert e.value.code == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, (argv, err)
    assert not (tmp_path / "x").exists()


def test_existing_output_needs_force(ckpt, tok_dir, tmp_path, capsys):
    out, _ = ckpt
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    argv = ["--to", "llama", *SIZE, "--out_dir", str(out), "--tokenizer_path", tok_dir, "-o", str(target)]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_main(cm.main, argv)
    assert e.value.code == 2 and "--force" in capsys.readouterr().err
    assert (target / "keep.txt").read_text() == "mine"
    cm.main(argv + ["--force"])
    assert (target / "config.json").is_file() and not (target / "keep.txt").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp leftovers


def test_cli_subprocess(ckpt, tok_dir, tmp_path):
    """The script itself: a missing checkpoint is one stderr line and exit 2, no traceback."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_model.py"), "--to", "gguf", *SIZE,
                        "--out_dir", str(tmp_path), "--tokenizer_path", tok_dir, "-o", str(tmp_path / "m.gguf")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "full_sft_64.pth" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------ GGUF

def gguf_forward(path, ids):
    """Llama logits computed from the GGUF alone, with llama.cpp's conventions (numpy, float64).

    Independent of the HF code: hyper-parameters come from the GGUF metadata, RoPE rotates
    adjacent pairs (ggml's NORM mode, the llama architecture's), a missing output.weight means
    tied embeddings, GQA heads share K/V in consecutive groups.
    """
    import gguf
    r = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.ggml.")}
    W = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64) for t in r.tensors}
    n_head, n_kv = meta["llama.attention.head_count"], meta["llama.attention.head_count_kv"]
    eps, base = meta["llama.attention.layer_norm_rms_epsilon"], meta["llama.rope.freq_base"]
    n_rot = meta["llama.rope.dimension_count"]

    def norm(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(x):  # x (T, H, D): pairs (2i, 2i+1) turned by pos * base^(-2i/D)
        T = x.shape[0]
        theta = np.arange(T)[:, None] * base ** (-np.arange(0, n_rot, 2) / n_rot)[None, :]
        cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = x0 * cos - x1 * sin, x0 * sin + x1 * cos
        return out

    x = W["token_embd.weight"][ids]
    T = len(ids)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for b in range(meta["llama.block_count"]):
        p = f"blk.{b}."
        h = norm(x, W[p + "attn_norm.weight"])
        q = (h @ W[p + "attn_q.weight"].T).reshape(T, n_head, -1)
        k = (h @ W[p + "attn_k.weight"].T).reshape(T, n_kv, -1)
        v = (h @ W[p + "attn_v.weight"].T).reshape(T, n_kv, -1)
        q, k = rope(q), rope(k)
        heads = []
        for i in range(n_head):
            j = i // (n_head // n_kv)
            s = q[:, i] @ k[:, j].T / np.sqrt(q.shape[-1]) + mask
            a = np.exp(s - s.max(-1, keepdims=True))
            heads.append((a / a.sum(-1, keepdims=True)) @ v[:, j])
        x = x + np.concatenate(heads, -1) @ W[p + "attn_output.weight"].T
        h = norm(x, W[p + "ffn_norm.weight"])
        g = h @ W[p + "ffn_gate.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ W[p + "ffn_up.weight"].T)) @ W[p + "ffn_down.weight"].T
    x = norm(x, W["output_norm.weight"])
    return x @ W.get("output.weight", W["token_embd.weight"]).T


@pytest.fixture(scope="module")
def gguf_files(ckpt, tok_dir, tmp_path_factory):
    out, _ = ckpt
    d = tmp_path_factory.mktemp("gguf")
    files = {}
    for t in ("f32", "f16", "q8_0"):
        files[t] = d / f"tiny-{t}.gguf"
        convert("--to", "gguf", *SIZE, "--out_dir", out, "--tokenizer_path", tok_dir, "--outtype", t,
                "--name", "MiniMind-Tiny", "-o", files[t])
    return files


def test_gguf_metadata_and_tokenizer(gguf_files, tokenizer, ckpt):
    import gguf
    _, net = ckpt
    r = gguf.GGUFReader(gguf_files["f32"])
    f = {k: v.contents() for k, v in r.fields.items()}
    c = net.config
    assert f["general.architecture"] == "llama" and f["general.name"] == "MiniMind-Tiny"
    assert (f["llama.embedding_length"], f["llama.block_count"], f["llama.feed_forward_length"]) == \
        (c.hidden_size, c.num_hidden_layers, c.intermediate_size)
    assert (f["llama.attention.head_count"], f["llama.attention.head_count_kv"]) == (8, 2)
    assert f["llama.rope.freq_base"] == c.rope_theta and f["llama.rope.dimension_count"] == 8
    assert abs(f["llama.attention.layer_norm_rms_epsilon"] - c.rms_norm_eps) < 1e-9
    assert f["llama.context_length"] == c.max_position_embeddings and f["llama.vocab_size"] == c.vocab_size
    assert f["general.file_type"] == gguf.LlamaFileType.ALL_F32
    assert f["llama.attention.key_length"] == f["llama.attention.value_length"] == 8
    assert abs(f["general.sampling.temp"] - 0.85) < 1e-6

    assert (f["tokenizer.ggml.model"], f["tokenizer.ggml.pre"]) == ("gpt2", "gpt-2")
    tokens = f["tokenizer.ggml.tokens"]
    vocab = tokenizer.get_vocab()
    assert len(tokens) == c.vocab_size and all(vocab[t] == i for i, t in enumerate(tokens))
    types = f["tokenizer.ggml.token_type"]
    assert types[:3] == [gguf.TokenType.CONTROL] * 3 and set(types[3:]) == {gguf.TokenType.NORMAL}
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    assert f["tokenizer.ggml.merges"] == [" ".join(m) if isinstance(m, list) else m for m in merges]
    assert (f["tokenizer.ggml.bos_token_id"], f["tokenizer.ggml.eos_token_id"],
            f["tokenizer.ggml.padding_token_id"]) == (1, 2, 0)
    assert f["tokenizer.ggml.add_bos_token"] is False
    assert f["tokenizer.chat_template"] == tokenizer.chat_template

    modelfile = gguf_files["f32"].with_suffix(".Modelfile").read_text()
    assert modelfile.startswith(f"FROM ./{gguf_files['f32'].name}\n") and 'PARAMETER stop "<|im_end|>"' in modelfile


def test_gguf_f32_tensors(gguf_files, ckpt):
    import gguf
    _, net = ckpt
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    r = gguf.GGUFReader(gguf_files["f32"])
    got = {t.name: t for t in r.tensors}
    want = {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{b}.{n}.weight" for b in range(LAYERS) for n in
        ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")}
    assert set(got) == want  # output.weight left out: tied to token_embd, as llama.cpp expects
    for name, t in got.items():
        assert t.tensor_type == gguf.GGMLQuantizationType.F32
    hd = DIM // 8
    q = got["blk.0.attn_q.weight"].data
    # q/k rows reordered within each head: HF pair (i, i+hd/2) becomes GGUF pair (2i, 2i+1)
    hf_q = sd["model.layers.0.self_attn.q_proj.weight"]
    assert q.shape == hf_q.shape and list(got["blk.0.attn_q.weight"].shape) == [DIM, DIM]
    assert np.array_equal(q[0], hf_q[0]) and np.array_equal(q[1], hf_q[hd // 2])
    assert np.array_equal(q, permute_for_gguf(hf_q, 8))
    assert np.array_equal(got["blk.1.attn_k.weight"].data, permute_for_gguf(sd["model.layers.1.self_attn.k_proj.weight"], 2))
    assert np.array_equal(got["blk.0.attn_v.weight"].data, sd["model.layers.0.self_attn.v_proj.weight"])
    assert np.array_equal(got["blk.1.ffn_down.weight"].data, sd["model.layers.1.mlp.down_proj.weight"])
    assert np.array_equal(got["token_embd.weight"].data, sd["model.embed_tokens.weight"])
    assert list(got["token_embd.weight"].shape) == [DIM, 6400]  # GGUF lists dimensions innermost first


@pytest.mark.parametrize("outtype,rel_err,agree", [("f32", 1e-5, 1.0), ("f16", 5e-3, 0.95), ("q8_0", 0.06, 0.75)])
def test_gguf_forward_matches_torch(outtype, rel_err, agree, gguf_files, ckpt, ids):
    """The GGUF, run with llama.cpp's conventions, gives the torch model's logits (to the precision stored)."""
    _, net = ckpt
    want = logits(net, ids)[0].double().numpy()
    got = gguf_forward(gguf_files[outtype], ids[0].numpy())
    assert np.abs(got - want).mean() / want.std() < rel_err
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= agree


def test_gguf_quantized_types_and_sizes(gguf_files, ckpt):
    import gguf
    Q = gguf.GGMLQuantizationType
    for outtype, matrix_type in (("f16", Q.F16), ("q8_0", Q.Q8_0)):
        r = gguf.GGUFReader(gguf_files[outtype])
        for t in r.tensors:
            assert t.tensor_type == (Q.F32 if len(t.shape) == 1 else matrix_type), (outtype, t.name)
    # q8_0: each block of 32 values is one f16 scale times int8: no value is off by more than half a
    # step, plus 127 times the scale's f16 rounding (2^-11 relative)
    sd = ckpt[1].state_dict()
    t = {t.name: t for t in gguf.GGUFReader(gguf_files["q8_0"]).tensors}["blk.1.ffn_up.weight"]
    w = sd["model.layers.1.mlp.up_proj.weight"].numpy()
    deq = gguf.quants.dequantize(t.data, t.tensor_type)
    step = np.abs(w.reshape(-1, 32)).max(-1) / 127
    assert deq.shape == w.shape
    assert (np.abs(deq - w).reshape(-1, 32).max(-1) <= step * (0.5 + 127 * 2 ** -11)).all()
    sizes = {k: os.path.getsize(v) for k, v in gguf_files.items()}
    assert sizes["q8_0"] < sizes["f16"] < sizes["f32"]


TOKENIZER_SAMPLES = ["Hello world!  Two  spaces,\ttabs\nand newlines\n\n", "中文测试：人工智能是一门科学。",
                     "数字 12345 和 3.14159", "emoji 😀👍", "  leading", "It's we're they'll I'd",
                     "混合mixed文本text，标点！？……", "https://github.com/jingyaogong/minimind?x=1&y=2", TEXT]


def test_gguf_runs_in_llama_cpp(gguf_files, ckpt, tokenizer, ids):
    """llama.cpp itself loads the GGUFs, tokenizes like us, and decodes greedily like us."""
    llama_cpp = pytest.importorskip("llama_cpp")
    _, net = ckpt
    want = logits(net, ids)[0].double().numpy()
    # f32 KV cache (llama.cpp's default is f16) so that the f32 file computes in f32 throughout
    llm = llama_cpp.Llama(model_path=str(gguf_files["f32"]), n_ctx=256, n_threads=1, verbose=False,
                          logits_all=True, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    for text in TOKENIZER_SAMPLES:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == \
            tokenizer(text, add_special_tokens=False).input_ids, text
    llm.eval(ids[0].tolist())
    got = np.asarray(llm.scores[:ids.shape[1]], dtype=np.float64)
    assert np.abs(got - want).max() < 1e-3
    ours = greedy(net, ids, 16)
    llm.reset()
    theirs = []
    for tok in llm.generate(ids[0].tolist(), temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        theirs.append(tok)
        if len(theirs) == len(ours):
            break
    assert theirs == ours
    # the quantized file runs in llama.cpp too, within q8_0's precision
    q8 = llama_cpp.Llama(model_path=str(gguf_files["q8_0"]), n_ctx=256, n_threads=1, verbose=False,
                         logits_all=True)
    q8.eval(ids[0].tolist())
    got = np.asarray(q8.scores[:ids.shape[1]], dtype=np.float64)
    assert np.abs(got - want).mean() / want.std() < 0.06


def test_missing_weights_list_what_the_folder_holds(ckpt, tok_dir, tmp_path, capsys):
    """Like eval_model.py: the asked checkpoint is not there, the line names the ones that are."""
    out, _ = ckpt
    with pytest.raises(SystemExit) as e:
        run_main(cm.main, ["--to", "llama", "--dim", "128", "--n_layers", "2", "--out_dir", str(out),
                           "--tokenizer_path", tok_dir, "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert "full_sft_128.pth: weights not found" in err and f"{out} holds " in err and f"full_sft_{DIM}.pth (--dim {DIM}" in err
