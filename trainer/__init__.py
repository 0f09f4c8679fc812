"""The training engine: one loop for every stage, its infrastructure, and the stages themselves.

    loop.py          Trainer.fit: DDP, LR schedule, accumulation, checkpoints, exact resume,
                     validation, logging, wandb, tqdm (the only training loop there is)
    stages/          one module per objective: a Stage gives the loss of a batch (and its metrics,
                     what it prepares, what its weights file holds) and may make the step's batches
                     itself (rollout: an RL stage samples them); __init__ has the protocol,
                     LMStage (pretrain, SFT) beside dpo, distill, reason_sft, lora, grpo
    rl/              what the RL stages share: rollout.py (sampling with the log-probs, over
                     model/generation.py), rewards.py (TRL-signature reward functions), grpo.py
                     (group advantages and the GRPO/CISPO/Dr. GRPO/DAPO losses)
    losses.py  fused_loss.py  bpb.py
                     the losses and metrics the stages share
    args.py  checkpoint.py  errors.py  elastic.py  faults.py  sampler.py  schedule.py
                     flags, weight files, one-line errors (and how they leave torchrun), faults and
                     interrupts, samplers, the LR schedule

Each train_*.py is its flags and its Stage over Trainer. The reinforcement-learning stages make
their batches online through the same loop (Stage.rollout, Stage.num_iterations).
"""
