"""The CPU student (PicoDet + RoIAlign + TinyPose): against the teacher it is built from, through
a checkpoint file, and through ONNX Runtime."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from orpose.checkpoints import load_student, save_student
from orpose.data.lowres import degrade
from orpose.data.sources import read_image_rgb
from orpose.errors import ModelError
from orpose.student.topdown import TopDownConfig, TopDownStudent
from orpose.teacher.geometry import crop_for_box


@pytest.fixture(scope="module")
def student(shared):
    torch.manual_seed(0)
    return TopDownStudent(TopDownConfig(lifter_config={"hidden": 64})).eval()


@pytest.fixture(scope="module")
def images(val500):
    folder = val500.parent / "images"
    return [read_image_rgb(p) for p in sorted(folder.iterdir())[:4]]


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255.0


def test_crop_is_the_teachers_warp(student, images):
    image = images[0]
    box = np.array([100.0, 60.0, 260.0, 420.0])
    crop = crop_for_box(box, (192, 256), padding=1.25)
    reference = cv2.warpAffine(image.astype(np.float32), crop.matrix(), (192, 256),
                               flags=cv2.INTER_LINEAR, borderValue=0)  # fmt: skip
    regions = student.crop_regions(torch.from_numpy(box[None]).float())
    ours = student.crop(_tensor(image)[None], regions, torch.zeros(1, dtype=torch.long))
    pixels = (ours * student.std + student.mean)[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(pixels - reference)[2:-2, 2:-2].mean() < 0.05
    points = torch.tensor([[[10.0, 20.0], [150.5, 240.25]]])
    back = student.crop_to_image(student.image_to_crop(points, regions), regions)
    assert torch.allclose(back, points, atol=1e-4)


def _match(ours: dict, people: list) -> list[tuple[int, int]]:
    from torchvision.ops import box_iou

    if not people or not len(ours["boxes"]):
        return []
    teacher = torch.tensor(np.array([p.box for p in people]), dtype=torch.float32)
    iou = box_iou(ours["boxes"], teacher)
    return [(i, int(iou[i].argmax())) for i in range(len(iou)) if iou[i].max() > 0.9]


def test_untrained_student_is_the_single_pass_teacher(shared, student, images):
    import copy

    from orpose.teacher.config import PRESETS
    from orpose.teacher.teacher import Teacher

    # the teacher poses everyone on full-size crops; so does the student with smaller crops off
    student = copy.deepcopy(student)
    student.config.small_crop_max_height = student.config.middle_crop_max_height = 0

    teacher = Teacher.from_config(
        PRESETS["single"].replace(min_person_score=0.2), shared / "models", threads=2
    )
    distances, matched, total = [], 0, 0
    for image in images:
        people = teacher.label(image)
        with torch.no_grad():
            (ours,) = student([_tensor(image)])
        pairs = _match(ours, people)
        matched += len(pairs)
        total += min(len(people), len(ours["boxes"]))
        for i, j in pairs:
            d = ours["keypoints"][i, :, :2].numpy() - people[j].keypoints[:, :2]
            box = people[j].box
            cell = max(box[2] - box[0], (box[3] - box[1]) * 0.75) * 1.25 / 48  # px per cell
            confident = people[j].keypoints[:, 2] > 0.5
            distances.append(np.linalg.norm(d, axis=-1)[confident] / cell)
    distances = np.concatenate(distances)  # in heatmap cells, keypoints the teacher is sure of
    assert matched >= 0.9 * total and matched >= 10
    assert np.median(distances) < 0.05
    # boxes differ by a pixel or so (the teacher resizes uint8 pixels): rarely a whole cell
    assert np.mean(distances < 1.0) > 0.95


def test_smaller_people_are_posed_on_smaller_crops_in_the_order_of_their_boxes(student, images):
    import copy

    image = _tensor(images[0])
    # crop regions 1.25 x max(h, 4/3 w) tall: 60 and 50 (small crops), 250 (full crop), 90
    # (middle crop)
    boxes = torch.tensor([[300.0, 100.0, 330.0, 148.0], [50.0, 50.0, 150.0, 250.0],
                          [400.0, 200.0, 430.0, 240.0], [200.0, 300.0, 240.0, 372.0]])  # fmt: skip
    heights = student.crop_regions(boxes)[:, 3] - student.crop_regions(boxes)[:, 1]
    assert heights.tolist() == pytest.approx([60.0, 250.0, 50.0, 90.0])
    assert student.crop_tiers() == [(64, (96, 128)), (96, (144, 192))]
    for size in ((96, 128), (144, 192)):
        crop = student.crop(image[None], student.crop_regions(boxes[:1]), torch.zeros(1).long(),
                            size=size)  # fmt: skip
        assert crop.shape[-2:] == size[::-1]
    full_only, no_middle = copy.deepcopy(student), copy.deepcopy(student)
    full_only.config.small_crop_max_height = full_only.config.middle_crop_max_height = 0
    no_middle.config.middle_crop_max_height = 0
    with torch.no_grad():
        mixed, everyone_full = student.pose(image, boxes), full_only.pose(image, boxes)
        small_only = no_middle.pose(image, boxes)
        alone = [student.pose(image, boxes[i : i + 1]) for i in range(4)]
    for key in ("keypoints", "keypoints_scores", "keypoints_soft_branch", "keypoints3d"):
        for i in range(4):  # each person's result is where its box is
            torch.testing.assert_close(mixed[key][i], alone[i][key][0], rtol=1e-4, atol=1e-3)
        # the tall person went through the full crop, the small ones through the small crop
        torch.testing.assert_close(mixed[key][1], everyone_full[key][1], rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(mixed[key][[0, 2]], small_only[key][[0, 2]], rtol=1e-4,
                                   atol=1e-3)  # fmt: skip
    moved = (mixed["keypoints"] - everyone_full["keypoints"])[..., :2].abs().amax((1, 2))
    assert moved[0] > 0.01 and moved[2] > 0.01 and moved[3] > 0.01
    # the middle person went through the 192x144 crop, not the small one
    regions = student.crop_regions(boxes[3:4])
    with torch.no_grad():
        middle = student._pose_group(image, regions, False, (144, 192))["keypoints"][0]
        small = student._pose_group(image, regions, False, (96, 128))["keypoints"][0]
    torch.testing.assert_close(mixed["keypoints"][3], middle, rtol=1e-4, atol=1e-3)
    assert (mixed["keypoints"][3] - small).abs().max() > 0.01


def test_the_three_heatmap_sets_decoded_as_one_batch_are_each_sets_own_keypoints(student, images):
    """_pose_group decodes mean, soft and hard heatmaps in one batch: each result must still be
    its own set's decoding (the hard branch is perturbed so that a swap would show)."""
    import copy

    model = copy.deepcopy(student)
    noise = torch.randn(model.head.hard.weight.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.head.hard.weight.add_(0.05 * noise)
    image = _tensor(images[0])
    boxes = torch.tensor([[50.0, 50.0, 150.0, 250.0], [300.0, 100.0, 340.0, 180.0]])
    regions = model.crop_regions(boxes)
    index = torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        out = model._pose_group(image, regions, False)
        hm_soft, hm_hard = model.head(model.crop(image[None], regions, index))
        sets = {"keypoints": (hm_soft + hm_hard) / 2, "keypoints_soft_branch": hm_soft,
                "keypoints_hard_branch": hm_hard}  # fmt: skip
        for key, maps in sets.items():
            points, scores = model.head.decode(maps)
            torch.testing.assert_close(out[key][..., :2], model.crop_to_image(points, regions))
            if key == "keypoints":
                torch.testing.assert_close(out["keypoints_scores"], scores)
        empty = model._pose_group(image, regions[:0], False)
    assert (out["keypoints_soft_branch"] - out["keypoints_hard_branch"]).abs().max() > 0.01
    assert {k: tuple(v.shape) for k, v in empty.items()} == {
        "keypoints": (0, 17, 3), "keypoints_scores": (0, 17),
        "keypoints_soft_branch": (0, 17, 3), "keypoints_hard_branch": (0, 17, 3)}  # fmt: skip


def test_crop_tiers_must_grow():
    from orpose.errors import ConfigError

    with pytest.raises(ConfigError, match="middle_crop_max_height"):
        TopDownConfig.from_dict({"small_crop_max_height": 64, "middle_crop_max_height": 64})
    assert TopDownConfig.from_dict({"middle_crop_max_height": 0}).middle_crop_max_height == 0


def test_checkpoint_round_trip_and_tampering(student, images, tmp_path):
    import copy

    path = save_student(student, tmp_path / "student.pt")
    loaded = load_student(path)
    # built, and rebuilt from a file, in the family's faster layout (NHWC convolution weights)
    for model in (student, loaded):
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(
            m.weight.is_contiguous(memory_format=TopDownStudent.MEMORY_FORMAT) for m in convs
        )
    default_layout = copy.deepcopy(student).to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        (a,) = student([_tensor(images[1])])
        (b,) = loaded([_tensor(images[1])])
        (c,) = default_layout([_tensor(images[1])])
    assert torch.equal(a["keypoints"], b["keypoints"]) and torch.equal(a["boxes"], b["boxes"])
    assert torch.allclose(a["keypoints3d"], b["keypoints3d"])
    # the layout changes only the rounding: the same people, points within 0.01 px
    assert len(c["boxes"]) == len(b["boxes"]) > 0
    torch.testing.assert_close(b["boxes"], c["boxes"], atol=1e-3, rtol=0)
    torch.testing.assert_close(b["keypoints"], c["keypoints"], atol=1e-2, rtol=0)
    torch.testing.assert_close(b["keypoints3d"], c["keypoints3d"], atol=0.5, rtol=0)
    state = torch.load(path, weights_only=True)
    state["sources"]["pose"][100] ^= 1
    torch.save(state, tmp_path / "tampered.pt")
    with pytest.raises(ModelError, match=r"tampered\.pt: field 'sources\.pose': sha256"):
        load_student(tmp_path / "tampered.pt")


@pytest.mark.slow
def test_onnx_export_agrees_on_portrait_and_landscape(student, images, tmp_path):
    from orpose.export.export import export_onnx
    from orpose.inference.onnx_runner import OnnxStudent
    from orpose.predictor import StudentPredictor

    # real photographs of each shape (a rotated landscape shows people lying: none found)
    landscape = next(im for im in images if im.shape[1] > im.shape[0])
    portrait = next(im for im in images if im.shape[0] > im.shape[1])
    path = export_onnx(student, tmp_path / "student.onnx", _tensor(landscape))
    runner, torch_predictor = OnnxStudent(path, threads=2), StudentPredictor(student, "cpu")
    sizes = set()
    crowded = images[3]  # a square photograph of 20 people of every size
    for image in (landscape, portrait, crowded):
        ours, theirs = torch_predictor(image), runner(image)
        assert len(ours) == len(theirs) > 0
        boxes = torch.tensor([r["bbox"] for r in ours]).float()  # x, y, w, h
        regions = student.crop_regions(torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1))
        heights = regions[:, 3] - regions[:, 1]
        tiers = [limit for limit, _ in student.crop_tiers()]
        sizes |= set(torch.bucketize(heights, torch.tensor(tiers, dtype=heights.dtype)).tolist())
        kps = np.array([r["keypoints"] for r in ours]).reshape(-1, 3)[:, :2]
        onnx_kps = np.array([r["keypoints"] for r in theirs]).reshape(-1, 3)[:, :2]
        close = np.linalg.norm(kps - onnx_kps, axis=-1) < 0.05
        assert close.mean() > 0.98
        assert np.allclose([r["bbox"] for r in ours], [r["bbox"] for r in theirs], atol=0.05)
        assert all("keypoints3d" in r for r in theirs)
    assert sizes == {0, 1, 2}, sizes  # every crop size was compared


