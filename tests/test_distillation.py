"""The CPU student's losses on tiny hand-computed cases, its training samples' geometry, and one
real training step."""

from __future__ import annotations

import math
import random

import cv2
import numpy as np
import pytest
import torch
import yaml

from orpose.heatmaps import gaussian_heatmaps
from orpose.student.keypoint_head import heatmap_loss
from orpose.student.picodet import distribution_focal_loss, quality_focal_loss
from orpose.teacher.geometry import crop_for_box
from orpose.training.distillation_data import crop_matrix, transform_points


def test_gaussian_targets():
    maps = gaussian_heatmaps(torch.tensor([[[2.0, 1.0]]]), torch.tensor([[0.5]]), (4, 5), 2.0)
    assert maps.shape == (1, 1, 4, 5)
    assert maps[0, 0, 1, 2] == pytest.approx(0.5)
    assert maps[0, 0, 1, 3] == pytest.approx(0.5 * math.exp(-1 / 8))
    assert maps[0, 0, 3, 4] == pytest.approx(0.5 * math.exp(-8 / 8))


def test_heatmap_loss_by_hand():
    predicted = torch.tensor([[[[1.0, 0.0]], [[0.5, 0.5]]]])  # (1, 2, 1, 2)
    target = torch.zeros_like(predicted)
    # per map: 1 + 0 = 1, and 0.25 + 0.25 = 0.5
    assert heatmap_loss(predicted, target).item() == pytest.approx(0.75)
    weight = torch.tensor([[0.0, 2.0]])
    assert heatmap_loss(predicted, target, weight).item() == pytest.approx(0.5)
    assert heatmap_loss(predicted, target, torch.zeros(1, 2)).item() == 0.0


def test_distribution_focal_loss_by_hand():
    logits = torch.zeros(2, 8)  # uniform over 8 bins
    loss = distribution_focal_loss(logits, torch.tensor([2.5, 3.0]))
    assert torch.allclose(loss, torch.full((2,), math.log(8.0)))
    peaked = torch.full((1, 8), -20.0)
    peaked[0, 3] = 20.0
    assert distribution_focal_loss(peaked, torch.tensor([3.0])).item() < 1e-6


def test_quality_focal_loss_by_hand():
    p = torch.tensor([0.2, 0.9])
    t = torch.tensor([0.2, 0.5])
    loss = quality_focal_loss(p.log(), (1 - p).log(), p, t).item()
    bce = -(0.5 * math.log(0.9) + 0.5 * math.log(0.1))
    assert loss == pytest.approx(bce * 0.4**2)  # the first cell is already right: weight 0


def test_unjittered_training_crop_is_the_teachers_crop():
    box = np.array([30.0, 40.0, 130.0, 300.0])
    ours = crop_matrix(box, (192, 256), 1.25)
    theirs = crop_for_box(box, (192, 256), 1.25).matrix()
    assert np.allclose(ours, theirs)
    mirrored = crop_matrix(box, (192, 256), 1.25, flip=True)
    point = np.array([[50.0, 80.0]])
    u = transform_points(point, ours)[0, 0]
    assert transform_points(point, mirrored)[0, 0] == pytest.approx(191.0 - u)


