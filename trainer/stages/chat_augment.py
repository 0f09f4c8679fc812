"""MiniMind-3's SFT data processing (its dataset/lm_dataset.py: pre_processing_chat, post_processing_chat), over
an SFT data set's cached (X, Y, loss_mask) items (train_full_sft.py --model_family minimind3):

    add_system_ratio     a conversation without a system turn (and without tools) gets one of MiniMind's ten
                         system prompts in front, in this share of the samples (0.2: its default), never a
                         target; where it would pass max_length it is left out
    empty_think_ratio    a direct answer's empty think block `<think>\n\n</think>\n\n` is kept in this share of
                         the samples (0.2: its default) and cut out of the others, so the model answers both
                         after the block (the thinking-off prompt) and without it (reason_sft.py does the same
                         for the reasoning stage)

MiniMind draws anew at every read; here sample i's draws are fixed by (seed, i), so a resumed run sees the
same data.
"""
import random

import torch
from torch.utils.data import Dataset

from trainer.bpb import token_bytes_table
from trainer.stages.reason_sft import drop_positions, empty_think_tokens

# MiniMind-3's system prompts for pre_processing_chat, as its data processing has them
SYSTEM_PROMPTS = [
    "你是一个知识丰富的AI，尽力为用户提供准确的信息。",
    "你是minimind，一个小巧但有用的语言模型。",
    "你是一个专业的AI助手，请提供有价值的回答。",
    "你是minimind，请尽力帮助用户解决问题。",
    "你是一个可靠的AI，请给出准确的回答。",
    "You are a helpful AI assistant.",
    "You are minimind, a lightweight intelligent assistant.",
    "You are a friendly chatbot. Please answer the user's questions carefully.",
    "You are a knowledgeable AI. Try your best to provide accurate information.",
    "You are minimind, a small but useful language model.",
]
MINIMIND3_RATIOS = {"add_system_ratio": 0.2, "empty_think_ratio": 0.2}


class ChatAugment(Dataset):
    def __init__(self, ds, tokenizer, add_system_ratio=0.0, empty_think_ratio=None, seed=0, max_length=None):
        self.ds, self.seed, self.max_length = ds, int(seed), max_length
        self.add_system_ratio, self.empty_think_ratio = float(add_system_ratio), empty_think_ratio
        self.table = token_bytes_table(tokenizer)
        enc = lambda text: torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)  # noqa: E731
        self.systems = [enc(f"<|im_start|>system\n{p}<|im_end|>\n") for p in SYSTEM_PROMPTS]
        self.system_head = enc("<|im_start|>system").tolist()
        longest = max(len(s) for s in self.systems) if self.add_system_ratio > 0 else 0
        self.lengths = ds.lengths + longest  # an upper bound: only batching reads it

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y, m = self.ds[i]
        rng = random.Random(self.seed * 1_000_003 + int(i))
        if self.empty_think_ratio is not None and rng.random() > self.empty_think_ratio:
            spans = empty_think_tokens(y.numpy(), m.numpy(), self.table)
            if spans:
                x, y, m = drop_positions(x, y, m, spans)
        if self.add_system_ratio > 0 and rng.random() < self.add_system_ratio:
            system = self.systems[rng.randrange(len(self.systems))]
            if x[:len(self.system_head)].tolist() != self.system_head and \
                    (self.max_length is None or len(x) + 1 + len(system) <= self.max_length):
                ids = torch.cat([system, x, y[-1:]])
                mask = torch.cat([torch.zeros(len(system) + 1, dtype=m.dtype), m])
                x, y, m = ids[:-1], ids[1:], mask[1:]
        return x, y, m