@pytest.mark.slow
def test_graph_runs_a_crop_sizes_trunk_only_for_its_people(student, images, tmp_path):
    """The export holds each crop size's pose work in an If branch with its own weights. On a
    photo where some crop size has nobody (its branch skipped) and on one with people of every
    size it gives PyTorch's results, each point set its own; the flat graph (what int8
    quantizes) gives the same with every weight counted once; a student that poses nobody
    returns empty outputs."""
    import copy

    import onnx

    from orpose.export.branch_weights import subgraphs
    from orpose.export.export import OUTPUT_NAMES, export_onnx, export_torchscript
    from orpose.export.flops import onnx_parameters
    from orpose.inference.onnx_runner import OnnxStudent
    from orpose.predictor import StudentPredictor

    apart = copy.deepcopy(student)
    with torch.no_grad():  # the branches apart, as after training (they start as one layer)
        weight = apart.head.hard.weight
        weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0))
                    * weight.std())  # fmt: skip
        _detectors_apart(apart)
        _lifters_apart(apart)
    sample = _tensor(images[0])
    branched = export_onnx(apart, tmp_path / "branched.onnx", sample)
    flat = export_onnx(apart, tmp_path / "flat.onnx", sample, skip_empty_crops=False)
    graph = onnx.load(str(branched)).graph
    with_conv = [g for g in subgraphs(graph) if any(n.op_type == "Conv" for n in g.node)]
    # three crop sizes' pose work (4 outputs each) and the two detectors (2 outputs each)
    assert sorted(len(g.output) for g in with_conv) == [2, 2, 4, 4, 4]
    assert all(len(g.initializer) > 100 for g in with_conv)
    assert not any(n.op_type == "Conv" for g in subgraphs(onnx.load(str(flat)).graph)
                   for n in g.node)  # fmt: skip
    assert abs(onnx_parameters(branched) - onnx_parameters(flat)) < 100  # no weight counted 3x
    reference = StudentPredictor(apart, "cpu")
    runners = [OnnxStudent(path, threads=2) for path in (branched, flat)]
    limits = torch.tensor([limit for limit, _ in apart.crop_tiers()])
    used = []
    for image in (images[0], images[3]):  # images[3]: 20 people of every size
        ours = reference.detect(image)
        used_people = ours["boxes"]
        heights = apart.crop_regions(ours["boxes"])[:, 3] - apart.crop_regions(ours["boxes"])[:, 1]
        used.append(set(torch.bucketize(heights, limits.to(heights)).tolist()))
        soft_hard = (ours["keypoints_soft_branch"] - ours["keypoints_hard_branch"]).norm(dim=-1)
        assert soft_hard.max() > 1.0
        for runner in runners:
            theirs = runner.detect(image)
            assert theirs["boxes"].shape == ours["boxes"].shape
            # each point set its own: a graph whose If merged equal outputs gave a crop size's
            # people the hard branch's points in all three
            for key in ("keypoints", "keypoints_soft_branch", "keypoints_hard_branch"):
                gap = (ours[key][..., :2] - theirs[key][..., :2]).norm(dim=-1)
                assert (gap < 0.05).float().mean() > 0.98, key
    assert len(used[0]) < 3 and used[1] == {0, 1, 2}, used  # a size skipped; every size used
    # the optional min_score input: the graph's inputs are still just the image; given a score,
    # it poses the people PyTorch poses from it (fewer), each the same
    runner = runners[0]
    assert runner.accepts_min_score and [i.name for i in runner.session.get_inputs()] == ["image"]
    ours, theirs = reference.detect(images[3], min_score=0.5), runner.detect(images[3], 0.5)
    assert 0 < len(theirs["boxes"]) == len(ours["boxes"]) < len(used_people)
    assert (ours["keypoints"][..., :2] - theirs["keypoints"][..., :2]).norm(dim=-1).max() < 0.05
    # the optional factor input picks the detector and the lifters as PyTorch does: the
    # full-resolution ones at 1 (the default), the trained ones for a frame shrunk 12x and
    # upsampled back
    assert runner.accepts_factor and runners[1].accepts_factor
    blurred = degrade(images[3], 12)
    for factor, image in ((1.0, images[3]), (12.0, blurred), (1.0, blurred)):
        ours = reference.detect(image, factor=factor)
        for graph_runner in runners:
            theirs = graph_runner.detect(image, factor=factor)
            assert 0 < len(ours["boxes"]) == len(theirs["boxes"]), factor
            gap = (ours["keypoints"][..., :2] - theirs["keypoints"][..., :2]).norm(dim=-1)
            assert (gap < 0.05).float().mean() > 0.98, factor
            gap3d = (ours["keypoints3d"] - theirs["keypoints3d"]).norm(dim=-1)
            assert (gap3d < 1.0).float().mean() > 0.98, factor
    default = runner.detect(images[3])["scores"]
    assert torch.equal(default, runner.detect(images[3], factor=1.0)["scores"])
    other = reference.detect(images[3], factor=12.0)["scores"]
    assert other.shape != default.shape or (other - default).abs().max() > 1e-3
    # TorchScript: the same trace, its crop sizes scripted branches too, with the graph's
    # optional inputs: the image alone is full resolution from the model's own score
    script = torch.jit.load(str(export_torchscript(apart, tmp_path / "s.pt", sample)))
    for image, options, scripted_options in (
        (images[3], {}, {}),
        (blurred, {"factor": 12.0}, {"factor": torch.tensor(12.0)}),
        (images[3], {"min_score": 0.5}, {"min_score": torch.tensor(0.5)}),
    ):
        with torch.no_grad():
            scripted = dict(zip(OUTPUT_NAMES, script(_tensor(image), **scripted_options),
                                strict=True))  # fmt: skip
        ours = reference.detect(image, **options)
        assert 0 < len(ours["boxes"]) == len(scripted["boxes"]), options
        for key in ("keypoints", "keypoints_soft_branch", "keypoints_hard_branch"):
            gap = (ours[key][..., :2] - scripted[key][..., :2]).norm(dim=-1).max()
            assert gap < 0.01, (key, options)
    nobody = copy.deepcopy(student)
    nobody.config.pose_min_score = 1.0
    out = OnnxStudent(export_onnx(nobody, tmp_path / "nobody.onnx", sample)).detect(images[0])
    assert out["boxes"].shape == (0, 4) and out["keypoints_soft_branch"].shape == (0, 17, 3)


