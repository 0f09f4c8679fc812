"""What YaRN buys a model trained at a short length: perplexity at 1x, 2x, 4x and 8x that length.

MiniMind's README plots this ("rope_ppl"). The variants, on the same weights:
  plain          RoPE as trained
  yarn           YaRN from the trained length (original_max_position_embeddings = it), factor 8
  minimind_2510  MiniMind's fixed --inference_rope_scaling (16x from 2048), made for its 2048-token models

The text is held-out text the model did not train on, documents ([bos] text [eos]) packed into windows
of each length; the loss of every position of a window counts. scripts/bench_rope_ppl.py is the
command line.
"""
import json
import math
import os

import torch

from model.model_minimind import MINIMIND_YARN

MULTIPLES = (1, 2, 4, 8)


def variants(trained_len):
    return {"plain": None,
            "yarn": {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": trained_len,
                     "beta_fast": 32.0, "beta_slow": 1.0, "attention_factor": 1.0},
            "minimind_2510": dict(MINIMIND_YARN)}


def windows(tokenizer, texts, length, count):
    """`count` windows of `length` tokens: the documents one after another, wrapping round."""
    stream = []
    for t in texts:
        stream += [tokenizer.bos_token_id] + tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    need = length * count + 1
    stream = (stream * (need // max(len(stream), 1) + 1))[:need]
    return torch.tensor(stream[:length * count]).view(count, length)


def perplexity(model, ids):
    with torch.no_grad():
        logits = model(ids).logits[:, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    return math.exp(nll.item())


def with_rope(model, rope_parameters):
    """The same weights under other RoPE parameters (the frequencies are read on the first forward)."""
    from model import MiniMindConfig, MiniMindForCausalLM
    kw = {k: v for k, v in model.config.to_dict().items()
          if k not in ("architectures", "auto_map", "rope_parameters", "inference_rope_scaling", "model_type",
                       "transformers_version")}
    if rope_parameters:  # the context YaRN stretches to: what transformers expects beside its factor
        kw["max_position_embeddings"] = int(rope_parameters["original_max_position_embeddings"] * rope_parameters["factor"])
    cfg = MiniMindConfig(**kw, rope_parameters=rope_parameters)
    net = MiniMindForCausalLM(cfg).eval()
    net.load_state_dict(model.state_dict())
    return net


def run(model, tokenizer, texts, trained_len, count=4, log=print):
    """{"lengths": [...], "ppl": {variant: [ppl per length]}} for the multiples of trained_len."""
    lengths = [trained_len * m for m in MULTIPLES]
    out = {"trained_len": trained_len, "lengths": lengths, "ppl": {}}
    for name, rope in variants(trained_len).items():
        net = with_rope(model, rope)
        out["ppl"][name] = [round(perplexity(net, windows(tokenizer, texts, n, count)), 3) for n in lengths]
        log(f"  {name:14s} " + "  ".join(f"{n}: {p:8.3f}" for n, p in zip(lengths, out["ppl"][name])))
    return out


def table(result):
    n = result["trained_len"]
    rows = ["| variant | " + " | ".join(f"{L // n}× ({L})" for L in result["lengths"]) + " |",
            "|---|" + "---|" * len(result["lengths"])]
    for name, ppl in result["ppl"].items():
        rows.append(f"| {name} | " + " | ".join(f"{p:.2f}" for p in ppl) + " |")
    return "\n".join(rows)


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ppl in result["ppl"].items():
        ax.plot(result["lengths"], ppl, marker="o", label=name)
    ax.axvline(result["trained_len"], color="grey", linestyle=":", label="trained length")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("window length (tokens)")
    ax.set_ylabel("perplexity (held-out text)")
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save(result, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
