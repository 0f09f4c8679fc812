"""train_lora.py and model/lora.py: peft adapters in MiniMind2's LoRA file format, and --lora_name in
eval_model.py, the server and the converter.

One tiny base (dim 64, 2 layers, random wide weights so that an adapter visibly moves the logits) is
saved as out/rlhf_64.pth, and one real train_lora.py run (rank 8, alpha 16: scale 2, which the file
must fold into B) is shared by the module. It doubles as the uninterrupted reference of the SIGKILL test.
"""
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train_common import tokenizer_dir, write_data  # noqa: E402
from test_train_scripts import logged, user_error  # noqa: E402

from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from trainer.checkpoint import load_weights, save_weights  # noqa: E402
from trainer.errors import run_main  # noqa: E402
from model.lora import apply_lora, list_adapters, lora_path, merge_lora, read_lora  # noqa: E402

DIM, LAYERS, RANK, ALPHA = 64, 2, 8, 16
IDS = torch.tensor([[1, 42, 317, 5, 901, 77, 2, 1, 13]])
KEY = re.compile(r"^model\.layers\.(\d+)\.self_attn\.(q_proj|o_proj)\.lora\.(A|B)\.weight$")


def tiny(n_layers=LAYERS, dim=DIM, seed=0):
    torch.manual_seed(seed)
    cfg = MiniMindConfig(hidden_size=dim, num_hidden_layers=n_layers, initializer_range=0.3)
    return MiniMindForCausalLM(cfg).eval()


def base(out):
    return load_weights(tiny(seed=99), os.path.join(out, f"rlhf_{DIM}.pth")).eval()