def _detectors_apart(model) -> None:
    """The trained detector made different from the full-resolution one (they start equal):
    its weights moved by 1% of their spread, as training moves it."""
    generator = torch.Generator().manual_seed(1)
    for p in model.detector.parameters():
        if p.dim() > 1 and p.numel() > 1:
            p.add_(torch.randn(p.shape, generator=generator) * p.std() * 0.01)


def _lifters_apart(model) -> None:
    """The trained lifters made different from the full-resolution ones (they start equal)."""
    generator = torch.Generator().manual_seed(2)
    for p in [*model.head.lift_soft.parameters(), *model.head.lift_hard.parameters()]:
        if p.dim() > 1:
            p.add_(torch.randn(p.shape, generator=generator) * p.std() * 0.2)


def test_full_resolution_frames_take_their_own_lifters(student, images):
    """Factor 1 (or none) lifts through the full-resolution lifters, a larger factor and the
    native path through the trained ones; settling at the end of training puts them at the
    share of the way from their start to the trained ones; share 1 keeps one set."""
    import copy
    import dataclasses

    model = copy.deepcopy(student)
    assert model.full_res_lifters is not None and model.config.full_res_lifter_share == 0.25
    xy = torch.rand(3, 17, 2, generator=torch.Generator().manual_seed(0)) * 200 + 100
    with torch.no_grad():
        before = model.lift(xy, xy + 1.0, None, 1.0)
        assert torch.allclose(before, model.lift(xy, xy + 1.0, None, 12.0))  # equal at start
        start = {k: v.clone() for k, v in model.state_dict().items()}
        _lifters_apart(model)
        full, low = model.lift(xy, xy + 1.0, None, 1.0), model.lift(xy, xy + 1.0, None, 12.0)
        assert torch.equal(full, before) and (low - before).norm(dim=-1).mean() > 1.0
        assert torch.equal(model.lift(xy, xy + 1.0), full)  # no factor: full resolution
        # an exported graph's factor is a tensor: both sets, then the frame's
        assert torch.allclose(model.lift(xy, xy + 1.0, None, torch.tensor(1.0)), full)
        assert torch.allclose(model.lift(xy, xy + 1.0, None, torch.tensor(12.0)), low)
        # the native path (a small frame) lifts through the trained lifters at any factor
        (small,) = model([_tensor(_small(images[1]))], factors=[1.0])
        assert len(small["boxes"]) > 0
        trained = model.head.lift(
            small["keypoints_soft_branch"][..., :2], small["keypoints_hard_branch"][..., :2]
        )
        assert torch.allclose(small["keypoints3d"], trained)
    # settling: share 0.5 puts them half-way from their start to the trained ones
    model.config = dataclasses.replace(model.config, full_res_lifter_share=0.5)
    model.settle_full_res_lifters(start)
    key = next(k for k, v in model.head.lift_soft.state_dict().items()
               if k.endswith("weight") and v.dim() > 1)  # fmt: skip
    trained_w = model.head.lift_soft.state_dict()[key]
    start_w = start[f"full_res_lifters.soft.{key}"]
    settled = model.full_res_lifters["soft"].state_dict()[key]
    assert torch.allclose(settled, (trained_w + start_w) / 2, atol=1e-6)
    assert not torch.allclose(settled, start_w)
    one = TopDownStudent(TopDownConfig(lifter_config={"hidden": 64}, full_res_lifter_share=1))
    assert one.full_res_lifters is None


