"""train_pretrain.py / train_full_sft.py / train_dpo.py end to end on CPU with tiny dims.

The scripts run in-process (their main(argv)) to share one interpreter's imports; a few runs go
through a real `python script.py` to check exit codes and stderr exactly as a user sees them.
"""
import os
import shutil
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_dpo  # noqa: E402
import train_full_sft  # noqa: E402
import train_pretrain  # noqa: E402
from test_train_common import tokenizer_dir, write_data  # noqa: E402
from trainer.errors import run_main  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(str(tmp_path_factory.mktemp("data")))


def tiny(out_dir, *extra):
    return ["--dim", "32", "--n_layers", "1", "--max_seq_len", "48", "--num_workers", "0",
            "--tokenizer_path", tokenizer_dir(), "--out_dir", str(out_dir), "--batch_size", "8",
            "--log_interval", "1", *extra]


def run(script, argv, capsys):
    script.main(argv)
    return capsys.readouterr().out


def logged(out, key="loss"):
    """{step: value} of `key` from the log lines."""
    vals = {}
    for line in out.splitlines():
        parts = line.split()
        if "step" in parts and key in parts:
            step = int(parts[parts.index("step") + 1].split("/")[0])
            vals[step] = float(parts[parts.index(key) + 1])
    return vals


def user_error(script, argv, capsys):
    """Run through run_main as the script's __main__ does: exit 2 and exactly one stderr line."""
    with pytest.raises(SystemExit) as e:
        run_main(script.main, argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_hand_off_chain_pretrain_sft_dpo(tmp_path, data, capsys):
    from model import MiniMindConfig, MiniMindForCausalLM
    out = tmp_path / "out"
    o = run(train_pretrain, tiny(out, "--data_path", data["pretrain"], "--learning_rate", "3e-3",
                                 "--accumulation_steps", "2"), capsys)
    assert o.splitlines()[0].startswith("LLM total params: ") and o.splitlines()[0].endswith(" M")
    losses = logged(o)
    assert len(losses) >= 4 and losses[max(losses)] < losses[1] - 0.5, losses
    assert (out / "pretrain_32.pth").exists() and (out / "pretrain_32_resume.pth").exists()

    o = run(train_full_sft, tiny(out, "--data_path", data["sft"], "--learning_rate", "1e-3",
                                 "--val_data_path", data["sft"], "--eval_interval", "3"), capsys)
    assert f"loaded {out / 'pretrain_32.pth'}" in o
    assert "val/loss" in o and "val/ppl" in o
    val = logged(o, "val/loss")
    assert val[max(val)] < val[min(val)]

    o = run(train_dpo, tiny(out, "--data_path", data["dpo"], "--epochs", "1"), capsys)
    assert f"loaded {out / 'full_sft_32.pth'}" in o and "rewards/accuracies" in o
    assert (out / "rlhf_32.pth").exists()

    # each hand-off file is a plain MiniMind2 state_dict, strictly loadable, and each stage changed it
    m = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1))
    sds = {n: torch.load(out / f"{n}_32.pth", weights_only=True) for n in ("pretrain", "full_sft", "rlhf")}
    for sd in sds.values():
        m.load_state_dict(sd, strict=True)
        assert "model.layers.0.self_attn.q_proj.weight" in sd
    k = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(sds["pretrain"][k], sds["full_sft"][k])
    assert not torch.equal(sds["full_sft"][k], sds["rlhf"][k])


def test_mv_chain_and_named_weights(tmp_path, data, capsys):
    out = tmp_path / "out"
    run(train_full_sft, tiny(out, "--data_path", data["sft"], "--from_weight", "none", "--epochs", "1"), capsys)
    # the tutorial: SFT again on longer data, starting from the first SFT's weights
    shutil.move(out / "full_sft_32.pth", out / "pretrain_32.pth")
    o = run(train_full_sft, tiny(out, "--data_path", data["sft"], "--max_seq_len", "96"), capsys)
    assert f"loaded {out / 'pretrain_32.pth'}" in o and (out / "full_sft_32.pth").exists()
    # the same without renaming
    o = run(train_full_sft, tiny(out, "--data_path", data["sft"], "--from_weight", "full_sft",
                                 "--save_weight", "full_sft_2048"), capsys)
    assert f"loaded {out / 'full_sft_32.pth'}" in o and (out / "full_sft_2048_32.pth").exists()


