"""The benchmarks' verdicts and printout: the targets each measured ratio is held to, and the table
scripts/bench.py prints from the results."""


def targets(results):
    rows = []

    def add(what, goal, value, ok):
        rows.append({"target": what, "goal": goal, "measured": value, "met": bool(ok)})
    for res in results.get("train", []):
        for key, r in res["ratios"].items():
            if key.endswith(("/llama", "/llama:labels")):
                add(f"train step {res['config']}: {key}", ">= 1.0", r["median"], r["median"] >= 1.0)
    for sec in ("sft", "dpo"):
        if sec in results:
            r = results[sec]["ratios"]["project/minimind_batching"]
            add(f"{sec} epoch effective tokens/s: project/minimind_batching", ">= 2.0", r["median"],
                r["median"] >= 2.0)
    if "dpo_step" in results:
        r = results["dpo_step"]["ratios"]["cached_speedup"]
        add("dpo step: on-the-fly time / cached time", "> 1.0 (~1.3x expected: one forward of 3 saved)",
            r["median"], r["median"] > 1.0)
    if "distill" in results:
        r = results["distill"]["ratios"]
        add("distill step time: fused/plain", "<= 1.0", r["time fused/plain"]["median"],
            r["time fused/plain"]["median"] <= 1.0)
        add("distill step peak memory: fused/plain", "<= 0.6", r["peak memory fused/plain"]["median"],
            r["peak memory fused/plain"]["median"] <= 0.6)
    if "gen" in results:
        r = results["gen"]["ratios"]["minimind/llama"]
        add("generation tokens/s: minimind/llama", ">= 1.0", r["median"], r["median"] >= 1.0)
    return rows


def _fmt_summary(s, scale=1.0, fmt="{:.1f}"):
    return f"{fmt.format(s['median'] * scale)} ({fmt.format(s['min'] * scale)}-{fmt.format(s['max'] * scale)})"


def _ratio_lines(res):
    return [f"  ratio {k:34s} {_fmt_summary(r, fmt='{:.2f}')}x" for k, r in res["ratios"].items()]