def test_set_lifters_makes_the_full_resolution_lifters_again(student):
    """Training starts the lifters from one lifter file whose architecture wins: the
    full-resolution lifters follow it, so that a checkpoint rebuilds the same modules."""
    import copy

    from orpose.lifting.kinds import make_lifter

    model = copy.deepcopy(student)
    wider = make_lifter({"hidden": 96})
    model.set_lifters(wider)
    for branch in ("soft", "hard"):
        ours = model.full_res_lifters[branch].state_dict()
        for key, value in wider.state_dict().items():
            assert torch.equal(ours[key], value), (branch, key)
    assert not any(p.requires_grad for p in model.full_res_lifters.parameters())


def test_full_resolution_frames_take_their_own_detector(student, images):
    """Factor 1 (or none) picks the full-resolution detector, a larger factor the trained one,
    the native path always the trained one; settling at the end of training puts the
    full-resolution detector at the share of the way from its start to the trained one."""
    import copy

    model = copy.deepcopy(student)
    assert model.full_res_detector is not None and model.config.full_res_detector_share == 0.5
    assert model.detector_for(None) is model.full_res_detector
    assert model.detector_for(1.0) is model.full_res_detector
    assert model.detector_for(8.0) is model.detector
    assert model.detector_for(1.0, native=True) is model.detector
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.detector.parameters():  # "training" moves the trained detector only
            p.add_(0.01)
    model.settle_full_res_detector(start)
    key = next(k for k, v in model.detector.state_dict().items() if v.dim() > 1)
    full = model.full_res_detector.state_dict()[key]
    assert torch.allclose(full, start[f"full_res_detector.{key}"] + 0.005, atol=1e-6)
    model.settle_full_res_detector(start)  # idempotent: a rerun of the end gives the same
    assert torch.allclose(model.full_res_detector.state_dict()[key], full)
    with torch.no_grad():
        _detectors_apart(model)
    image = _tensor(images[3])
    ours = model([image], factors=[1.0])[0]["det_scores"]
    theirs = model([image], factors=[12.0])[0]["det_scores"]
    assert ours.shape != theirs.shape or (ours - theirs).abs().max() > 1e-3
    assert torch.equal(model([image])[0]["det_scores"], ours)  # no factor: full resolution
    one = TopDownStudent(TopDownConfig(full_res_detector_share=1.0, lifters=False))
    assert one.full_res_detector is None and one.detector_for(1.0) is one.detector


def test_a_checkpoint_from_before_the_full_resolution_detector(student, tmp_path):
    """A checkpoint written before the option loads with one detector (its config reads share
    1); training that starts from it starts the full-resolution detector as its detector."""
    import copy

    from orpose.checkpoints.student import load_weights_into
    from orpose.safe_checkpoint import read_checkpoint, write_checkpoint

    old = copy.deepcopy(student)
    old.full_res_detector = None
    with torch.no_grad():
        _detectors_apart(old)
    path = save_student(old, tmp_path / "old.pt")
    state = read_checkpoint(path)
    del state["student_config"]["full_res_detector_share"]  # as written before the field
    del state["student_config"]["full_res_lifter_share"]
    state["model"] = {k: v for k, v in state["model"].items()
                      if not k.startswith("full_res_lifters.")}  # fmt: skip
    write_checkpoint(state, path)
    loaded = load_student(path)
    assert loaded.full_res_detector is None and loaded.config.full_res_detector_share == 1.0
    assert loaded.full_res_lifters is None and loaded.config.full_res_lifter_share == 1.0
    fresh = TopDownStudent(TopDownConfig(lifter_config={"hidden": 64}))
    load_weights_into(fresh, path)
    for key, value in fresh.full_res_detector.state_dict().items():
        assert torch.equal(value, old.detector.state_dict()[key]), key
    for key, value in fresh.full_res_lifters["hard"].state_dict().items():  # from its lifter
        assert torch.equal(value, old.head.lift_hard.state_dict()[key]), key
    # and the other way: a one-detector student starts from a two-detector checkpoint
    one = TopDownStudent(TopDownConfig(lifter_config={"hidden": 64}, full_res_detector_share=1))
    load_weights_into(one, save_student(fresh, tmp_path / "two.pt"))
    assert one.full_res_detector is None
    assert torch.equal(next(iter(one.detector.state_dict().values())),
                       next(iter(fresh.detector.state_dict().values())))  # fmt: skip


