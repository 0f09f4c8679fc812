"""train_lora.py's stage: SFT's loss on a LoRA adapter alone (peft), saved in MiniMind2's LoRA format.

The adapters themselves (where they go, the file format, applying and merging) are model/lora.py's.
"""
import os

import torch

from model.lora import lora_state_dict
from trainer.checkpoint import unwrap
from trainer.errors import UserError
from trainer.stages import LMStage


def _file_id(path):
    try:
        return f"{os.path.abspath(path)} ({os.path.getsize(path)} bytes)"
    except OSError:
        return os.path.abspath(path)


class LoRAStage(LMStage):
    """SFT's loss on the adapter only: writes the adapter (MiniMind's format), resumes the adapter + optimizer."""

    def __init__(self, path, rank, alpha, targets, base_path):
        super().__init__("lora", "Lora-SFT")
        self.path, self.rank, self.alpha, self.targets, self.base_path = path, rank, alpha, targets, base_path

    def fingerprint(self):
        return {"lora_rank": self.rank, "lora_alpha": self.alpha, "lora_targets": self.targets,
                "from_weight": _file_id(self.base_path) if self.base_path else None}

    def weights_path(self, args):
        return self.path

    def weights_state(self, model):
        return lora_state_dict(model)

    def model_state(self, model):
        return {k: p.detach().clone() for k, p in unwrap(model).named_parameters() if p.requires_grad}

    def load_model_state(self, model, state):
        own = {k: p for k, p in unwrap(model).named_parameters() if p.requires_grad}
        if set(own) != set(state):
            raise UserError(f"{self.path[:-4]}_resume.pth: holds other adapter tensors than this run trains; "
                            "delete it or run without --from_resume 1")
        with torch.no_grad():
            for k, p in own.items():
                p.copy_(state[k])