def test_moe_suffix_and_real_bool(tmp_path, data, capsys):
    out = tmp_path / "out"
    o = run(train_pretrain, tiny(out, "--data_path", data["pretrain"], "--use_moe", "true", "--epochs", "1"), capsys)
    assert (out / "pretrain_32_moe.pth").exists() and "aux_loss" in o
    o = run(train_pretrain, tiny(out, "--data_path", data["pretrain"], "--use_moe", "False",
                                 "--max_seq_len", "16", "--save_weight", "dense"), capsys)
    assert (out / "dense_32.pth").exists() and not (out / "dense_32_moe.pth").exists()
    assert "aux_loss" not in o


def test_user_errors_one_line_exit_2(tmp_path, data, capsys):
    out = tmp_path / "out"
    # missing input checkpoint: names the file and the script that makes it
    line = user_error(train_full_sft, tiny(out, "--data_path", data["sft"]), capsys)
    assert str(out / "pretrain_32.pth") in line and "train_pretrain.py" in line
    line = user_error(train_dpo, tiny(out, "--data_path", data["dpo"]), capsys)
    assert str(out / "full_sft_32.pth") in line and "train_full_sft.py" in line

    # a checkpoint that does not fit the flags: names the dims held and asked
    run(train_pretrain, tiny(out, "--data_path", data["pretrain"], "--max_seq_len", "16"), capsys)
    before = (out / "pretrain_32.pth").read_bytes()
    line = user_error(train_full_sft, tiny(out, "--data_path", data["sft"], "--n_layers", "3"), capsys)
    assert "--dim 32 --n_layers 1 --use_moe 0" in line and "--dim 32 --n_layers 3 --use_moe 0" in line
    assert (out / "pretrain_32.pth").read_bytes() == before  # nothing already written is lost

    # bad flag values: argparse's one line
    for bad in (["--use_moe", "maybe"], ["--batch_size", "0"], ["--dtype", "float8"], ["--learning_rate", "x"],
                ["--from_resume", "2"]):
        line = user_error(train_pretrain, tiny(out, *bad), capsys)
        assert bad[0] in line

    # a bad data line: file and line number
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "fine"}\n{"text": oops}\n', encoding="utf-8")
    line = user_error(train_pretrain, tiny(out, "--data_path", str(bad)), capsys)
    assert f"{bad}:3" in line
    line = user_error(train_pretrain, tiny(out, "--data_path", str(tmp_path / "nope.jsonl")), capsys)
    assert "nope.jsonl" in line

    # a resume file from another configuration
    line = user_error(train_pretrain, tiny(out, "--data_path", data["pretrain"], "--max_seq_len", "16",
                                           "--batch_size", "4", "--from_resume", "1"), capsys)
    assert "pretrain_32_resume.pth" in line and "--batch_size 8 (now 4)" in line

    line = user_error(train_pretrain, tiny(out, "--dim", "100"), capsys)
    assert "--dim 100" in line
    line = user_error(train_pretrain, tiny(out, "--tokenizer_path", str(tmp_path)), capsys)
    assert "tokenizer" in line