def test_full_resolution_frames_take_their_own_head(student, images, tmp_path):
    """With ``full_res_head_share`` < 1 a frame at full resolution is posed by a head of its
    own, a shrunk one by the trained head, the native path by its own: in PyTorch, after a file
    round trip, and in the exported graphs (each crop size's two heads as branches of their
    own, each holding its weights; the flat graph computes both and keeps the frame's).
    Settling puts the full-resolution head at the share of the way from its start."""
    import dataclasses

    import onnx

    from orpose.checkpoints.student import load_weights_into
    from orpose.export.branch_weights import subgraphs
    from orpose.export.export import export_onnx
    from orpose.inference.onnx_runner import OnnxStudent
    from orpose.predictor import StudentPredictor

    config = dataclasses.replace(student.config, full_res_head_share=0.5)
    model = TopDownStudent(config, sources=student.sources).eval()
    load_weights_into(model, save_student(student, tmp_path / "start.pt"))  # head -> its copy
    assert not any(p.requires_grad for p in model.full_res_head.parameters())
    assert not hasattr(model.full_res_head, "lift_soft")  # the lifters are a part of their own
    assert model.pose_head_for(False) is model.full_res_head
    assert model.pose_head_for(False, 1.0) is model.full_res_head
    assert model.pose_head_for(False, 8.0) is model.head
    assert model.pose_head_for(True, 1.0) is model.native_head
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # "training" moves the trained head only
        for p in model.head.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * p.std())
    model.settle_full_res_head(start)
    key = "trunk." + next(k for k, v in model.head.trunk.state_dict().items() if v.dim() > 1)
    expected = 0.5 * model.head.state_dict()[key] + 0.5 * start[f"full_res_head.{key}"]
    assert torch.allclose(model.full_res_head.state_dict()[key], expected, atol=1e-6)
    # the same boxes posed at 1x and at 12x: other keypoints, as each head gives them
    image = _tensor(images[3])
    boxes, _ = model.detect(image, factor=12.0)
    full, low = model.pose(image, boxes, factor=1.0), model.pose(image, boxes, factor=12.0)
    assert (full["keypoints"] - low["keypoints"])[..., :2].norm(dim=-1).max() > 1.0
    assert torch.equal(model.pose(image, boxes)["keypoints"], full["keypoints"])
    loaded = load_student(save_student(model, tmp_path / "two_heads.pt"))
    assert loaded.config.full_res_head_share == 0.5
    assert torch.equal(loaded.pose(image, boxes, factor=1.0)["keypoints"], full["keypoints"])
    # exported: both heads, chosen by the factor input, each crop size's as its own branches
    sample = _tensor(images[0])
    branched = export_onnx(model, tmp_path / "branched.onnx", sample)
    flat = export_onnx(model, tmp_path / "flat.onnx", sample, skip_empty_crops=False)
    with_conv = [g for g in subgraphs(onnx.load(str(branched)).graph)
                 if any(n.op_type == "Conv" for n in g.node)]  # fmt: skip
    assert sorted(len(g.output) for g in with_conv) == [2, 2] + [4] * 6
    assert all(len(g.initializer) > 100 for g in with_conv)
    # int8 keeps every heatmap convolution fp32, the full-resolution head's too: two branches
    # of two heads, once per crop size
    from orpose.export.int8 import part_nodes

    kept = part_nodes(onnx.load(str(flat)), "heatmap_head")
    assert sum("/full_res_head/" in name for name in kept) == len(kept) // 2 == 2 * 3, kept
    reference = StudentPredictor(model, "cpu")
    blurred = degrade(images[3], 12)
    for factor, frame in ((1.0, images[3]), (12.0, blurred)):
        ours = reference.detect(frame, factor=factor)
        for path in (branched, flat):
            theirs = OnnxStudent(path, threads=2).detect(frame, factor=factor)
            assert 0 < len(ours["boxes"]) == len(theirs["boxes"]), (factor, path.name)
            for key in ("keypoints", "keypoints_soft_branch", "keypoints_hard_branch"):
                gap = (ours[key][..., :2] - theirs[key][..., :2]).norm(dim=-1)
                assert (gap < 0.05).float().mean() > 0.98, (factor, path.name, key)


def test_native_path_is_picked_by_input_size(student):
    small, big = torch.zeros(3, 40, 53), torch.zeros(3, 480, 640)
    assert student.is_native(small) and not student.is_native(big)
    assert student.sizes(True) == ((160, 160), (96, 128))
    student.force_native = False
    try:
        assert not student.is_native(small)
    finally:
        student.force_native = None


def test_native_results_go_back_to_camera_pixels():
    from orpose.inference.privacy import FrameGeometry

    geometry = FrameGeometry((53, 40), (636, 480), 12.0)
    (r,) = geometry.from_kept([{"bbox": [1.0, 2.0, 10.0, 20.0], "keypoints": [0.0, 0.0, 0.9] * 17}])
    assert r["bbox"] == pytest.approx([12.0, 24.0, 120.0, 240.0])
    # the centre of small pixel 0 is the centre of camera pixels 0..11: 5.5
    assert r["keypoints"][:3] == pytest.approx([5.5, 5.5, 0.9])