def logits(net, ids=IDS):
    with torch.no_grad():
        return net(ids).logits.float()


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def train_cmd(out, data, *extra):
    return [sys.executable, "-u", os.path.join(ROOT, "train_lora.py"), "--device", "cpu",
            "--dim", str(DIM), "--n_layers", str(LAYERS), "--max_seq_len", "48", "--batch_size", "2",
            "--epochs", "2", "--learning_rate", "5e-3", "--lora_rank", str(RANK), "--lora_alpha", str(ALPHA),
            "--log_interval", "1", "--save_interval", "4", "--num_workers", "0",
            "--tokenizer_path", tokenizer_dir(), "--data_path", data, "--out_dir", str(out), *extra]


ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """out/rlhf_64.pth (float16, as train_dpo.py writes it) and one train_lora.py run on it."""
    root = tmp_path_factory.mktemp("lora")
    data = write_data(str(root / "data"), n_pretrain=1, n_sft=24, n_dpo=1)["sft"]
    out = root / "a"
    save_weights(tiny(seed=99), str(out / f"rlhf_{DIM}.pth"))
    before = sha(out / f"rlhf_{DIM}.pth")
    r = subprocess.run(train_cmd(out, data), capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return dict(root=root, out=str(out), data=data, base_sha=before, stdout=r.stdout,
                adapter=lora_path(str(out), "lora_identity", DIM))


# ------------------------------------------------------------------------------ training

def test_trains_the_adapter_only(run):
    out, o = run["out"], run["stdout"]
    assert sha(os.path.join(out, f"rlhf_{DIM}.pth")) == run["base_sha"], "the base weights file changed"
    m = re.search(r"^LoRA: trainable ([\d.]+)M of ([\d.]+)M parameters \(([\d.]+)%\)$", o, re.M)
    assert m, o[:2000]
    n_lora = LAYERS * 2 * RANK * (DIM + DIM)  # q_proj and o_proj: A (r x 64) + B (64 x r)
    n_base = sum(p.numel() for p in tiny().parameters())
    assert m.groups() == (f"{n_lora / 1e6:.3f}", f"{(n_lora + n_base) / 1e6:.1f}",
                          f"{100 * n_lora / (n_lora + n_base):.2f}")
    assert re.search(r"^saved \S+lora_identity_64\.pth \(step \d+, final\)$", o, re.M), o[-1000:]
    # nothing but the adapter (and its resume file) was written
    assert sorted(os.listdir(out)) == ["lora", f"rlhf_{DIM}.pth"]
    assert sorted(os.listdir(os.path.join(out, "lora"))) == ["lora_identity_64.pth", "lora_identity_64_resume.pth"]

    sd = torch.load(run["adapter"], weights_only=True)
    assert len(sd) == LAYERS * 2 * 2 and all(KEY.match(k) for k in sd), sorted(sd)
    for k, v in sd.items():
        assert tuple(v.shape) == ((RANK, DIM) if ".lora.A." in k else (DIM, RANK)), (k, v.shape)
    assert sum(v.numel() for v in sd.values()) == n_lora
    assert any(v.abs().max() > 0 for k, v in sd.items() if ".lora.B." in k), "B never moved from zero"
    assert list_adapters(out) == [dict(name="lora_identity", path=run["adapter"], rank=RANK, dim=DIM, use_moe=False)]

    res = torch.load(os.path.join(out, "lora", "lora_identity_64_resume.pth"), weights_only=True)
    assert len(res["model"]) == LAYERS * 2 * 2 and all(".lora_" in k for k in res["model"]), sorted(res["model"])
    assert res["config"]["lora_rank"] == RANK and res["config"]["lora_alpha"] == ALPHA
    losses = logged(o)
    assert losses[max(losses)] < losses[1], losses


def test_applied_equals_merged(run):
    applied = apply_lora(base(run["out"]), run["adapter"])
    la = logits(applied)
    merged = merge_lora(base(run["out"]), run["adapter"])
    assert type(merged) is MiniMindForCausalLM and not any("lora" in k for k in merged.state_dict())
    assert torch.allclose(logits(merged), la, atol=1e-5, rtol=0)
    assert (la - logits(base(run["out"]))).abs().max() > 1e-2, "the adapter does nothing"
    with applied.disable_adapter():  # peft's switch: the base model underneath is untouched
        assert torch.equal(logits(applied), logits(base(run["out"])))


def test_targets_by_name_path_or_all_and_a_one_layer_adapter(run, tmp_path):
    from model.lora import add_lora, lora_state_dict, resolve_targets
    net = base(run["out"])
    assert resolve_targets(net, "q_proj,o_proj") == [f"model.layers.{i}.self_attn.{m}" for i in range(LAYERS)
                                                     for m in ("o_proj", "q_proj")]
    assert len(resolve_targets(net, "all")) == LAYERS * 7  # q k v o gate up down
    assert resolve_targets(net, "1.mlp.down_proj") == ["model.layers.1.mlp.down_proj"]
    pm = add_lora(net, 4, 8.0, "1.mlp.down_proj,1.self_attn.o_proj")
    torch.manual_seed(3)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
    want = logits(pm)
    path = str(tmp_path / "one_layer_64.pth")
    torch.save(lora_state_dict(pm), path)
    assert sorted(torch.load(path, weights_only=True)) == [
        "model.layers.1.mlp.down_proj.lora.A.weight", "model.layers.1.mlp.down_proj.lora.B.weight",
        "model.layers.1.self_attn.o_proj.lora.A.weight", "model.layers.1.self_attn.o_proj.lora.B.weight"]
    # an adapter of chosen layers is not mistaken for one of a shallower base
    assert torch.allclose(logits(apply_lora(base(run["out"]), path)), want, atol=1e-5, rtol=0)


def test_demo_lora_sets(tmp_path):
    """The bundled LoRA sets are the generator's, and their held-out questions are new to them."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_demo_data.py"), "--out_dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    demo_dir = os.path.join(ROOT, "dataset", "demo")
    heldout = [json.loads(line)["question"] for line in open(os.path.join(demo_dir, "heldout.jsonl"), encoding="utf-8")]
    for name in ("identity", "domain"):
        for f in (f"lora_{name}.jsonl", f"lora_{name}_heldout.jsonl"):
            with open(tmp_path / f, "rb") as a, open(os.path.join(demo_dir, f), "rb") as b:
                assert a.read() == b.read(), f"dataset/demo/{f} is not what scripts/make_demo_data.py writes"
        rows = [json.loads(line) for line in open(os.path.join(demo_dir, f"lora_{name}.jsonl"), encoding="utf-8")]
        held = [json.loads(line) for line in open(os.path.join(demo_dir, f"lora_{name}_heldout.jsonl"), encoding="utf-8")]
        asked = {m["content"] for r in rows for m in r["conversations"] if m["role"] == "user"}
        assert held and not {h["question"] for h in held} & asked, "a held-out phrasing is in the training set"
        assert not set(heldout) & asked, "a LoRA set asks a held-out question of the base corpus"
        answers = " ".join(m["content"] for r in rows for m in r["conversations"] if m["role"] == "assistant")
        assert all(all(k in answers for k in h["keywords"]) for h in held)  # every answer is taught
        assert {h["lang"] for h in held} == {"en", "zh"}


# ------------------------------------------------------------------------------ MiniMind's format

class MiniMindLoRA(nn.Module):
    """MiniMind2's model/model_lora.py LoRA module (561979c): B(A(x)), no scaling."""

    def __init__(self, in_features, out_features, rank):
        super().__init__()
        self.A = nn.Linear(in_features, rank, bias=False)
        self.B = nn.Linear(rank, out_features, bias=False)
        self.A.weight.data.normal_(mean=0.0, std=0.02)
        self.B.weight.data.zero_()

    def forward(self, x):
        return self.B(self.A(x))


def minimind_apply_lora(model, rank):
    """MiniMind's apply_lora: a LoRA on every square nn.Linear, its output added to the layer's."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.weight.shape[0] == module.weight.shape[1]:
            lora = MiniMindLoRA(module.weight.shape[0], module.weight.shape[1], rank)
            setattr(module, "lora", lora)
            original = module.forward
            module.forward = lambda x, f=original, l=lora: f(x) + l(x)


def minimind_save_lora(model, path):
    state = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora"):
            state.update({f"{name}.lora.{k}": v for k, v in module.lora.state_dict().items()})
    torch.save(state, path)


def minimind_load_lora(model, path):
    state = torch.load(path, map_location="cpu")
    for name, module in model.named_modules():
        if hasattr(module, "lora"):
            module.lora.load_state_dict({k.replace(f"{name}.lora.", ""): v for k, v in state.items()
                                         if f"{name}.lora." in k})


def test_a_minimind_file_loads_here_with_the_same_logits(run, tmp_path):
    mm = base(run["out"])
    minimind_apply_lora(mm, rank=4)
    assert sorted({n.rsplit(".", 2)[-2] for n, _ in mm.named_modules() if n.endswith(".lora")}) == ["o_proj", "q_proj"]
    torch.manual_seed(1)
    for n, m in mm.named_modules():
        if n.endswith(".lora"):
            m.B.weight.data.normal_(0, 0.3)  # a trained-looking B (MiniMind starts it at zero)
    path = str(tmp_path / "lora_medical_64.pth")
    minimind_save_lora(mm, path)
    assert {tuple(a.shape) for a, _ in read_lora(path).values()} == {(4, DIM)}
    ours = apply_lora(base(run["out"]), path)
    assert torch.allclose(logits(ours), logits(mm), atol=1e-5, rtol=0)
    assert (logits(mm) - logits(base(run["out"]))).abs().max() > 1e-2


def test_our_file_loads_in_minimind_with_the_same_logits(run):
    from peft import LoraConfig, get_peft_model
    mm = base(run["out"])
    minimind_apply_lora(mm, rank=RANK)
    minimind_load_lora(mm, run["adapter"])  # strict load_state_dict per module: every key fits
    # the model as it was trained: peft's raw tensors from the resume file, scale alpha / rank = 2
    trained = get_peft_model(base(run["out"]), LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=["q_proj", "o_proj"]))
    res = torch.load(os.path.join(run["out"], "lora", "lora_identity_64_resume.pth"), weights_only=True)
    missing, unexpected = trained.load_state_dict(res["model"], strict=False)
    assert not unexpected and not any("lora_" in k for k in missing)
    assert torch.allclose(logits(mm), logits(trained), atol=1e-5, rtol=0)
    assert torch.allclose(logits(apply_lora(base(run["out"]), run["adapter"])), logits(mm), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------ DDP and resume

def test_torchrun_two_processes(run, tmp_path):
    out = tmp_path / "out"
    shutil.copy(os.path.join(run["out"], f"rlhf_{DIM}.pth"), tmp_path / "rlhf.pth")
    cmd = train_cmd(out, run["data"], "--from_weight", str(tmp_path / "rlhf.pth"), "--epochs", "1",
                    "--lora_name", "lora_ddp")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
                       + cmd[2:], capture_output=True, text=True, env=ENV, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stdout.count("LoRA: trainable") == 1 and "2 process(es)" in r.stdout, r.stdout[-2000:]
    res = torch.load(out / "lora" / "lora_ddp_64_resume.pth", weights_only=True)
    assert len(res["rng"]) == 2 and res["config"]["world_size"] == 2
    assert all(KEY.match(k) for k in torch.load(out / "lora" / "lora_ddp_64.pth", weights_only=True))


def test_sigkill_then_resume_gives_identical_losses(run, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(run["out"], out, ignore=shutil.ignore_patterns("lora"))
    p = subprocess.Popen(train_cmd(out, run["data"]), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, env=ENV)
    seen, saved = [], False
    for line in p.stdout:
        seen.append(line)
        saved = saved or line.startswith("saved ")
        if saved and line.startswith("epoch "):
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, "".join(seen[-5:])
    r = subprocess.run(train_cmd(out, run["data"], "--from_resume", "1"), capture_output=True, text=True,
                       env=ENV, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    m = re.search(r"resumed from epoch \d+ step (\d+)", r.stdout)
    assert m, r.stdout[:2000]
    start, full = int(m.group(1)), logged(run["stdout"])
    assert 4 <= start < max(full) and start % 4 == 0
    resumed = logged(r.stdout)
    assert sorted(resumed) == list(range(start + 1, max(full) + 1))
    assert resumed == {s: full[s] for s in resumed}  # identical losses, printed to 6 decimals
    a = torch.load(run["adapter"], weights_only=True)
    b = torch.load(out / "lora" / "lora_identity_64.pth", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sha(out / f"rlhf_{DIM}.pth") == run["base_sha"]


# ------------------------------------------------------------------------------ eval, server, converter

def eval_argv(out, *extra):
    return ["--out_dir", str(out), "--dim", str(DIM), "--n_layers", str(LAYERS), "--device", "cpu",
            "--tokenizer_path", tokenizer_dir(), "--model_mode", "2", *extra]


def test_eval_model_lora_name(run, capsys, monkeypatch):
    from model import chat_cli
    args = chat_cli.get_parser().parse_args(eval_argv(run["out"], "--lora_name", "lora_identity"))
    from model.loading import load_model
    net, tok = load_model(args)
    assert torch.allclose(logits(net), logits(apply_lora(base(run["out"]), run["adapter"])), atol=1e-5, rtol=0)

    q = "the cat sat"
    prompt = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        want = net.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                            pad_token_id=0, eos_token_id=tok.eos_token_id)
    want = tok.decode(want[0, ids.shape[1]:], skip_special_tokens=True)
    monkeypatch.setattr(sys, "stdin", io.StringIO(q + "\n"))
    assert chat_cli.main(eval_argv(run["out"], "--lora_name", "lora_identity", "--mode", "1", "--temperature", "0",
                                     "--max_new_tokens", "6", "--stream", "0")) == 0
    o = capsys.readouterr().out
    assert f"LoRA adapter: {run['adapter']}" in o and f"🤖️: {want}\n" in o, o


def test_server_lora_name(run):
    from fastapi.testclient import TestClient
    from scripts import serve_openai_api as serve
    args = serve.get_parser().parse_args(["--out_dir", run["out"], "--dim", str(DIM), "--n_layers", str(LAYERS),
                                          "--model_mode", "2", "--lora_name", "lora_identity",
                                          "--tokenizer_path", tokenizer_dir(), "--device", "cpu"])
    net, tok, where = serve.load_source(args)
    assert where.endswith(f"+ LoRA {run['adapter']}")
    merged = merge_lora(base(run["out"]), run["adapter"])
    assert torch.allclose(logits(net), logits(merged), atol=1e-5, rtol=0)
    ids = tok(tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True),
              add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        want = merged.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                               pad_token_id=0, eos_token_id=tok.eos_token_id)
    with TestClient(serve.create_app(serve.Engine(net, tok))) as c:
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                 "temperature": 0, "max_tokens": 6})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == tok.decode(want[0, ids.shape[1]:], skip_special_tokens=True)


def test_convert_merges_and_writes_a_peft_folder(run, tmp_path):
    from scripts import convert_model as cm
    src = ["--out_dir", run["out"], "--dim", str(DIM), "--n_layers", str(LAYERS), "--model_mode", "2",
           "--tokenizer_path", tokenizer_dir(), "--outtype", "f32"]
    cm.main(src + ["--to", "llama", "--lora_name", "lora_identity", "-o", str(tmp_path / "merged")])
    cm.main(src + ["--to", "llama", "-o", str(tmp_path / "base")])
    cm.main(src + ["--to", "peft", "--lora_name", "lora_identity", "-o", str(tmp_path / "peft")])
    from transformers import LlamaForCausalLM
    want = logits(apply_lora(base(run["out"]), run["adapter"]))
    assert torch.allclose(logits(LlamaForCausalLM.from_pretrained(tmp_path / "merged").eval()), want, atol=1e-5, rtol=0)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(os.listdir(tmp_path / "peft"))
    cfg = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert (cfg["peft_type"], cfg["task_type"], cfg["r"], sorted(cfg["target_modules"])) == \
        ("LORA", "CAUSAL_LM", RANK, ["o_proj", "q_proj"])

    # PeftModel.from_pretrained on the exported base, in a process that cannot import the repo
    np.save(tmp_path / "ids.npy", IDS.numpy())
    probe = textwrap.dedent(f"""
        import sys, numpy as np, torch
        try:
            import trainer
            sys.exit("the repo is importable here: " + trainer.__file__)
        except ImportError:
            pass
        from transformers import AutoModelForCausalLM
        from peft import PeftModel
        m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({str(tmp_path / "base")!r}),
                                      {str(tmp_path / "peft")!r}).eval()
        assert type(m).__name__ == "PeftModelForCausalLM", type(m)
        with torch.no_grad():
            np.save("logits.npy", m(torch.from_numpy(np.load("ids.npy"))).logits.float().numpy())
    """)
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    r = subprocess.run([sys.executable, "-P", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert torch.allclose(torch.from_numpy(np.load(tmp_path / "logits.npy")), want, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------ user errors

def test_user_errors_are_one_line(run, tmp_path, capsys):
    from model import chat_cli
    import train_lora
    from scripts import convert_model as cm
    out = tmp_path / "o"
    shutil.copytree(run["out"], out, ignore=shutil.ignore_patterns("*_resume.pth"))

    def ev(*extra):
        return user_error(chat_cli, eval_argv(out, *extra), capsys)

    line = ev("--lora_name", "lora_medical")  # a missing name lists what out/lora holds
    assert "lora_medical_64.pth: no such LoRA adapter" in line and "lora_identity (--dim 64, rank 8)" in line, line
    empty = tmp_path / "empty"
    shutil.copytree(run["out"], empty, ignore=shutil.ignore_patterns("lora"))
    assert "holds no adapters" in user_error(chat_cli, eval_argv(empty, "--lora_name", "x"), capsys)

    sd = torch.load(run["adapter"], weights_only=True)
    k = next(k for k in sd if ".lora.B." in k)
    torch.save({**sd, k: sd[k][:, :4]}, out / "lora" / "bad_rank_64.pth")
    assert "rank mismatch" in ev("--lora_name", "bad_rank")

    # an adapter of a --dim 64 base on a --dim 128 one
    save_weights(tiny(dim=128), str(out / "rlhf_128.pth"))
    shutil.copy(run["adapter"], out / "lora" / "lora_identity_128.pth")
    line = user_error(chat_cli, eval_argv(out, "--dim", "128", "--lora_name", "lora_identity"), capsys)
    assert "dims mismatch" in line and "--dim 64 base, this model is --dim 128" in line, line
    # an adapter of a 2-layer base on a 1-layer one
    save_weights(tiny(n_layers=1), str(out / "small_64.pth"))
    line = ev("--n_layers", "1", "--weight", "small", "--lora_name", "lora_identity")
    assert "a 2-layer base" in line and "has 1 layers" in line, line
    assert "a full model checkpoint" in ev("--lora_name", str(out / f"rlhf_{DIM}.pth"))

    def tr(*extra):
        return user_error(train_lora, train_cmd(out, run["data"], *extra)[3:], capsys)

    assert "--lora_targets qkv: qkv is not a linear layer" in tr("--lora_targets", "qkv")
    assert "--from_weight none" in tr("--from_weight", "none")
    assert "--lora_name" in tr("--lora_name", "../x")
    # the resume file remembers the adapter's shape: another rank is refused, naming the flag
    shutil.copy(os.path.join(run["out"], "lora", "lora_identity_64_resume.pth"), out / "lora")
    with pytest.raises(SystemExit) as e:
        run_main(train_lora.main, train_cmd(out, run["data"], "--lora_rank", "4", "--from_resume", "1",
                                            "--from_weight", os.path.join(run["out"], f"rlhf_{DIM}.pth"))[3:])
    err = capsys.readouterr().err.strip().splitlines()  # the data set's summary line, then the error
    assert e.value.code == 2 and err[-1].startswith("error: ") and "Traceback" not in "".join(err), err
    assert "different configuration: --lora_rank 8 (now 4);" in err[-1], err[-1]
    line = user_error(cm, ["--to", "peft", "--out_dir", str(out), "--dim", str(DIM), "-o", str(tmp_path / "p")], capsys)
    assert "--to peft" in line and "--lora_name" in line