@pytest.mark.slow
def test_training_steps_on_a_real_image_lower_the_loss(shared, tmp_path):
    """The teacher labels one real unlabelled image; three steps of the student on that batch
    lower its loss on the same batch (same crops, same targets)."""
    from orpose.data.coco import write_json_atomic
    from orpose.data.sources import read_image_rgb
    from orpose.teacher.config import PRESETS
    from orpose.teacher.teacher import Teacher
    from orpose.training.config import load_train_config
    from orpose.training.trainer import Trainer

    folder = shared / "data" / "coco_person_unlabeled300" / "images"
    image_path = sorted(folder.iterdir())[0]
    image = read_image_rgb(image_path)
    people = Teacher.from_config(PRESETS["single"], shared / "models", threads=2).label(image)
    assert people, "the teacher should find people in this image"
    annotations = []
    for i, p in enumerate(people):
        x1, y1, x2, y2 = (float(v) for v in p.box)
        hard = p.keypoints.copy()
        hard[:, 2] = (hard[:, 2] > 0.5) * 2.0
        annotations.append({"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": p.score,
                            "keypoints": hard.ravel().tolist(),
                            "keypoints_soft": p.keypoints.ravel().tolist()})  # fmt: skip
    h, w = image.shape[:2]
    labels = write_json_atomic(tmp_path / "labels.json", {
        "info": {"orpose": {"kind": "pseudo_labels"}},  # as orpose label marks its files
        "images": [{"id": 1, "file_name": str(image_path), "width": w, "height": h}],
        "annotations": annotations,
    })  # fmt: skip
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump({
        "student": {"family": "picodet_tinypose", "lifters": False},
        "data": {"train": [str(labels)], "lowres": "all", "native_share": 1.0},
        "solver": {"iterations": 1, "batch_size": 4, "detector_batch_size": 1,
                   "optimizer": "adamw", "lr": 2e-4, "weight_decay": 0.0,
                   "warmup_iterations": 0},
    }))  # fmt: skip
    trainer = Trainer(load_train_config(config_path), tmp_path / "out", "cpu")
    model = trainer.build_model()
    optimizer, _ = trainer.build_optimizer(model)
    batch = next(iter(trainer.make_loader(0)))
    # native crops (of the samples degraded >= 4x) go through the native path's own head
    assert len(batch["people_native"]["native_crop"]) > 0
    seen = {"head": [], "native_head": []}
    hooks = [getattr(model, name).register_forward_hook(
                 lambda m, args, out, name=name: seen[name].append(tuple(args[0].shape[-2:])))
             for name in seen]  # fmt: skip
    trainer.strategy.losses(model, batch)
    for hook in hooks:
        hook.remove()
    assert seen == {"head": [(256, 192)], "native_head": [(128, 96)]}
    # crop_to_lift takes a crop's pixels back to the lifters' image pixels, mirror included
    people = batch["people"]
    a = people["crop_to_lift"].double()
    back = people["soft"][..., :2].double() @ a[:, :, :2].transpose(1, 2) + a[:, None, :, 2]
    torch.testing.assert_close(back, people["soft_image"][..., :2].double(), atol=1e-3, rtol=0)
    # lift_input "own": the student's decoded keypoints reach the lifters the same way (here
    # heatmaps drawn at the label's crop points, decoded back to within a pixel of its image)
    cells = people["soft"][..., :2] / model.head.stride
    size = (256 // model.head.stride, 192 // model.head.stride)
    drawn = gaussian_heatmaps(cells, torch.ones(cells.shape[:2]), size, 2.0)
    own_soft, own_hard = model.own_lift_input(drawn, drawn, people["crop_to_lift"])
    inside = (people["soft"][..., 2] > 0.3) & (cells[..., 0] > 2) & (cells[..., 1] > 2)
    inside &= (cells[..., 0] < size[1] - 3) & (cells[..., 1] < size[0] - 3)
    assert inside.sum() > 10
    err = (own_soft[..., :2] - people["soft_image"][..., :2]).norm(dim=-1)[inside]
    assert float(err.max()) < 1.5, err
    torch.testing.assert_close(own_hard, own_soft)
    assert bool((own_soft[..., 2] == 1).all())  # every joint given, as at inference

    def total() -> float:
        with torch.no_grad():
            return float(sum(trainer.strategy.losses(model, batch).values()))

    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    before = total()
    for _ in range(3):
        trainer.train_step(model, optimizer, batch, amp=False)
    assert total() < before
    # the full-resolution detector takes no part in training; at its end it is set half-way
    # (full_res_detector_share 0.5) from its start to the trained detector
    from orpose.student.registry import settle_weights

    assert trainer.keeps_start_state() and model.config.full_res_detector_share == 0.5
    assert not any(p.requires_grad for p in model.full_res_detector.parameters())
    full = {f"full_res_detector.{k}": v for k, v in model.full_res_detector.state_dict().items()}
    assert all(torch.equal(v, start[k]) for k, v in full.items())
    trained = {k: v.clone() for k, v in model.detector.state_dict().items()}
    assert any(not torch.equal(v, start[f"detector.{k}"]) for k, v in trained.items())
    settle_weights(model, start)
    for key, value in model.full_res_detector.state_dict().items():
        if not value.is_floating_point():  # shapes and other constants of the imported graph
            assert torch.equal(value, trained[key]), key
            continue
        expected = 0.5 * trained[key] + 0.5 * start[f"full_res_detector.{key}"]
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-6, msg=key)
    # a whole run: last.pt is marked settled and its snapshot (raw weights, no final mix here)
    # settled alike; resuming the finished run leaves last.pt as it is (journals check its stamp)
    from orpose.checkpoints import read_checkpoint
    from orpose.training.trainer import SETTLED_KEY

    run = load_train_config(config_path, ["solver.snapshot_every=1"])
    last = Trainer(run, tmp_path / "run", "cpu").run()
    saved = read_checkpoint(last)
    assert saved[SETTLED_KEY] is True
    snap = read_checkpoint(tmp_path / "run" / "snapshots" / "iter_000001.pt")["model"]
    start_full = {k: v for k, v in start.items() if k.startswith("full_res_detector.")}
    moved = 0
    for key in start_full:
        torch.testing.assert_close(snap[key], saved["model"][key], rtol=0, atol=0, msg=key)
        moved += int(not torch.equal(saved["model"][key], start_full[key]))
    assert moved > 0  # set from the trained detector, not left at its start
    stamp = last.stat().st_mtime_ns
    # the same run, resumed with nothing left to train
    Trainer(load_train_config(config_path, ["solver.snapshot_every=1"]), tmp_path / "run",
            "cpu").run(resume=True)  # fmt: skip
    assert last.stat().st_mtime_ns == stamp