def test_skipping_people_below_the_output_threshold_changes_no_written_result(student, images):
    """predict raises the pose threshold to --score-threshold: a person's final score is at
    most its detection score, so the people written are the same, each posed the same way."""
    import copy

    from orpose.predictor import StudentPredictor, skip_people_below

    threshold, found = 0.3, 0
    fast = skip_people_below(copy.deepcopy(student), threshold)
    assert fast.config.pose_min_score == threshold and student.config.pose_min_score < threshold
    for image in images:
        everyone = [r for r in StudentPredictor(student, "cpu")(image) if r["score"] >= threshold]
        written = [r for r in StudentPredictor(fast, "cpu")(image) if r["score"] >= threshold]
        assert len(written) == len(everyone)
        found += len(written)
        for a, b in zip(sorted(everyone, key=lambda r: r["score"]),
                        sorted(written, key=lambda r: r["score"]), strict=True):  # fmt: skip
            assert np.allclose(a["bbox"], b["bbox"]) and np.allclose(a["keypoints"], b["keypoints"])
    assert found > 0


def test_predict_poses_only_the_people_its_frame_threshold_could_keep(student, images):
    """predict_frame tells the student each frame's score threshold (predict's default for a
    1x frame: 0.25, above the student's 0.2). With a pose-confidence bound of 1 it poses every
    candidate that could reach it and writes exactly what posing everyone writes; with the
    default bound (0.85 at 1x) it poses from 0.25 / 0.85 and, on these photos, still writes the
    same people: none of them is shown with a pose confidence above the bound."""
    from orpose.evaluation.shown import default_pose_confidence_bound, default_score_threshold
    from orpose.inference.pipeline import predict_frame
    from orpose.inference.privacy import frame_geometry
    from orpose.predictor import StudentPredictor

    told = []

    factors = []

    class Told(StudentPredictor):
        def __call__(self, image, original_size=None, min_score=None, factor=None):
            told.append(min_score)
            factors.append(factor)
            return super().__call__(image, original_size, min_score, factor)

    predictor = Told(student, "cpu")
    threshold, bound = default_score_threshold(1.0), default_pose_confidence_bound(1.0)
    assert threshold > student.config.pose_min_score and bound == 0.85
    posed = {1.0: 0, None: 0}
    for image in images:
        everyone = [r for r in predictor(image) if r["score"] >= threshold]
        for given, least in ((1.0, threshold), (None, threshold / bound)):
            predictor.pose_confidence_bound = given
            written = predict_frame(predictor, image, frame_geometry(image), score_threshold=None)
            assert told[-1] == pytest.approx(least, abs=1e-5) and told[0] is None
            assert len(written) == len(everyone)
            for a, b in zip(everyone, written, strict=True):  # same order: by detection score
                assert np.allclose(a["bbox"], b["bbox"])
                assert np.allclose(a["keypoints"], b["keypoints"])
            posed[given] += len(predictor.detect(image, min_score=least)["boxes"])
        told.clear()
    everybody = sum(len(predictor.detect(image)["boxes"]) for image in images)
    assert everybody > posed[1.0] > posed[None] > 0
    # predict tells the student each frame's factor (full resolution here), which picks its
    # detector; a plain call tells it nothing
    assert set(factors) == {None, 1.0} and factors.count(1.0) == 2 * len(images)


# -- the native low-resolution path's own pose head ---------------------------------------------


def _small(image: np.ndarray, scale: int = 12) -> np.ndarray:
    from orpose.data.lowres import downsample

    return downsample(image, scale)


def test_untrained_native_head_is_the_teachers_128x96_pose_model(shared, student, images):
    """On 12x frames, the native path poses each person it finds as the teacher's PP-TinyPose
    128x96 does on the same box of the same small image (its own model, not the 256x192 one)."""
    from orpose.teacher.config import PRESETS
    from orpose.teacher.teacher import Teacher

    assert student.native_head is not None and student.native_head.input_size == (96, 128)
    assert student.unmixed_prefixes == ()  # made for these crops: the final weight mix keeps it
    teacher = Teacher.from_config(
        PRESETS["single"].replace(pose_model="tinypose_128x96"), shared / "models", threads=2
    )
    distances = []
    for image in images:
        small = _small(image)
        with torch.no_grad():
            (ours,) = student([_tensor(small)])
        if len(ours["boxes"]) == 0:
            continue
        theirs = teacher.keypoints(small, ours["boxes"].numpy())
        regions = student.crop_regions(ours["boxes"])
        cell = (regions[:, 3] - regions[:, 1]).numpy()[:, None] / 32  # image px per heatmap cell
        d = np.linalg.norm(ours["keypoints"][..., :2].numpy() - theirs[..., :2], axis=-1) / cell
        distances.append(d[theirs[..., 2] > 0.5])
    distances = np.concatenate(distances)
    assert len(distances) >= 20
    assert np.median(distances) < 0.05 and np.mean(distances < 1.0) > 0.95


def test_native_head_serves_the_native_path_only(student, images):
    """Changing the native head moves the native path's keypoints and no full-path result; the
    lifters (the full head's) still give the native path its 3D. (images[1] has five people
    found at 12x.)"""
    import copy

    changed, full_changed = copy.deepcopy(student), copy.deepcopy(student)
    with torch.no_grad():
        changed.native_head.soft.weight.mul_(-1.0)
        full_changed.head.soft.weight.mul_(-1.0)
        (full_a,) = student([_tensor(images[0])])
        (full_b,) = changed([_tensor(images[0])])
        (full_c,) = full_changed([_tensor(images[0])])
        (small_a,) = student([_tensor(_small(images[1]))])
        (small_b,) = changed([_tensor(_small(images[1]))])
        (small_c,) = full_changed([_tensor(_small(images[1]))])
    assert torch.equal(full_a["keypoints"], full_b["keypoints"])
    assert not torch.allclose(full_a["keypoints_soft_branch"], full_c["keypoints_soft_branch"])
    assert len(small_a["boxes"]) > 0 and torch.equal(small_a["boxes"], small_b["boxes"])
    assert not torch.allclose(small_a["keypoints_soft_branch"], small_b["keypoints_soft_branch"])
    assert torch.equal(small_a["keypoints_hard_branch"], small_b["keypoints_hard_branch"])
    assert torch.equal(small_a["keypoints_soft_branch"], small_c["keypoints_soft_branch"])
    assert small_a["keypoints3d"].shape == (len(small_a["boxes"]), 17, 3)


