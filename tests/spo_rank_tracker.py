"""train_spo.py under torchrun, each rank writing its value trackers to $SPO_TEST_TRACKER.{rank} after every
rollout's updates (tests/test_spo.py compares rank 1's with rank 0's resume file)."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train_spo  # noqa: E402
from trainer.errors import run_main  # noqa: E402
from trainer.stages import spo  # noqa: E402

_after = spo.SPOStage.after_updates


def after_updates(self, trainer, model):
    _after(self, trainer, model)
    torch.save(self.tracker.state_dict(), f"{os.environ['SPO_TEST_TRACKER']}.{trainer.rank}")


spo.SPOStage.after_updates = after_updates

if __name__ == "__main__":
    run_main(train_spo.main)
