"""The models under test and how they train: MiniMind and its transformers Llama twin holding the same
weights, the losses the benchmarks compare (the trainer's plain one, the fused one of
trainer/fused_loss.py, transformers' labels= path), and one optimizer step in the trainer's order."""
import torch


# ----------------------------------------------------------------------------------------------
# Models

def minimind_config(hidden, layers):
    from model import MiniMindConfig
    heads = 8 if hidden >= 128 else 4
    return MiniMindConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          num_key_value_heads=2)


def build_pair(hidden, layers, device, seed=0):
    """(ours, Llama) with identical weights: Llama loads our state_dict strictly."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from model import MiniMindForCausalLM
    cfg = minimind_config(hidden, layers)
    torch.manual_seed(seed)
    ours = MiniMindForCausalLM(cfg)
    llama_cfg = LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=cfg.max_position_embeddings,
        rms_norm_eps=cfg.rms_norm_eps, rope_theta=cfg.rope_theta, tie_word_embeddings=True,
        attention_bias=False, mlp_bias=False, hidden_act="silu",
        bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id)
    llama = LlamaForCausalLM(llama_cfg)
    llama.load_state_dict(ours.state_dict(), strict=True)
    if llama.lm_head.weight.data_ptr() != llama.model.embed_tokens.weight.data_ptr():
        raise RuntimeError("Llama twin did not tie lm_head to the embedding")
    return ours.to(device), llama.to(device)



def autocast_ctx(device):
    from contextlib import nullcontext
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


# ----------------------------------------------------------------------------------------------
# Losses: the trainer's (plain) and the fused one from trainer/fused_loss.py

def plain_lm_loss(model, X, Y, M):
    from trainer.losses import masked_ce
    return masked_ce(model(X).logits, Y, M)


def fused_lm_loss(model, X, Y, M):
    from trainer.fused_loss import fused_masked_ce
    hidden, aux = model.model(X)  # final-norm hidden states; the LM head is applied in chunks
    return fused_masked_ce(hidden, model.lm_head.weight, Y, M) + aux


def labels_lm_loss(model, X, Y, M):
    """The transformers path, model(input_ids, labels=...): the model shifts the labels itself.
    It is what peft, TRL and the HF Trainer call, so it is timed for ours and Llama alike."""
    return model(X, labels=X).loss


class Trainee:
    """A model, its AdamW and a way to take one optimizer step on a batch (the trainer's order)."""

    def __init__(self, model, device, loss_fn):
        self.model, self.device, self.loss_fn = model, device, loss_fn
        self.model.train()
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(self, *batch):
        with autocast_ctx(self.device):
            loss = self.loss_fn(self.model, *batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()
