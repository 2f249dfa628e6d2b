"""Distributed training on CPU (torchrun, gloo): ranks agree, and DDP equals one process.

Two processes are launched with ``torch.distributed.run``. Rank r trains on every second sample
of each batch; gradients are averaged, batch-norm running statistics are synchronised at each
checkpoint (orpose.training.trainer.Trainer.sync_buffers).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import tiny_dataset_json

pytestmark = pytest.mark.slow
WORKER = Path(__file__).parent / "helpers" / "ddp_train.py"


def _run(config: Path, out: Path, ranks: int, *overrides: str) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if ranks == 1:
        cmd = [sys.executable, str(WORKER), str(config), str(out), *overrides]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}",
               "--standalone", str(WORKER), str(config), str(out), *overrides]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(ranks)]


def _max_difference(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel())


def test_rcnn_ranks_end_identical_with_batch_norm(tmp_path):
    """norm: bn: each rank's running statistics come from its own images; after training the
    two ranks hold identical parameters AND buffers."""
    data = tiny_dataset_json(tmp_path)
    config = tmp_path / "bn.yaml"
    config.write_text(yaml.safe_dump({
        "student": {"backbone": "resnet18_fpn", "norm": "bn", "head_convs": [32, 32],
                    "min_size": [160], "max_size": 224, "box_head_size": 64,
                    "box_batch_size_per_image": 32, "rpn_post_nms_top_n_train": 50,
                    "lifters": False},
        "data": {"train": [str(data)], "flip": False},
        "solver": {"iterations": 2, "batch_size": 2, "lr": 0.01, "warmup_iterations": 0,
                   "steps": [], "checkpoint_every": 2, "log_every": 1},
    }))  # fmt: skip
    rank0, rank1 = _run(config, tmp_path / "ddp", 2)
    buffers = [k for k in rank0 if "running_mean" in k or "running_var" in k]
    assert buffers, "the model should hold batch-norm buffers"
    assert _max_difference(rank0, rank1) == 0.0


def test_topdown_ddp_matches_one_process(shared, tmp_path):
    """No batch statistics (the top-down student has none), no native-size crops (their
    share per rank varies) and losses that are plain means over the crops: 2 ranks x 2 crops
    give the same weights as 1 process with 4 crops.

    SGD, not Adam: Adam's first steps move every weight by about +-lr whatever the gradient's
    size, so float rounding in a near-zero gradient would flip whole steps."""
    data = tiny_dataset_json(tmp_path)
    config = tmp_path / "td.yaml"
    config.write_text(yaml.safe_dump({
        "student": {"family": "picodet_tinypose", "lifters": False,
                    "loss_weights": {"loss_kp2d_hard": 0.0}},
        "data": {"train": [str(data)], "lowres": "all", "native_share": 0.0},
        "solver": {"iterations": 2, "batch_size": 4, "detector_batch_size": 0,
                   "optimizer": "sgd", "lr": 1e-5, "weight_decay": 0.0,
                   "warmup_iterations": 0, "steps": [], "checkpoint_every": 2, "log_every": 1},
    }))  # fmt: skip
    (single,) = _run(config, tmp_path / "one", 1)
    rank0, rank1 = _run(config, tmp_path / "two", 2)
    assert _max_difference(rank0, rank1) == 0.0
    assert _max_difference(single, rank0) < 1e-5  # measured 2.4e-7 (float rounding)
    from orpose.student.topdown import TopDownConfig, TopDownStudent

    start = TopDownStudent(TopDownConfig(lifters=False)).state_dict()
    assert _max_difference(single, start) > 1e-4, "training should have changed the weights"
