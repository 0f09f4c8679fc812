"""MiniMind's data sets (pretrain, SFT, DPO) on 🤗 datasets: memory-mapped Arrow caches, and streaming."""
from .lm_dataset import (DPODataset, PackedPretrainDataset, PretrainDataset, SFTDataset, dpo_collate,
                         pad_collate)
from .sources import DataError
from .streaming import StreamingPretrainDataset

__all__ = ["DataError", "PretrainDataset", "PackedPretrainDataset", "SFTDataset", "DPODataset",
           "StreamingPretrainDataset", "pad_collate", "dpo_collate"]
