"""Training on a tiny synthetic mocap set: the error goes down, checkpoints round-trip, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orpose.errors import ModelError
from orpose.lifting import LifterConfig, load_lifter, save_lifter
from orpose.lifting.checkpoint import read_checkpoint
from orpose.lifting.evaluate import mocap_test_views, mpjpe, predict
from orpose.lifting.model import Lifter
from orpose.lifting.train import TrainConfig, _fit_statistics, train_lifter

# A standing person (world mm, Y up, facing +Z, left = +X) in COCO order.
TEMPLATE = np.array([
    [0, 1620, 90], [30, 1650, 75], [-30, 1650, 75], [70, 1630, 0], [-70, 1630, 0],
    [180, 1420, 0], [-180, 1420, 0], [200, 1130, 0], [-200, 1130, 0], [210, 880, 30],
    [-210, 880, 30], [100, 950, 0], [-100, 950, 0], [100, 500, 20], [-100, 500, 20],
    [100, 80, 0], [-100, 80, 0],
], dtype=np.float64)  # fmt: skip


def _rotate_z(points: np.ndarray, pivot: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    rel = points - pivot
    return pivot + np.stack([c * rel[..., 0] - s * rel[..., 1], s * rel[..., 0] + c * rel[..., 1],
                             rel[..., 2]], axis=-1)  # fmt: skip


def synthetic_people(n: int, seed: int) -> np.ndarray:
    """Poses whose arms swing up and out by random amounts: a learnable 2D-to-3D problem."""
    rng = np.random.default_rng(seed)
    out = np.repeat(TEMPLATE[None], n, axis=0)
    for i in range(n):
        for shoulder, chain, sign in ((5, [7, 9], 1.0), (6, [8, 10], -1.0)):
            angle = sign * rng.uniform(0.0, 2.5)
            out[i, chain] = _rotate_z(out[i, chain], out[i, shoulder], angle)
        out[i, :, 2] += rng.uniform(-150, 150) * (out[i, :, 1] > 1000)  # lean forward/back
    return out * rng.uniform(0.9, 1.1, size=(n, 1, 1))


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models train much faster on one thread, above all on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(**kw) -> TrainConfig:
    base = dict(epochs=6, batch_size=64, lr=2e-3, stats_samples=2000, val_samples=300,
                model=LifterConfig(hidden=128, dropout=0.1))  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_training_reduces_the_error(tmp_path):
    torch.manual_seed(0)
    cfg = _config()
    train, val = synthetic_people(768, seed=1), synthetic_people(200, seed=2)
    untrained = Lifter(cfg.model)
    _fit_statistics(untrained, torch.as_tensor(train, dtype=torch.float32), cfg)
    views = mocap_test_views(val, cfg.cameras, 300, seed=cfg.seed + 777)
    before = mpjpe(predict(untrained, views), views.target3d.double().numpy())
    result = train_lifter(cfg, tmp_path / "l.pt", train, val, progress=False)
    after = result.history[-1]["val_mpjpe_mm"]
    assert len(result.history) == cfg.epochs
    assert after < 0.6 * before, (before, after)
    assert result.history[-1]["train_loss_mm"] < result.history[0]["train_loss_mm"]


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    lifter = Lifter(hidden=32)
    lifter.fit_statistics(torch.rand(64, 17, 2) * 500, torch.ones(64, 17), torch.randn(64, 17, 3))
    path = save_lifter(lifter, tmp_path / "sub" / "lifter.pt", {"note": "test"}, {"epoch": 3})
    assert [p.name for p in path.parent.iterdir()] == ["lifter.pt"]  # no temporary file left
    loaded = load_lifter(path)
    assert not loaded.training and loaded.config == lifter.config
    kp, mask = torch.rand(10, 17, 2) * 500, (torch.rand(10, 17) > 0.3).float()
    torch.testing.assert_close(loaded(kp, mask), lifter.eval()(kp, mask), rtol=0, atol=0)
    payload = read_checkpoint(path)
    assert payload["config"] == {"note": "test"} and payload["extra"]["epoch"] == 3
    assert len(payload["extra"]["statistics"]["out_std"]) == 17


def test_loading_bad_checkpoints(tmp_path):
    # every problem with a checkpoint file is a ModelError naming it (orpose.safe_checkpoint)
    with pytest.raises(ModelError, match=r"missing\.pt: no such checkpoint"):
        load_lifter(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"junk\.pt"):
        load_lifter(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ModelError, match="not an orpose lifter"):
        load_lifter(other)


def test_resume_continues_at_the_next_epoch(tmp_path):
    cfg = _config(epochs=2, model=LifterConfig(hidden=32))
    train, val = synthetic_people(128, seed=3), synthetic_people(64, seed=4)
    out = tmp_path / "l.pt"
    first = train_lifter(cfg, out, train, val, progress=False)
    cfg.epochs = 3
    second = train_lifter(cfg, out, train, val, resume=True, progress=False)
    assert [h["epoch"] for h in second.history] == [1, 2, 3]
    assert second.history[:2] == first.history
    assert read_checkpoint(out)["extra"]["epoch"] == 2


def test_the_targets_hip_convention_is_kept_by_checkpoints_and_resume(tmp_path):
    from orpose.errors import UserError
    from orpose.lifting.cli import lift_train
    from orpose.lifting.mocap import H36M_TORSO_TO_THIGH

    assert TrainConfig().torso_to_thigh == H36M_TORSO_TO_THIGH
    # a checkpoint written before the convention existed trained on CMU's own hips
    assert TrainConfig.from_dict({}).torso_to_thigh == 0.0
    assert TrainConfig.from_dict(TrainConfig().to_dict()).torso_to_thigh == H36M_TORSO_TO_THIGH
    out = tmp_path / "l.pt"
    save_lifter(Lifter(hidden=32), out, TrainConfig().to_dict(), {"epoch": 0})
    with pytest.raises(UserError, match="cannot --resume with a different --torso-to-thigh"):
        lift_train(out, resume=True, torso_to_thigh=0.0, mocap=str(tmp_path))