class _OneImage:
    """A pseudo-label set of one image and one person, as DistillationData reads it."""

    def __init__(self):
        self.images = [{"id": 1, "file_name": "x.png", "width": 640, "height": 480}]

    def annotations_of(self, image_id: int) -> list[dict]:
        return [{"bbox": [250.0, 120.0, 100.0, 240.0], "keypoints": [0.0] * 51}]


def test_native_crop_is_the_full_crop_at_half_size():
    """The native path's training crop of the small image: its pixel u' must see the image point
    that full crop pixel 2 u' sees, its keypoints must be the full crop's halved, and the
    teacher's heatmaps must be cut to every second cell. A linear image makes "sees" exact."""
    from orpose.data.lowres import LowResSchedule
    from orpose.training.distillation_data import Augmentation, DistillationData, collate

    crop, native_crop = (192, 256), (96, 128)
    data = DistillationData([_OneImage()], LowResSchedule(fixed=8.0), None, crop, (320, 320),
                            augmentation=Augmentation(native_share=1.0),
                            native_sizes=((160, 160), native_crop))  # fmt: skip
    # a linear image, steep over a narrow person (crop region x 275-365, y 138-258; the clip
    # bounds fall on 8-pixel block edges), so that a quarter of a full-image pixel more or less
    # than 1.2 grey levels of rounding shows: half a native-crop pixel is 0.47 image pixels here
    ys, xs = np.mgrid[0:480, 0:640]
    red, green = np.clip((xs - 272) * 2.6, 0, 255), np.clip((ys - 136) * 1.9, 0, 255)
    image = np.stack([red, green, np.full_like(red, 90)], -1).round().astype(np.uint8)
    matrix = crop_matrix(np.array([300.0, 150.0, 340.0, 246.0]), crop, 1.25)
    points = np.array([[40.0, 60.0, 1.0], [150.0, 200.0, 0.5]])
    out = data.native_person(image, 8.0, matrix, points, points, random.Random(0))
    assert out["native_crop"].shape == (128, 96, 3)
    assert np.allclose(out["native_soft"][:, :2], points[:, :2] / 2)
    inverse = cv2.invertAffineTransform(matrix)
    for u, v in ((8, 9), (48, 40), (88, 20), (30, 118), (70, 90)):
        x, y = transform_points(np.array([[2.0 * u, 2.0 * v]]), inverse)[0]
        assert out["native_crop"][v, u, 0] == pytest.approx((x - 272) * 2.6, abs=1.0)
        assert out["native_crop"][v, u, 1] == pytest.approx((y - 136) * 1.9, abs=1.0)
    teacher = np.random.default_rng(0).random((17, 64, 48)).astype(np.float32)
    batch = collate([{"crop": np.zeros((256, 192, 3), np.uint8), "teacher": teacher, **out}])
    assert np.array_equal(batch["people_native"]["native_teacher"][0].numpy(),
                          teacher[:, ::2, ::2])  # fmt: skip


def test_native_sizes_that_cannot_be_distilled_are_refused():
    from orpose.data.lowres import LowResSchedule
    from orpose.training.distillation_data import DistillationData

    # detector not the full one over a power of two; crop above half; crop of another aspect
    for native in (((128, 128), (96, 128)), ((240, 240), (96, 128)), ((160, 80), (96, 128)),
                   ((160, 160), (120, 160)), ((160, 160), (64, 96))):  # fmt: skip
        with pytest.raises(ValueError, match="divided by 1, 2, 4"):
            DistillationData([_OneImage()], LowResSchedule(fixed=8.0), None, (192, 256),
                             (320, 320), native_sizes=native)  # fmt: skip
    # the full detector size itself (shift 0) and a quarter of it are accepted
    for size in ((320, 320), (80, 80)):
        DistillationData([_OneImage()], LowResSchedule(fixed=8.0), None, (192, 256),
                         (320, 320), native_sizes=(size, (96, 128)))  # fmt: skip