def test_native_crops_keep_the_crop_aspect_and_at_most_the_models_size(shared):
    from orpose.errors import ConfigError

    for size in ((64, 96), (120, 160)):  # another aspect; larger than PP-TinyPose 128x96's input
        with pytest.raises(ConfigError, match="native_crop_size"):
            TopDownStudent(TopDownConfig(lifters=False, native_crop_size=size))
    without = TopDownStudent(TopDownConfig(lifters=False, native_max_side=0))
    assert without.native_head is None and "native_pose" not in without.sources


def test_native_head_on_smaller_crops_keeps_its_models_stride(shared, images):
    """72x96 native crops (trained at that size, cpu_student_long.yaml): the head keeps the
    pretrained model's heatmap stride (4), so a heatmap peak at cell (x, y) is crop pixel
    (4x, 4y), and keypoints come back in image pixels of the small frame."""
    small = TopDownStudent(TopDownConfig(lifters=False, native_crop_size=(72, 96)))
    head = small.native_head
    assert head.stride == 4 and head.map_size == (18, 24) and small.head.stride == 4
    assert small.unmixed_prefixes == ("native_head.",)  # its 128x96 start is not kept
    heatmaps = torch.zeros(1, 17, 24, 18)
    heatmaps[0, :, 10, 7] = 1.0
    points, _ = head.decode(heatmaps)
    torch.testing.assert_close(points[0, 0], torch.tensor([28.0, 40.0]), rtol=0, atol=0.05)
    frame = _tensor(_small(images[1]))
    with torch.no_grad():
        (out,) = small([frame])
        index = torch.zeros(len(out["boxes"]), dtype=torch.long)
        crops = small.crop(frame[None], small.crop_regions(out["boxes"]), index, native=True)
    assert len(out["boxes"]) > 0 and crops.shape[-2:] == (96, 72)
    regions = small.crop_regions(out["boxes"])[:, None]  # each person's keypoints in its crop
    xy = out["keypoints"][..., :2]
    assert bool(((xy >= regions[..., :2] - 1e-3) & (xy <= regions[..., 2:] + 1e-3)).all())


def test_native_heatmap_sigma_sets_the_width_of_the_native_heads_targets(shared):
    """``student.native_heatmap_sigma`` narrows the native head's soft and hard Gaussians only.
    Against an all-zero prediction, a keypoint far from the map's edges costs the squared
    Gaussian summed over the cells: (sum over k of exp(-k^2 / sigma^2))^2, about pi * sigma^2."""
    import math

    config = TopDownConfig(lifters=False, native_crop_size=(72, 96), native_heatmap_sigma=0.75)
    model = TopDownStudent(config)
    assert model.native_head.sigma == 0.75 and model.head.sigma == 2.0

    def expected(sigma: float) -> float:
        return sum(math.exp(-(k * k) / sigma**2) for k in range(-30, 31)) ** 2

    for head, size, sigma in ((model.native_head, (24, 18), 0.75), (model.head, (64, 48), 2.0)):
        zero = torch.zeros(1, 17, *size)
        label = torch.zeros(1, 17, 3)
        label[0, 3] = torch.tensor([9.0 * head.stride, 12.0 * head.stride, 1.0])  # cell (9, 12)
        losses = head.losses(zero, zero, label, label)
        assert losses["loss_kp2d_hard"].item() == pytest.approx(expected(sigma), rel=1e-5)
        assert losses["loss_kp2d_soft"].item() == pytest.approx(expected(sigma) / 17, rel=1e-5)


def test_checkpoint_of_a_student_without_native_head_loads_as_it_was(student, images, tmp_path):
    """Files written before the native head: their config lacks ``native_pose_model`` and their
    native path used the full head; they rebuild so, and start a new student's training."""
    from orpose.checkpoints import load_weights_into
    from orpose.checkpoints.student import student_state

    old = TopDownStudent(
        TopDownConfig(lifter_config={"hidden": 64}, native_pose_model=""),
        sources={k: v for k, v in student.sources.items() if k != "native_pose"},
    )
    old.load_state_dict({k: v for k, v in student.state_dict().items()
                         if not k.startswith("native_head.")})  # fmt: skip
    state = student_state(old)
    del state["student_config"]["native_pose_model"]
    torch.save(state, tmp_path / "old.pt")
    loaded = load_student(tmp_path / "old.pt")
    assert loaded.native_head is None
    with torch.no_grad():
        (a,) = old([_tensor(_small(images[1]))])
        (b,) = loaded([_tensor(_small(images[1]))])
    assert len(a["boxes"]) > 0 and torch.equal(a["keypoints"], b["keypoints"])
    # a new student starts from the old weights; its native head keeps its pretrained start
    fresh = TopDownStudent(TopDownConfig(lifter_config={"hidden": 64}))
    load_weights_into(fresh, tmp_path / "old.pt")
    assert torch.equal(fresh.head.soft.weight, student.head.soft.weight)
    assert torch.equal(fresh.native_head.soft.weight, student.native_head.soft.weight)
    state["model"]["stray.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "stray.pt")
    with pytest.raises(ModelError, match=r"stray\.pt: its weights do not fit.*stray\.weight"):
        load_weights_into(fresh, tmp_path / "stray.pt")


def test_native_crops_train_the_native_head(student):
    """Training's forward sends native crops through the native head and full-size crops
    through the full head, and the gradients of each go to its own head."""
    import copy

    from orpose.training.topdown import DistillationForward

    model = copy.deepcopy(student).train()
    full, native = torch.rand(2, 3, 256, 192), torch.rand(3, 3, 128, 96)
    (hm_full, _), (hm_native, _) = DistillationForward(model)([full, native], [], [False, True])[0]
    with torch.no_grad():
        assert torch.allclose(hm_full, model.head(full)[0])
        assert torch.allclose(hm_native, model.native_head(native)[0])
    hm_native.sum().backward()
    assert model.native_head.soft.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.head.parameters())


@pytest.mark.slow
def test_native_onnx_graph_agrees_with_pytorch(student, images, tmp_path):
    """The native path's own graph (what ``orpose export`` writes as student_native.onnx), with
    its own head, against PyTorch on 12x frames of both orientations."""
    _check_native_onnx(student, images, tmp_path)


