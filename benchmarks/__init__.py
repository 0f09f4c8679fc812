"""Benchmarks of this project: its speed and memory against transformers' Llama and MiniMind's own
batching (one module per section of scripts/bench.py), and the data layer's memory against the size of
the file it reads (scripts/bench_data_memory.py), and what YaRN buys past the trained length
(scripts/bench_rope_ppl.py). The scripts are their command lines.

    harness       timing (variants interleaved, paired ratios), summaries, peak memory, the machine
    models        MiniMind and its Llama twin with the same weights, the losses compared, one AdamW step
    mfu           section mfu: the matmul peak, FLOPs per token, model FLOP utilisation
    train_step    section train: one training step, ours vs Llama (plain, fused loss, labels=, compile)
    chat_data     generated chat-like SFT/DPO JSONL with a stated length mix, length statistics
    batching      padding and length grouping: MiniMind's pad-to-max vs the project's sampler, epochs
    sft_epoch     section sft: an SFT epoch's effective tokens/s
    dpo_epoch     section dpo: a DPO epoch's effective tokens/s (and the DPO pieces dpo_step shares)
    dpo_step      section dpo_step: a DPO step, reference log-probs on the fly vs cached
    distill_step  section distill: a distillation step's time and peak memory, full logits vs chunked
    generation    section gen: greedy generate() with the KV cache, ours vs Llama
    report        the targets and the printed table
    suite         the sections' sizes and the whole run of scripts/bench.py
    data_memory   the data layer's memory: generated file, one subprocess per measurement
    rope_ppl      perplexity at 1x-8x a model's trained length, plain RoPE against YaRN (scripts/bench_rope_ppl.py)
"""
