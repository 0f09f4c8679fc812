"""MiniMind's JSONL data sets (pretrain, SFT, DPO) over memory-mapped token caches."""
from .lm_dataset import (DataError, DPODataset, PackedPretrainDataset, PretrainDataset,
                         SFTDataset, dpo_collate, pad_collate)

__all__ = ["DataError", "PretrainDataset", "PackedPretrainDataset", "SFTDataset", "DPODataset",
           "pad_collate", "dpo_collate"]
