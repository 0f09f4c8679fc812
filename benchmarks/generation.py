"""Section gen: greedy generate() with the KV cache, ours vs Llama, same weights: new tokens/s (and
whether both produced the same tokens)."""
import torch

from benchmarks.harness import interleaved, ratio, throughput
from benchmarks.models import build_pair


def bench_gen(S, device, args, log):
    name, hidden, layers = S["gen_config"]
    ours, llama = build_pair(hidden, layers, device)
    ours.eval(), llama.eval()
    if device.type == "cuda":
        ours.to(torch.bfloat16), llama.to(torch.bfloat16)
    P, N = S["gen_prompt"], S["gen_new"]
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(3, ours.config.vocab_size, (1, P), generator=g).to(device)
    mask = torch.ones_like(ids)
    outs = {}
    kw = dict(max_new_tokens=N, min_new_tokens=N, do_sample=False, eos_token_id=None, pad_token_id=0,
              use_cache=True)

    def gen(model, key):
        def run():
            with torch.no_grad():
                outs[key] = model.generate(ids, attention_mask=mask, **kw)
        return run
    log(f"[gen] {name} ({hidden} x {layers}), prompt {P}, {N} new tokens, greedy, batch 1")
    times = interleaved({"minimind": gen(ours, "minimind"), "llama": gen(llama, "llama")}, S["reps"], device,
                        log=log)
    new = {k: int(v.shape[1] - P) for k, v in outs.items()}
    res = {"config": name, "hidden_size": hidden, "num_hidden_layers": layers, "prompt_tokens": P,
           "new_tokens": N, "dtype": "bfloat16" if device.type == "cuda" else "float32",
           "same_tokens": bool(torch.equal(outs["minimind"], outs["llama"])), "variants": {}}
    for v in times:
        res["variants"][v] = {"times_s": times[v], "new_tokens": new[v],
                              "tokens_per_s": throughput(new[v], times[v])}
    res["ratios"] = {"minimind/llama": ratio(res["variants"]["minimind"]["tokens_per_s"]["per_rep"],
                                             res["variants"]["llama"]["tokens_per_s"]["per_rep"])}
    return res