def test_native_detector_targets_follow_its_input_size():
    """The native view's detector targets (``TopDownStudent.losses``) are the teacher's cells
    from the level whose grid is the student's finest level at the native input: the next
    coarser one for half the input, the finest for the same input; boxes scaled to match."""
    from orpose.errors import ConfigError
    from orpose.student.picodet import level_shift
    from orpose.student.topdown import TopDownConfig, TopDownStudent

    assert [level_shift((320, 320), s) for s in ((320, 320), (160, 160), (80, 80))] == [0, 1, 2]
    assert level_shift((320, 320), (240, 240)) is None
    assert level_shift((416, 320), (208, 160)) == 1
    assert level_shift((320, 320), (160, 80)) is None
    student = TopDownStudent(TopDownConfig(lifters=False, native_max_side=0))
    teacher_sizes = student.teacher_level_sizes()
    cells = sum(h * w for h, w in teacher_sizes)
    targets = {"scores": torch.rand(1, cells), "boxes": torch.full((1, cells, 4), 64.0)}
    seen = []
    student.detector.distillation_losses = lambda levels, s, b: seen.append((levels, s, b)) or {}
    for native_size, shift in (((160, 160), 1), ((320, 320), 0)):
        student.config.native_detector_size = native_size
        with torch.no_grad():
            levels = student.detector.levels(torch.zeros(1, 3, native_size[1], native_size[0]))
        student.losses([], [levels], {"images_native": targets})
        _, scores, boxes = seen.pop()
        # the targets are the teacher's levels from ``shift`` on, and they start on the grid
        # of the student's finest native level
        assert scores.shape[1] == sum(h * w for h, w in teacher_sizes[shift:])
        assert tuple(levels[0].logit_a.shape[-2:]) == teacher_sizes[shift]
        assert torch.equal(scores, targets["scores"][:, cells - scores.shape[1] :])
        assert float(boxes[0, 0, 0]) == 64.0 / 2**shift
    student.config.native_detector_size = (240, 240)
    with pytest.raises(ConfigError, match="native_detector_size"):
        student.losses([], [levels], {"images_native": targets})


def test_native_crop_below_half_size_samples_the_teacher_between_cells():
    """72x96 native crops (0.375 of 192x256): crop pixel u' sees full crop pixel u' / 0.375,
    keypoints scale by 0.375, and native heatmap cell k is the teacher's at cell k / 0.375,
    interpolated bilinearly (checked by hand at one cell)."""
    from orpose.data.lowres import LowResSchedule
    from orpose.training.distillation_data import (
        Augmentation,
        DistillationData,
        collate,
        sample_cells,
    )

    r = 0.375
    data = DistillationData([_OneImage()], LowResSchedule(fixed=8.0), None, (192, 256),
                            (320, 320), augmentation=Augmentation(native_share=1.0),
                            native_sizes=((160, 160), (72, 96)))  # fmt: skip
    ys, xs = np.mgrid[0:480, 0:640]
    red, green = np.clip((xs - 272) * 2.6, 0, 255), np.clip((ys - 136) * 1.9, 0, 255)
    image = np.stack([red, green, np.full_like(red, 90)], -1).round().astype(np.uint8)
    matrix = crop_matrix(np.array([300.0, 150.0, 340.0, 246.0]), (192, 256), 1.25)
    points = np.array([[40.0, 60.0, 1.0], [150.0, 200.0, 0.5]])
    out = data.native_person(image, 8.0, matrix, points, points, random.Random(0))
    assert out["native_crop"].shape == (96, 72, 3)
    assert np.allclose(out["native_soft"][:, :2], points[:, :2] * r)
    inverse = cv2.invertAffineTransform(matrix)
    for u, v in ((6, 7), (36, 30), (66, 15), (22, 88), (52, 67)):
        x, y = transform_points(np.array([[u / r, v / r]]), inverse)[0]
        assert out["native_crop"][v, u, 0] == pytest.approx((x - 272) * 2.6, abs=1.5)
        assert out["native_crop"][v, u, 1] == pytest.approx((y - 136) * 1.9, abs=1.5)
    teacher = np.random.default_rng(0).random((17, 64, 48)).astype(np.float32)
    batch = collate([{"crop": np.zeros((256, 192, 3), np.uint8), "teacher": teacher, **out}])
    cells = batch["people_native"]["native_teacher"][0].numpy()
    assert cells.shape == (17, 24, 18)
    fy, fx = 5 / r - 13, 7 / r - 18  # native cell (y 5, x 7) = teacher cell (13.33, 18.67)
    t = teacher[3]
    hand = ((1 - fy) * (1 - fx) * t[13, 18] + (1 - fy) * fx * t[13, 19]
            + fy * (1 - fx) * t[14, 18] + fy * fx * t[14, 19])  # fmt: skip
    assert cells[3, 5, 7] == pytest.approx(hand, abs=1e-5)
    assert np.array_equal(sample_cells(torch.from_numpy(teacher[None]), 0.5)[0].numpy(),
                          teacher[:, ::2, ::2])  # fmt: skip
