"""Agentic RL (train_agent.py): GRPO over multi-turn rollouts in which the model calls tools.

GRPOStage with one difference: a rollout is a trajectory (trainer/rl/agent.multi_turn_rollout), up to
--max_turns generations with the tool results between them, batched across the step's trajectories. The
update trains on the tokens the model generated, never on the tool results (the Rollout's loss_mask);
the rewards see each trajectory's turns, its calls and whether it was left unfinished (besides the data's
fields: gt). Validation runs the same loop greedily. Logged besides GRPO's metrics: tools/call_frequency
(calls per trajectory), tools/failure_frequency (the share of calls whose result is an error),
group_reward_std (MiniMind's name for the mean std of a prompt's rewards) and rollout/prefix_unstable
(trajectories whose re-rendered conversation tokenizes differently from the ids the policy saw).
"""
import torch

from trainer.rl.agent import multi_turn_rollout
from trainer.rl.grpo import _nanstd
from trainer.stages.grpo import GRPOStage


class AgentStage(GRPOStage):
    name = "agent"
    title = "Agentic RL"

    def __init__(self, args, reward_funcs, reward_weights=None, registry=None):
        super().__init__(args, reward_funcs, reward_weights)
        self.registry = registry
        self._trajectories = {}

    def fingerprint(self):
        a = self.args
        out = super().fingerprint()
        out.update({"max_turns": a.max_turns, "max_total_len": a.max_total_len, "thinking_ratio": a.thinking_ratio,
                    "tools": a.tools})
        return out

    def _with_thinking(self, items, step):
        return items  # each trajectory draws its own (--thinking_ratio), as MiniMind's agent rollout

    def _reward_texts(self, prompts, texts):
        return texts  # MiniMind's agent reward reads the generated text as it came

    def _rollout(self, items, n, temperature, top_p):
        a = self.args
        roll, trajs = multi_turn_rollout(self.engine, self.tokenizer, items, n, self.registry, a.max_turns, a.max_gen_len,
                                         temperature, top_p, max_total_len=a.max_total_len,
                                         thinking_ratio=a.thinking_ratio, max_prompt_len=a.max_seq_len)
        self._trajectories[id(roll)] = trajs
        fields = [{**it["fields"], "turns": t.turns, "unfinished": t.unfinished, "calls": t.calls, "tools": t.tools}
                  for it, t in zip([it for it in items for _ in range(n)], trajs)]
        return roll, fields

    def eval_sums(self, model, items):
        sums = super().eval_sums(model, items)
        self._trajectories.clear()
        return sums

    def _rollout_metrics(self, roll, per_func, rewards, adv, zero_std):
        m = super()._rollout_metrics(roll, per_func, rewards, adv, zero_std)
        trajs = self._trajectories.pop(id(roll))
        dev = self.trainer.device
        calls = torch.tensor([len(t.calls) for t in trajs], dtype=torch.float64)
        failed = [float(c.failed) for t in trajs for c in t.calls if c.result is not None]
        m["tools/call_frequency"] = calls.to(dev)
        # every rank logs the same keys (an empty tensor adds nothing to the mean)
        m["tools/failure_frequency"] = torch.tensor(failed, dtype=torch.float64, device=dev)
        m["group_reward_std"] = torch.nan_to_num(_nanstd(rewards.view(-1, self.G), dim=1), nan=0.0).to(dev, torch.float64)
        m["rollout/prefix_unstable"] = torch.tensor([float(not t.prefix_stable) for t in trajs], dtype=torch.float64,
                                                    device=dev)
        m["rollout/turns"] = torch.tensor([float(len(t.turns)) for t in trajs], dtype=torch.float64, device=dev)
        return m