def table(results):
    lines = []
    meta = results["meta"]
    lines.append(f"device {meta['device']} | {meta['dtype']} | torch {meta['torch']} | transformers "
                 f"{meta['transformers']} | threads {meta['threads']} | load {meta['loadavg_start']} -> "
                 f"{meta['loadavg_end']} | reps {meta['reps']} (median (min-max))")
    if "mfu" in results:
        m = results["mfu"]
        lines.append(f"matmul peak: {m['dtype']} {m['n']}^3 = {m['peak_flops_per_s'] / 1e9:.1f} GFLOP/s (best of "
                     f"{len(m['times_s'])} samples; median {m['flops_per_s']['median'] / 1e9:.1f})")
    for res in results.get("train", []):
        lines.append(f"\n[train step] {res['config']} {res['hidden_size']}x{res['num_hidden_layers']} "
                     f"({res['params'] / 1e6:.3f}M), batch {res['batch']}x{res['seq_len']}, {res['dtype']}")
        lines.append(f"  {'variant':24s} {'tokens/s':>26s} {'MFU % (vs best peak)':>22s} "
                     f"{'MFU % same round':>18s} {'peak MB':>9s}")
        for v, r in res["variants"].items():
            mfu = _fmt_summary(r["mfu"], 100) if "mfu" in r else "-"
            mfu2 = _fmt_summary(r["mfu_same_round"], 100) if "mfu_same_round" in r else "-"
            extra = f"  (first step incl. compile {r['first_step_incl_compile_s']:.0f}s)" \
                if "first_step_incl_compile_s" in r else ""
            lines.append(f"  {v:24s} {_fmt_summary(r['tokens_per_s']):>26s} {mfu:>22s} {mfu2:>18s} "
                         f"{r['peak_mem_mb']:9.0f}{extra}")
        lines += _ratio_lines(res)
    for sec, label in (("sft", "SFT epoch"), ("dpo", "DPO epoch")):
        if sec not in results:
            continue
        res = results[sec]
        n = res.get("samples", res.get("pairs"))
        mix = res["length_mix"]
        st = mix.get("tokens", mix.get("tokens_longer_side"))
        lines.append(f"\n[{label}] {n} items, max_seq_len {res['max_seq_len']}, model {res['model']} "
                     f"{res['hidden_size']}x{res['num_hidden_layers']}; lengths mean {st['mean']:.0f} median "
                     f"{st['median']:.0f} p90 {st['p90']:.0f} max {st['max']}")
        sc = res["padding_at_scale"]
        lines.append(f"  at scale ({sc['samples']} items of the same mix, counted): padding "
                     f"{100 * sc['minimind_pad_fraction']:.1f}% (MiniMind) vs {100 * sc['project_pad_fraction']:.1f}% "
                     f"(project), {sc['padded_token_ratio']:.2f}x fewer tokens computed")
        lines.append(f"  {'variant':24s} {'effective tokens/s':>26s} {'pad %':>7s} {'peak MB':>9s}")
        for v, r in res["variants"].items():
            lines.append(f"  {v:24s} {_fmt_summary(r['effective_tokens_per_s']):>26s} "
                         f"{100 * r['pad_fraction']:7.1f} {r['peak_mem_mb']:9.0f}")
        lines += _ratio_lines(res)
    if "dpo_step" in results:
        res = results["dpo_step"]
        lines.append(f"\n[DPO step] {res['batches']} length-grouped batches of {res['batch_size_pairs']} pairs")
        for v, r in res["variants"].items():
            lines.append(f"  {v:24s} {_fmt_summary(r['step_s'], 1e3, '{:.0f}'):>26s} ms/step "
                         f"{r['peak_mem_mb']:9.0f} MB")
        r = res["ratios"]["cached_speedup"]
        lines.append(f"  ratio on-the-fly/cached time            {_fmt_summary(r, fmt='{:.2f}')}x")
    if "distill" in results:
        res = results["distill"]
        lines.append(f"\n[distill step] student {res['student'][0]}x{res['student'][1]}, teacher {res['teacher'][0]}x"
                     f"{res['teacher'][1]}, batch {res['batch']}x{res['seq_len']}, {res['dtype']}")
        for v, r in res["variants"].items():
            lines.append(f"  {v:24s} {_fmt_summary(r['step_s'], 1e3, '{:.0f}'):>26s} ms/step "
                         f"{_fmt_summary(r['peak_mem_mb'], fmt='{:.0f}'):>20s} MB")
        lines.append(f"  {'floor (SFT step alone)':24s} {'':>26s}         "
                     f"{_fmt_summary(res['floor_peak_mem_mb'], fmt='{:.0f}'):>20s} MB")
        lines += _ratio_lines(res)
    if "gen" in results:
        res = results["gen"]
        lines.append(f"\n[generate] {res['config']} {res['hidden_size']}x{res['num_hidden_layers']}, prompt "
                     f"{res['prompt_tokens']}, {res['new_tokens']} new tokens, greedy, KV cache; "
                     f"same tokens: {res['same_tokens']}")
        for v, r in res["variants"].items():
            lines.append(f"  {v:24s} {_fmt_summary(r['tokens_per_s']):>26s} tokens/s")
        r = res["ratios"]["minimind/llama"]
        lines.append(f"  ratio minimind/llama                    {_fmt_summary(r, fmt='{:.2f}')}x")
    if results.get("targets"):
        lines.append("\n[targets]")
        for t in results["targets"]:
            lines.append(f"  {'MET    ' if t['met'] else 'NOT MET'} {t['target']}: {t['measured']:.2f} "
                         f"(goal {t['goal']})")
    return "\n".join(lines)