def test_real_process_exit_codes(tmp_path, data):
    """As a user sees it: `python train_full_sft.py ...` with no pretrain checkpoint, and a bad flag."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train_full_sft.py"),
                        *tiny(out, "--data_path", data["sft"])], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "pretrain_32.pth" in r.stderr
    r = subprocess.run([sys.executable, os.path.join(ROOT, "train_dpo.py"), "--use_moe", "nope"],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--use_moe" in r.stderr


def test_a_short_run_logs_its_first_step_and_its_last(tmp_path, data, capsys):
    """MiniMind2's --log_interval 100 on a run of a few steps printed only the last one (or none):
    the first is always logged too, so a run shows where its loss started."""
    out = run(train_full_sft, tiny(tmp_path, "--data_path", data["sft"], "--from_weight", "none",
                                   "--log_interval", "100", "--epochs", "1"), capsys)
    steps = sorted(logged(out))
    total = int(out.split(" optimizer steps")[0].split()[-1])
    assert 2 < total < 100 and steps == [1, total], out


def test_a_data_folder_says_which_files_it_reads_and_their_rows(tmp_path, data, capsys):
    folder = tmp_path / "sft_parts"
    folder.mkdir()
    with open(data["sft"], encoding="utf-8") as f:
        lines = f.readlines()
    (folder / "part1.jsonl").write_text("".join(lines[:20]), encoding="utf-8")
    (folder / "part2.jsonl").write_text("".join(lines[20:50]), encoding="utf-8")
    (folder / "notes.txt").write_text("not data")
    out = run(train_full_sft, tiny(tmp_path / "out", "--data_path", str(folder), "--from_weight", "none",
                                   "--epochs", "1"), capsys)
    assert f"{folder}: 2 file(s): part1.jsonl (20 rows), part2.jsonl (30 rows)" in out, out
    assert out.index("2 file(s)") < out.index("step 1/")
    single = run(train_full_sft, tiny(tmp_path / "out1", "--data_path", data["sft"], "--from_weight", "none",
                                      "--epochs", "1"), capsys)
    assert "file(s):" not in single  # one file named by itself: nothing to list


def test_extra_dashes_are_read_as_the_flag_and_a_typo_gets_a_suggestion(capsys):
    """MiniMind's tutorial writes `----batch_size 4`: read as --batch_size, with a note saying so.
    A flag that does not exist still fails, naming the closest real one."""
    a = train_dpo.parse_args(["----batch_size", "3", "---epochs=2", "--dim", "32"])
    assert (a.batch_size, a.epochs, a.dim) == (3, 2, 32)
    err = capsys.readouterr().err.splitlines()
    assert err == ["note: read ----batch_size as --batch_size", "note: read ---epochs as --epochs"]
    with pytest.raises(SystemExit) as e:
        train_dpo.parse_args(["----bacth_size", "4"])
    line = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "unrecognized arguments: ----bacth_size" in line and "did you mean --batch_size?" in line


def test_minimind_later_names(tmp_path, data, capsys):
    """MiniMind's 2025-10 scripts say --save_dir, --use_compile and call DPO's output `dpo`: they work here."""
    out = tmp_path / "o"
    run(train_pretrain, tiny(tmp_path / "unused", "--save_dir", str(out), "--data_path", data["pretrain"],
                             "--from_weight", "none", "--epochs", "1"), capsys)
    assert (out / "pretrain_32.pth").is_file() and not (tmp_path / "unused").exists()
    assert train_pretrain.parse_args(["--use_compile", "0"]).compile is False
    run(train_full_sft, tiny(out, "--data_path", data["sft"], "--epochs", "1"), capsys)
    run(train_dpo, tiny(out, "--data_path", data["dpo"], "--epochs", "1"), capsys)
    # --from_weight dpo reads rlhf_32.pth (there is no dpo_32.pth)
    o = run(train_full_sft, tiny(out, "--data_path", data["sft"], "--epochs", "1", "--from_weight", "dpo",
                                 "--save_weight", "after_dpo"), capsys)
    assert f"loaded {out / 'rlhf_32.pth'}" in o
    import argparse
    from model.loading import checkpoint_file
    a = argparse.Namespace(out_dir=str(out), weight="dpo", model_mode=1, dim=32, use_moe=False)
    assert checkpoint_file(a) == str(out / "rlhf_32.pth")
