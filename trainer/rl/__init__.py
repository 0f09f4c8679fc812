"""Reinforcement learning's own pieces, shared by its stages (trainer/stages/grpo.py, ppo.py):

    rollout.py   the rollout engine (a pluggable back end over model/generation.generate_batch) and the
                 per-token log-probs of completions, computed the one way the update computes them
    rewards.py   reward functions: MiniMind's rules, the gt reward, a reward model, the user's own
                 (TRL's signature), summed with weights and checked
    grpo.py      group-relative advantages and the policy losses (grpo, dr_grpo, dapo, cispo) with k3 KL
    ppo.py       the actor-critic module, GAE, whitening, PPO's clipped policy and value losses
    online.py    the rollout and reward flags of train_grpo.py and train_ppo.py, the rewards made from them
"""
