"""Run one training job (under torchrun or alone) and save this rank's final state.

usage: python ddp_train.py CONFIG OUT_DIR [--set KEY=VALUE ...]
Writes OUT_DIR/rank<R>.pt with the model's state dict as trained on rank R.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from orpose.training.cli import trainer_class
from orpose.training.config import load_train_config


def main() -> None:
    config_path, out = sys.argv[1], Path(sys.argv[2])
    overrides = [a for a in sys.argv[3:] if a != "--set"]
    torch.set_num_threads(1)
    config = load_train_config(config_path, overrides)
    trainer = trainer_class(config)(config, out, "cpu")
    trainer.run()
    rank = int(os.environ.get("RANK", "0"))
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    torch.save(state, out / f"rank{rank}.pt")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
