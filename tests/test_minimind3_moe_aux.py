"""The MiniMind-3 family's load-balancing loss is MiniMind-3's own (its model_minimind.py at HEAD: over the
batch, the one-hot of every routed slot, times the experts' mean probability, times num_experts and
router_aux_loss_coef), for top-1 (the family's) and for a top-k > 1 one asks for."""
import os
import sys

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from model import MiniMindConfig, MiniMindForCausalLM  # noqa: E402


def minimind3_aux(x_flat, gate, k, n_experts, coef):
    """MiniMind-3's MOEFeedForward aux loss, written from its code."""
    scores = F.softmax(gate(x_flat), dim=-1)
    _, topk_idx = torch.topk(scores, k=k, dim=-1, sorted=False)
    load = F.one_hot(topk_idx, n_experts).float().mean(0)
    return (load * scores.mean(0)).sum() * n_experts * coef


@pytest.mark.parametrize("k", [1, 2, 3])
def test_aux_loss_is_minimind3s(k):
    torch.manual_seed(k)
    net = MiniMindForCausalLM(MiniMindConfig(hidden_size=32, num_hidden_layers=1, model_family="minimind3",
                                             use_moe=True, num_experts_per_tok=k)).train()
    moe = net.model.layers[0].mlp
    seen = {}
    moe.register_forward_hook(lambda m, inputs, out: seen.update(x=inputs[0], aux=out[1]))
    out = net(torch.randint(3, 300, (3, 7)))
    x_flat = seen["x"].reshape(-1, 32)
    want = minimind3_aux(x_flat, moe.gate, k, 4, 5e-4)
    assert seen["aux"].item() == pytest.approx(want.item(), rel=1e-5)
    assert out.aux_loss.item() == pytest.approx(want.item(), rel=1e-5)
