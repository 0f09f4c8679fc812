"""Reinforcement learning's own pieces, shared by its stages (trainer/stages/grpo.py, ppo.py, spo.py, agent.py):

    rollout.py   the rollout engine (a pluggable back end over model/generation.generate_batch) and the
                 per-token log-probs of completions, computed the one way the update computes them
    rewards.py   reward functions: MiniMind's rules, the gt reward, the agent reward, a reward model, the
                 user's own (TRL's signature), summed with weights and checked
    grpo.py      group-relative advantages and the policy losses (grpo, dr_grpo, dapo, cispo) with k3 KL
    ppo.py       the actor-critic module, GAE, whitening, PPO's clipped policy and value losses
    spo.py       SPO's per-prompt value trackers and batch-normalised advantages
    agent.py     multi-turn rollouts in which the model calls tools (train_agent.py)
    online.py    the rollout and reward flags of the RL scripts, the rewards and prompt sets made from them
"""
