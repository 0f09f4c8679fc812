"""Reinforcement learning's own pieces, shared by its stages (trainer/stages/grpo.py):

    rollout.py   the rollout engine (a pluggable back end over model/generation.generate_batch) and the
                 per-token log-probs of completions, computed the one way the update computes them
    rewards.py   reward functions: MiniMind's rules, the gt reward, a reward model, the user's own
                 (TRL's signature), summed with weights and checked
    grpo.py      group-relative advantages and the policy losses (grpo, dr_grpo, dapo, cispo) with k3 KL
"""
