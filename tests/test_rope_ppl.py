"""scripts/bench_rope_ppl.py: perplexity at 1x-8x the trained length, plain RoPE against YaRN."""
import json
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks import rope_ppl  # noqa: E402
from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402
from scripts import bench_rope_ppl  # noqa: E402
from test_train_common import tokenizer_dir  # noqa: E402
from trainer.args import load_tokenizer  # noqa: E402
from trainer.checkpoint import save_weights  # noqa: E402
from trainer.errors import run_main  # noqa: E402


def test_the_variants_change_only_the_rope():
    torch.manual_seed(0)
    net = MiniMindForCausalLM(MiniMindConfig(hidden_size=64, num_hidden_layers=1)).eval()
    tok = load_tokenizer(tokenizer_dir())
    ids = rope_ppl.windows(tok, ["The capital of Tarnis is Sunmar.", "塔尼斯的首都是桑玛。"], 64, 2)
    assert ids.shape == (2, 64) and ids[0, 0] == tok.bos_token_id
    plain = rope_ppl.with_rope(net, None)
    yarn = rope_ppl.with_rope(net, rope_ppl.variants(16)["yarn"])
    assert yarn.config.rope_parameters["original_max_position_embeddings"] == 16
    assert yarn.config.max_position_embeddings == 128  # 16 x factor 8: what transformers expects
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, net(ids).logits)
        assert not torch.allclose(yarn(ids).logits, net(ids).logits)
    assert rope_ppl.perplexity(plain, ids) > 1


def test_the_command_writes_table_json_and_png(tmp_path, capsys):
    torch.manual_seed(0)
    save_weights(MiniMindForCausalLM(MiniMindConfig(hidden_size=64, num_hidden_layers=1)), str(tmp_path / "pretrain_64.pth"))
    run_main(bench_rope_ppl.main, ["--out_dir", str(tmp_path), "--dim", "64", "--n_layers", "1", "--model_mode", "0",
                                   "--trained_len", "16", "--windows", "1", "--tokenizer_path", tokenizer_dir()])
    out = capsys.readouterr().out
    assert "| variant | 1× (16) | 2× (32) | 4× (64) | 8× (128) |" in out
    result = json.loads((tmp_path / "rope_ppl.json").read_text())
    assert result["lengths"] == [16, 32, 64, 128] and set(result["ppl"]) == {"plain", "yarn", "minimind_2510"}
    assert all(len(v) == 4 and all(p > 1 for p in v) for v in result["ppl"].values())
    assert (tmp_path / "rope_ppl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_user_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no text here"}\n')
    for argv, needle in ((["--data_path", str(bad)], "bad.jsonl:1"), (["--data_path", str(tmp_path / "no.jsonl")], "not found"),
                         (["--inference_rope_scaling"], "drop the flag")):
        with pytest.raises(SystemExit) as e:
            run_main(bench_rope_ppl.main, ["--out_dir", str(tmp_path), *argv])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and needle in err, err