def test_native_onnx_graph_on_smaller_crops_agrees_with_pytorch(shared, images, tmp_path):
    """The same with 72x96 native crops, where the trunk's coarser branches no longer halve
    exactly (96x72 -> ... -> 3x3): the graph resizes to each branch's size, as PyTorch does."""
    config = TopDownConfig(lifter_config={"hidden": 64}, native_crop_size=(72, 96))
    _check_native_onnx(TopDownStudent(config).eval(), images, tmp_path)


def _check_native_onnx(student, images, tmp_path) -> None:
    from orpose.export.export import export_onnx
    from orpose.inference.onnx_runner import OnnxStudent
    from orpose.predictor import StudentPredictor

    smalls = [_small(images[1]), _small(images[2])]  # (w x h) 53x40 and 35x53, 12x
    path = export_onnx(student, tmp_path / "native.onnx", _tensor(smalls[0]), native=True)
    runner, torch_predictor = OnnxStudent(path, threads=2), StudentPredictor(student, "cpu")
    for small in smalls:
        ours, theirs = torch_predictor(small), runner(small)
        assert len(ours) == len(theirs) > 0
        assert np.allclose([r["bbox"] for r in ours], [r["bbox"] for r in theirs], atol=0.01)
        kps = np.array([r["keypoints"] for r in ours]).reshape(-1, 3)[:, :2]
        onnx_kps = np.array([r["keypoints"] for r in theirs]).reshape(-1, 3)[:, :2]
        assert (np.linalg.norm(kps - onnx_kps, axis=-1) < 0.01).mean() > 0.98
        assert np.allclose([r["keypoints3d"] for r in ours], [r["keypoints3d"] for r in theirs],
                           atol=1.0)  # fmt: skip


def test_unflip_puts_a_mirrored_crops_peak_back_where_the_joint_is():
    """A joint at crop pixel x0 shows, in the mirrored crop, at pixel cw - 1 - x0 in the channel
    of its left/right twin; unflip must give its own channel a peak at x0 (DARK-decoded)."""
    from types import SimpleNamespace

    from orpose.heatmaps import dark_refine
    from orpose.skeleton import FLIP_INDEX
    from orpose.student.keypoint_head import TopDownKeypointHead

    stride, cw, w, h = 4, 192, 48, 64
    xs, ys = torch.arange(w).float(), torch.arange(h).float()
    x0 = torch.linspace(20.0, 170.0, 17)  # crop pixels, one per joint
    y0 = 100.0
    mirrored = torch.zeros(1, 17, h, w)
    for k in range(17):
        cx, cy = (cw - 1 - x0[k]) / stride, y0 / stride  # where the twin's channel shows joint k
        g = torch.exp(-((xs[None] - cx) ** 2 + (ys[:, None] - cy) ** 2) / (2 * 2.0**2))
        mirrored[0, FLIP_INDEX[k]] = g
    back = TopDownKeypointHead.unflip(SimpleNamespace(stride=stride), mirrored, cw)
    cells, _ = dark_refine(back, 11)
    torch.testing.assert_close(cells[0, :, 0] * stride, x0, atol=0.15, rtol=0)
    torch.testing.assert_close(cells[0, :, 1] * stride, torch.full((17,), y0), atol=0.05, rtol=0)


def test_flip_test_poses_a_mirror_image_as_the_mirror_of_the_image(student, images):
    """With --flip the pose of the mirrored image is the mirror of the image's pose (the crops
    are exact mirrors for a crop region of 1 image pixel per crop pixel); without it, the
    network's own asymmetry shows."""
    import copy

    from orpose.skeleton import FLIP_INDEX

    image = _tensor(images[0])
    width = image.shape[-1]
    # crop regions of 256 x 192 image pixels: 1.25 x 204.8 tall, centred on the boxes
    boxes = torch.tensor([[100.0, 100.0, 200.0, 304.8], [380.0, 60.0, 460.0, 264.8]])
    mirrored_boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0],
                                  boxes[:, 3]], 1)  # fmt: skip

    def asymmetry(model) -> float:
        with torch.no_grad():
            a = model.pose(image, boxes)["keypoints"][..., :2]
            b = model.pose(torch.flip(image, [-1]), mirrored_boxes)["keypoints"][..., :2]
        b = b[:, list(FLIP_INDEX)]
        b[..., 0] = width - 1 - b[..., 0]
        return float((a - b).abs().median())

    flipped = copy.deepcopy(student)
    flipped.config.flip_test = True
    plain, averaged = asymmetry(student), asymmetry(flipped)
    assert averaged < 0.5 and averaged < plain / 2, (plain, averaged)


def test_a_flip_export_does_what_the_flip_checkpoint_does(student, images, tmp_path):
    """``orpose export --flip``: the graph poses the mirrored crops too, as PyTorch does (and
    differs from the graph without it)."""
    import copy

    from orpose.export.export import export_onnx
    from orpose.inference.onnx_runner import OnnxStudent
    from orpose.predictor import StudentPredictor, set_flip_test

    flipped = set_flip_test(copy.deepcopy(student), True)
    image = images[0]
    path = export_onnx(flipped, tmp_path / "flip.onnx", _tensor(image))
    ours, theirs = StudentPredictor(flipped, "cpu")(image), OnnxStudent(path, threads=2)(image)
    plain = StudentPredictor(student, "cpu")(image)
    assert len(ours) == len(theirs) == len(plain) > 0
    kps = np.array([r["keypoints"] for r in ours]).reshape(-1, 3)[:, :2]
    onnx_kps = np.array([r["keypoints"] for r in theirs]).reshape(-1, 3)[:, :2]
    plain_kps = np.array([r["keypoints"] for r in plain]).reshape(-1, 3)[:, :2]
    assert (np.linalg.norm(kps - onnx_kps, axis=-1) < 0.05).mean() > 0.98
    assert np.median(np.linalg.norm(kps - plain_kps, axis=-1)) > 0.05  # flip changed them


def test_flip_reaches_the_model_that_load_and_eval_build(student, tmp_path):
    import orpose
    from orpose.evaluation.cli import student_for_eval

    path = save_student(student, tmp_path / "student.pt")
    assert orpose.load(path, flip=True).runner.model.config.flip_test
    assert not orpose.load(path).runner.model.config.flip_test
    assert student_for_eval(path, flip=True).model.config.flip_test
