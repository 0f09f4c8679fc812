"""The demo's machinery: the invented world and its corpus, and the one-command demo run.

Started by scripts/make_demo_data.py (writes dataset/demo) and scripts/demo.py (trains and scores).

The corpus:
  world.py        the invented world: its countries and characters, their facts, the held-out choice
  world.md        the world as tables: its words, attributes, sentences and 2-hop questions (read by world.py)
  corpus.py       the corpus's files, written from the world (pretrain/sft/dpo/heldout, README.md, lm_eval)
  lora_sets.py    the two LoRA sets (identity, domain)
  reason_sets.py  the 2-hop reasoning sets (R1 format)
  recipe.md       the measurements behind the recipe, copied into dataset/demo/README.md

The run:
  run.py          the flags and presets, and the pipeline from the first stage to the summary
  stages.py       the training stages: their command lines, running one, reusing an earlier run's
  logs.py         the training scripts' log lines: losses, metrics, DPO's reward accuracy
  scoring.py      asking a checkpoint the held-out questions and scoring the answers
  plot.py         the loss-curve PNG
  lora_stage.py   the LoRA adapters on the DPO model, scored with and without
  distill_stage.py  --distill: a student half the width, distilled and by plain SFT
  common.py       the repository root, the demo's one-line error, printing paths and times
  figures.py      the figures README quotes: docs/demo_figures.json from runs over several seeds
"""
