"""The library layer under every front end: model/loading.py (a model from any source),
model/generation.py (streamed and batched generation, ids and log-probs, stop strings) and
model/chat.py (prompts), on the overfit tiny chat model of tests/tiny_chat.py."""
import argparse
import os
import threading

import pytest
import torch

from tiny_chat import A_PLAIN, DIM, LAYERS, Q_MD, Q_PLAIN, Q_THINK, chat_state, tiny, tokenizer_dir

from model.chat import build_prompt  # noqa: E402
from model.export import export_minimind  # noqa: E402
from model.generation import generate_batch, sampling_kwargs, stream_text  # noqa: E402
from model.loading import checkpoint_file, load_model, load_source, source_is_dir  # noqa: E402
from trainer.args import load_tokenizer  # noqa: E402
from trainer.checkpoint import save_weights  # noqa: E402
from trainer.errors import UserError  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(str(tokenizer_dir()))


@pytest.fixture(scope="module")
def net(tok):
    m = tiny()
    m.load_state_dict(chat_state(tok))
    return m.eval()


@pytest.fixture(scope="module")
def out_dir(net, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    save_weights(net, str(out / f"full_sft_{DIM}.pth"), dtype=torch.float32)
    return out


def source(out_dir, *pairs, **kw):
    a = dict(out_dir=str(out_dir), dim=DIM, n_layers=LAYERS, use_moe=False, model_mode=1, weight=None, load=None,
             model_path=None, tokenizer_path=str(tokenizer_dir()), lora_name=None, device="cpu", dtype="float32")
    a.update(kw)
    return argparse.Namespace(**a)


def prompt(tok, q):
    return build_prompt(tok, [{"role": "user", "content": q}], 1)


def logits_of(m, tok):
    ids = tok(prompt(tok, Q_PLAIN), return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        return m(ids).logits


# ------------------------------------------------------------------------------------- loading

def test_every_source_gives_the_same_model(net, tok, out_dir, tmp_path):
    want = logits_of(net, tok)
    by_mode, _, where = load_source(source(out_dir))
    assert where == os.path.join(str(out_dir), f"full_sft_{DIM}.pth")
    by_path, _, _ = load_source(source(out_dir, weight=where))
    folder = str(tmp_path / "folder")
    export_minimind(net, tok, folder, outtype="f32")
    by_folder, folder_tok, where_dir = load_source(source(out_dir, model_path=folder, tokenizer_path=None))
    assert where_dir == folder and len(folder_tok) == len(tok)
    for m in (by_mode, by_path, by_folder):
        assert not m.training
        assert torch.allclose(logits_of(m, tok), want, atol=1e-5)
    on_device, _ = load_model(source(out_dir))
    assert next(on_device.parameters()).device.type == "cpu"


def test_source_flags():
    a = source("o", model_mode=2)
    assert checkpoint_file(a) == os.path.join("o", f"rlhf_{DIM}.pth")
    assert checkpoint_file(source("o", weight="mine")) == os.path.join("o", f"mine_{DIM}.pth")
    assert checkpoint_file(source("o", weight="x/y.pth")) == "x/y.pth"
    assert not source_is_dir(a) and source_is_dir(source("o", model_path="d"))
    assert not source_is_dir(source("o", model_path="d", load=0))
    with pytest.raises(UserError, match="--load 1 needs --model_path"):
        source_is_dir(source("o", load=1))


def test_missing_weights_name_the_script_and_what_the_folder_holds(out_dir):
    with pytest.raises(UserError) as e:
        load_source(source(out_dir, model_mode=3))
    msg = str(e.value)
    assert f"reason_{DIM}.pth: weights not found" in msg and "train_distill_reason.py" in msg
    assert f"full_sft_{DIM}.pth (--dim {DIM} --n_layers {LAYERS})" in msg and "\n" not in msg


def test_a_folder_without_config_and_other_dims_are_one_line(out_dir, tmp_path):
    with pytest.raises(UserError, match="config.json: not found"):
        load_source(source(out_dir, model_path=str(tmp_path)))
    with pytest.raises(UserError) as e:
        load_source(source(out_dir, n_layers=LAYERS + 1))
    assert "\n" not in str(e.value) and "full_sft" in str(e.value)


# ---------------------------------------------------------------------------------- generation

def test_batched_greedy_rows_equal_each_prompt_alone(net, tok):
    """Left padding changes nothing: every row of a batch of unequal prompts is what the prompt
    gets alone, and each token's log-prob is the model's own (a teacher-forced forward pass)."""
    prompts = [prompt(tok, q) for q in (Q_PLAIN, Q_MD, Q_THINK)]
    budget = len(tok(A_PLAIN, add_special_tokens=False).input_ids) + 4  # the first row ends before the others
    batch = generate_batch(net, tok, prompts, max_new_tokens=budget, temperature=0, return_logprobs=True)
    assert batch.finish_reasons == ["stop", "length", "length"]
    assert batch.prompt_mask.sum(1).tolist() == [len(tok(p, add_special_tokens=False).input_ids) for p in prompts]
    for i, p in enumerate(prompts):
        alone = generate_batch(net, tok, [p], max_new_tokens=budget, temperature=0, return_logprobs=True)
        n = int(alone.completion_mask.sum())
        assert int(batch.completion_mask[i].sum()) == n
        assert batch.completion_ids[i, :n].tolist() == alone.completion_ids[0, :n].tolist()
        assert batch.texts[i] == alone.texts[0]
        torch.testing.assert_close(batch.logprobs[i, :n], alone.logprobs[0, :n], atol=1e-4, rtol=0)
        # the log-probs are those a forward pass over prompt + completion gives
        ids = torch.tensor([tok(p, add_special_tokens=False).input_ids + alone.completion_ids[0, :n].tolist()])
        with torch.no_grad():
            lp = torch.log_softmax(net(ids).logits[0, -n - 1:-1].float(), -1)
        want = lp.gather(-1, alone.completion_ids[0, :n, None]).squeeze(-1)
        torch.testing.assert_close(alone.logprobs[0, :n], want, atol=1e-4, rtol=0)
        assert (batch.logprobs[i, n:] == 0).all() and (batch.completion_mask[i, n:] == 0).all()


def test_a_row_ends_at_its_eos_and_others_run_to_the_length(net, tok):
    short = prompt(tok, Q_PLAIN)  # the overfit model answers this one and says <|im_end|>
    long_ = prompt(tok, Q_MD)
    budget = len(tok(A_PLAIN, add_special_tokens=False).input_ids) + 1
    g = generate_batch(net, tok, [short, long_], max_new_tokens=budget, temperature=0)
    assert g.texts[0] == A_PLAIN and g.finish_reasons[0] == "stop"
    n = int(g.completion_mask[0].sum())
    assert n == budget and g.completion_ids[0, n - 1] == tok.eos_token_id  # the EOS is kept, and masked in
    assert g.finish_reasons[1] == "length" and int(g.completion_mask[1].sum()) == budget


def test_stop_strings_cut_the_text_and_the_mask(net, tok):
    p = prompt(tok, Q_PLAIN)
    word = A_PLAIN.split()[1]  # "preference"
    g = generate_batch(net, tok, [p], max_new_tokens=40, temperature=0, stop=[word])
    assert g.texts == [A_PLAIN.split(word)[0]] and g.finish_reasons == ["stop"]
    kept = tok.decode(g.completion_ids[0, :int(g.completion_mask.sum())])
    assert word in kept and word not in tok.decode(g.completion_ids[0, :int(g.completion_mask.sum()) - 1])


def test_sampling_is_seeded_and_repeats_rows_per_prompt(net, tok):
    p = [prompt(tok, Q_MD), prompt(tok, Q_PLAIN)]
    torch.manual_seed(3)
    a = generate_batch(net, tok, p, max_new_tokens=8, temperature=1.5, top_p=0.95, num_return_sequences=3)
    torch.manual_seed(3)
    b = generate_batch(net, tok, p, max_new_tokens=8, temperature=1.5, top_p=0.95, num_return_sequences=3)
    assert a.completion_ids.shape[0] == 6 and torch.equal(a.completion_ids, b.completion_ids)
    assert torch.equal(a.prompt_ids[0], a.prompt_ids[2]) and not torch.equal(a.prompt_ids[0], a.prompt_ids[3])
    assert sampling_kwargs(0, 0.9)["do_sample"] is False and sampling_kwargs(0.7, 0.9)["do_sample"] is True


def test_a_prompts_rows_share_its_prefill(net, tok):
    """num_return_sequences > 1 prefills each prompt once and repeats its keys and values: the same samples
    and log-probs as generate() running every copy of the prompt (the same seed, left padding included)."""
    p = [prompt(tok, Q_MD), prompt(tok, Q_PLAIN)]
    torch.manual_seed(4)
    shared = generate_batch(net, tok, p, max_new_tokens=8, temperature=1.2, num_return_sequences=3,
                            return_logprobs=True)
    rows = [tok(q, add_special_tokens=False).input_ids for q in p]
    width = max(len(r) for r in rows)
    ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
    att = (ids != tok.pad_token_id).long()
    torch.manual_seed(4)
    with torch.no_grad():
        out = net.generate(input_ids=ids, attention_mask=att, max_new_tokens=8, num_return_sequences=3,
                           pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, return_dict_in_generate=True,
                           output_logits=True, **sampling_kwargs(1.2, 1.0, top_k=0))
    assert torch.equal(shared.prompt_ids, ids.repeat_interleave(3, 0))
    n = shared.completion_ids.shape[1]
    real = shared.completion_mask.bool()
    assert torch.equal(shared.completion_ids[real], out.sequences[:, width:width + n][real])
    want = torch.log_softmax(torch.stack(out.logits, 1).float(), -1).gather(-1, out.sequences[:, width:, None]).squeeze(-1)
    torch.testing.assert_close(shared.logprobs[real], want[:, :n][real], atol=1e-5, rtol=0)


def test_streamed_text_is_the_greedy_completion(net, tok):
    p = prompt(tok, Q_PLAIN)
    enc = tok(p, return_tensors="pt", add_special_tokens=False)
    kw = dict(input_ids=enc.input_ids, attention_mask=enc.attention_mask, max_new_tokens=30,
              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **sampling_kwargs(0, 1))
    pieces = list(stream_text(net, tok, kw))
    assert len(pieces) > 1 and "".join(pieces) == A_PLAIN
    assert generate_batch(net, tok, [p], max_new_tokens=30, temperature=0).texts == [A_PLAIN]


def test_leaving_the_stream_early_stops_generation(net, tok):
    p = prompt(tok, Q_MD)
    enc = tok(p, return_tensors="pt", add_special_tokens=False)
    kw = dict(input_ids=enc.input_ids, attention_mask=enc.attention_mask, max_new_tokens=100000,
              pad_token_id=tok.pad_token_id, eos_token_id=None, **sampling_kwargs(0, 1))
    before = set(threading.enumerate())
    it = stream_text(net, tok, kw)
    next(it)
    worker = (set(threading.enumerate()) - before).pop()
    it.close()  # the consumer is gone: the worker must end long before 100000 tokens
    worker.join(timeout=30)
    assert not worker.is_alive(), "generate() kept running after the reader left"


def test_an_error_in_the_reader_stops_generation_at_once(net, tok):
    """A Stop on the page or a Ctrl-C arrives as an exception inside out.write: generate() must end
    then, not when the abandoned generator is collected."""
    from tiny_chat import Q_LONG
    from model.chat import Chat

    class Failing:
        def __init__(self):
            self.n = 0

        def write(self, s):
            self.n += 1
            if self.n == 2:
                raise RuntimeError("stopped by the reader")

        def flush(self):
            pass

    settings = argparse.Namespace(model_mode=1, history_cnt=0, max_new_tokens=30000, temperature=0, top_p=1,
                                  seed=0, stream=1)
    chat = Chat(net, tok, settings)
    kw = chat.generate_kwargs(chat.prompt_for(Q_LONG))  # the laugh that never ends
    before = set(threading.enumerate())
    with pytest.raises(RuntimeError) as e:
        chat.stream(kw, Failing())
    alive = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not alive, "generate() is still running after the reader failed"
    del e
