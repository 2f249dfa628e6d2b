"""The lifters' camera: 2D from any camera and frame size (``--camera``) and from the native
low-resolution path reaches the lifter in the pixels of the camera it was trained for."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import tiny_dataset_json
from orpose.cli import main
from orpose.data.lowres import results_to_larger
from orpose.errors import DatasetError, UserError
from orpose.lifting import Lifter
from orpose.lifting.cameras import CameraSampling
from orpose.lifting.intrinsics import (
    LIFTER_CAMERA,
    Intrinsics,
    LiftMapping,
    lift_mapping,
    read_camera,
)

MVOR_CAMERA_3 = Intrinsics(541.4062, 540.5641, 323.9545, 238.6629, 640, 480)


@pytest.fixture(scope="module")
def lifter():
    torch.manual_seed(0)
    return Lifter(hidden=64).eval()


def _pose_mm(depth: float = 3000.0, side: float = 400.0) -> np.ndarray:
    """A standing person (17 COCO joints, camera frame, mm) off the optical axis."""
    rng = np.random.default_rng(0)
    body = np.zeros((17, 3))
    body[:, 1] = np.linspace(-800, 900, 17)  # head (up = -y) to feet
    body[:, 0] = rng.normal(0, 150, 17)
    body[:, 2] = rng.normal(0, 100, 17)
    return body + [side, -200.0, depth]


def _project(points: np.ndarray, cam: Intrinsics) -> np.ndarray:
    u = points[:, 0] / points[:, 2] * cam.fx + cam.cx
    v = points[:, 1] / points[:, 2] * cam.fy + cam.cy
    return np.stack([u, v], -1)


def _lift(lifter: Lifter, xy: np.ndarray, mapping: LiftMapping | None = None) -> np.ndarray:
    xy = torch.as_tensor(xy, dtype=torch.float32)[None]
    if mapping is not None:
        xy = mapping.apply(xy)
    with torch.no_grad():
        return lifter(xy, torch.ones(1, 17)).numpy()[0]


def test_the_lifter_camera_is_the_one_it_was_trained_for():
    sampling = CameraSampling()
    assert (LIFTER_CAMERA.fx, LIFTER_CAMERA.fy) == (sampling.focal, sampling.focal)
    assert LIFTER_CAMERA.size == tuple(sampling.image_size)
    assert (LIFTER_CAMERA.cx, LIFTER_CAMERA.cy) == (sampling.image_size[0] / 2,
                                                    sampling.image_size[1] / 2)  # fmt: skip
    # a 640x480 frame without a camera, or with the lifter's own: pixels as they are (as before)
    assert lift_mapping((640, 480)).is_identity
    assert lift_mapping((640, 480), camera=LIFTER_CAMERA).is_identity
    assert lift_mapping((1280, 720)).is_identity  # no camera: any frame's pixels as they are


def test_native_mapping_is_the_results_mapping_back_to_the_original_frame():
    """The lifter sees the small frame's keypoints where the 2D results land in the original
    frame (results_to_larger): the native and upsampled paths lift the same 2D alike."""
    small = np.random.default_rng(1).uniform(0, 40, (17, 3))
    small[:, 2] = 0.9
    (large,) = results_to_larger([{"bbox": [0, 0, 1, 1], "keypoints": small.ravel().tolist()}],
                                 (53, 40), (640, 480))  # fmt: skip
    large = np.asarray(large["keypoints"]).reshape(17, 3)[:, :2]
    mapped = lift_mapping((53, 40), (640, 480)).apply(small[:, :2])
    assert np.allclose(mapped, large, atol=1e-9)
    # with a camera: the same as the original frame's keypoints through that camera
    cam = lift_mapping((53, 40), (640, 480), MVOR_CAMERA_3).apply(small[:, :2])
    assert np.allclose(cam, lift_mapping((640, 480), None, MVOR_CAMERA_3).apply(large), atol=1e-9)


def test_native_lift_equals_the_upsampled_lift(lifter):
    """Keypoints in 53x40 pixels lifted with the native mapping = the same keypoints x12 in the
    636x480 frame they were shrunk from (``orpose predict --lowres-input 12``)."""
    small = np.random.default_rng(2).uniform([5, 3], [48, 37], (17, 2))
    large = (small + 0.5) * 12 - 0.5
    native = _lift(lifter, small, lift_mapping((53, 40), (636, 480)))
    upsampled = _lift(lifter, large)
    assert np.abs(native - upsampled).max() < 1e-3
    assert np.abs(_lift(lifter, small) - upsampled).max() > 1.0  # the small pixels as they are


def test_intrinsics_make_the_lift_camera_independent(lifter):
    """A pose seen by two cameras (other focal lengths, principal points and frame sizes), each
    lifted with its own intrinsics, gives the same root-relative 3D; a wrong focal does not."""
    pose = _pose_mm()
    a = MVOR_CAMERA_3
    b = Intrinsics(1100.0, 1080.0, 700.0, 500.0, 1280, 960)  # a 1280x960 camera, longer lens
    lift_a = _lift(lifter, _project(pose, a), lift_mapping((640, 480), camera=a))
    lift_b = _lift(lifter, _project(pose, b), lift_mapping((1280, 960), camera=b))
    assert np.abs(lift_a - lift_b).max() < 0.05  # mm: float32 rounding only
    root = lift_a[[11, 12]].mean(0)
    assert np.abs(root).max() < 1e-3
    wrong = Intrinsics(700.0, 680.0, 700.0, 500.0)
    lift_wrong = _lift(lifter, _project(pose, b), lift_mapping((1280, 960), camera=wrong))
    assert np.abs(lift_wrong - lift_b).max() > 1.0
    # without a camera the 1280x960 frame's pixels are taken as 640x480 MVOR-like ones
    assert np.abs(_lift(lifter, _project(pose, b)) - lift_a).max() > 1.0


def test_intrinsics_with_a_size_scale_to_a_frame_of_another_size(lifter):
    """Intrinsics given for 640x480 frames apply to the camera's 1280x960 frames too."""
    pose = _pose_mm(side=-300.0)
    big = MVOR_CAMERA_3.for_size(1280, 960)
    assert big.fx == pytest.approx(2 * MVOR_CAMERA_3.fx) and big.size == (1280, 960)
    small_mapping = lift_mapping((640, 480), None, MVOR_CAMERA_3)
    lift_small = _lift(lifter, _project(pose, MVOR_CAMERA_3), small_mapping)
    lift_big = _lift(lifter, _project(pose, big), lift_mapping((1280, 960), None, MVOR_CAMERA_3))
    assert np.abs(lift_small - lift_big).max() < 0.05


def test_read_camera_forms(tmp_path):
    plain = tmp_path / "cam.json"
    plain.write_text(json.dumps({"fx": 600, "fy": 601.5, "cx": 330, "cy": 250}))
    assert read_camera(plain) == Intrinsics(600.0, 601.5, 330.0, 250.0)
    sized = tmp_path / "sized.json"
    sized.write_text(json.dumps({"fx": 600, "fy": 600, "cx": 330, "cy": 250, "width": 640,
                                 "height": 480}))  # fmt: skip
    assert read_camera(sized).size == (640, 480)
    entry = tmp_path / "mvor_entry.json"
    entry.write_text(json.dumps({"focallength": [541.4062, 540.5641],
                                 "principalpoint": [323.9545, 238.6629],
                                 "imagesize": [640, 480]}))  # fmt: skip
    assert read_camera(entry) == MVOR_CAMERA_3
    assert read_camera("538, 538, 320, 240") == Intrinsics(538.0, 538.0, 320.0, 240.0)
    assert read_camera("538,538,320,240,640,480") == LIFTER_CAMERA


def test_read_camera_from_the_mvor_annotation_file(mvor_json):
    path = mvor_json
    assert read_camera(f"{path}:3") == MVOR_CAMERA_3
    with pytest.raises(UserError, match="name one"):
        read_camera(path)
    with pytest.raises(UserError, match="numbered 1-3"):
        read_camera(f"{path}:4")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"fx": 600, "fy": 600, "cx": 320}, "cy"),  # missing
        ({"fx": 600, "fy": 0, "cx": 320, "cy": 240}, "fy"),  # not positive
        ({"fx": -600, "fy": 600, "cx": 320, "cy": 240}, "fx"),
        ({"fx": "600", "fy": 600, "cx": 320, "cy": 240}, "fx"),  # not a number
        ({"fx": 600, "fy": 600, "cx": 320, "cy": 240, "width": 640}, "height"),
        ({"fx": 600, "fy": 600, "cx": 320, "cy": 240, "width": 640, "height": 0}, "height"),
        ({"focallength": [538, 538], "principalpoint": [320]}, "principalpoint"),
        ({"focallength": [538, -1], "principalpoint": [320, 240]}, "focallength"),
    ],
)
def test_bad_camera_file_names_the_file_and_the_field(tmp_path, content, field):
    path = tmp_path / "cam.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DatasetError, match=rf"cam\.json: field '{field}'"):
        read_camera(path)


def test_non_finite_camera_value_is_refused(tmp_path):
    path = tmp_path / "cam.json"
    path.write_text('{"fx": NaN, "fy": 600, "cx": 320, "cy": 240}')  # Python's json reads NaN
    with pytest.raises(DatasetError, match=r"cam\.json: field 'fx': nan is not a finite"):
        read_camera(path)
    path.write_text('{"fx": 600, "fy": Infinity, "cx": 320, "cy": 240}')
    with pytest.raises(DatasetError, match="field 'fy'"):
        read_camera(path)


@pytest.mark.parametrize("verb", ["predict", "eval"])
def test_bad_camera_exits_2_with_one_line(tmp_path, capsys, verb):
    path = tmp_path / "cam.json"
    path.write_text(json.dumps({"fx": 600, "fy": 600, "cx": 320, "cy": -1}))
    gt = tiny_dataset_json(tmp_path)
    args = (["predict", "random:resnet18_fpn", str(tmp_path), "--out", str(tmp_path / "o")]
            if verb == "predict" else
            ["eval", "--gt", str(gt), "--model", str(tmp_path / "m.pt")])  # fmt: skip
    assert main([*args, "--camera", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "field 'cy'" in err[0]
    assert main([*args, "--camera", "600,600,320"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fx,fy,cx,cy" in err[0]


def test_predict_refuses_a_camera_for_an_onnx_graph(tmp_path, capsys):
    args = [str(tmp_path / "s.onnx"), str(tmp_path), "--out", str(tmp_path / "o")]
    code = main(["predict", *args, "--camera", "1,1,1,1"])
    assert code == 2 and "ONNX" in capsys.readouterr().err


# -- through the students -------------------------------------------------------------------------


def test_keypoint_rcnn_student_lifts_through_the_predictors_camera(tmp_path):
    from orpose.predictor import StudentPredictor
    from orpose.student import StudentConfig, build_student

    torch.manual_seed(0)
    config = StudentConfig(backbone="resnet18_fpn", box_head_size=64, head_convs=(16,),
                           min_size=(64,), max_size=96, detections_per_img=2,
                           box_score_thresh=0.0, lifter_config={"hidden": 16})  # fmt: skip
    model = build_student(config).eval()
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    plain = StudentPredictor(model, "cpu").detect(image)
    cam = Intrinsics(300.0, 300.0, 60.0, 50.0)
    seen = StudentPredictor(model, "cpu", camera=cam).detect(image)
    assert torch.equal(plain["keypoints"], seen["keypoints"])  # 2D as before
    mapping = lift_mapping((128, 96), None, cam)
    soft, hard = (seen[k][..., :2] for k in ("keypoints_soft_branch", "keypoints_hard_branch"))
    with torch.no_grad():
        expected = model.keypoint_head.lift(mapping.apply(soft), mapping.apply(hard))
    assert torch.allclose(seen["keypoints3d"], expected, atol=1e-4)
    assert not torch.allclose(plain["keypoints3d"], seen["keypoints3d"], atol=1e-2)


def test_cpu_student_native_path_lifts_in_the_original_frames_pixels(shared, val500):
    """The CPU student on a 12x frame (native path), told the original size: 2D in the small
    frame's pixels as before, 3D = the lift of its branch keypoints mapped to the original."""
    from orpose.data.lowres import downsample
    from orpose.data.sources import read_image_rgb
    from orpose.predictor import StudentPredictor
    from orpose.student.topdown import TopDownConfig, TopDownStudent

    torch.manual_seed(0)
    student = TopDownStudent(TopDownConfig(lifter_config={"hidden": 64})).eval()
    student.config.pose_min_score = student.config.det_min_score = 0.0
    image = read_image_rgb(sorted((val500.parent / "images").iterdir())[0])
    small = downsample(image, 12)
    original = image.shape[1::-1]
    predictor = StudentPredictor(student, "cpu")
    before = predictor.detect(small)  # no original size: the small pixels as they are
    det = predictor.detect(small, original)
    assert student.is_native(torch.zeros(3, *small.shape[:2])) and len(det["keypoints"])
    assert torch.equal(before["keypoints"], det["keypoints"])  # 2D unchanged
    scale = torch.tensor(original, dtype=torch.float32) / torch.tensor(small.shape[1::-1])
    soft, hard = ((det[k][..., :2] + 0.5) * scale - 0.5
                  for k in ("keypoints_soft_branch", "keypoints_hard_branch"))  # fmt: skip
    with torch.no_grad():
        upsampled = student.head.lift(soft, hard)  # as the lifters see the upsampled frame
    assert torch.allclose(det["keypoints3d"], upsampled, atol=1e-3)
    assert not torch.allclose(before["keypoints3d"], det["keypoints3d"], atol=1.0)
    # the predictor's results carry the 3D of the original frame's pixels
    (first, *_) = predictor(small, original_size=original)
    assert np.allclose(first["keypoints3d"], det["keypoints3d"][0].numpy().ravel(), atol=0.06)


class _Sized:
    """A predictor that lifts (accepts_original_size) and records what it was told."""

    accepts_original_size = True

    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, image, original_size=None):
        self.calls.append((image.shape, original_size))
        return [{"category_id": 1, "bbox": [1.0, 1.0, 4.0, 8.0], "score": 0.8,
                 "keypoints": [2.0, 1.0, 0.9] * 17}]  # fmt: skip


def test_eval_and_predict_native_paths_tell_the_original_size(tmp_path):
    import cv2

    from orpose.data.coco import load_pose_dataset
    from orpose.evaluation.runner import predict_dataset
    from orpose.inference.pipeline import PredictOptions, run_predict

    gt = load_pose_dataset(tiny_dataset_json(tmp_path))  # 320x240 images
    predictor = _Sized()
    predict_dataset(predictor, gt, 10, tmp_path / "j.jsonl", native=True)
    assert predictor.calls == [((24, 32, 3), (320, 240))] * 2
    predictor = _Sized()
    predict_dataset(predictor, gt, 10, tmp_path / "j2.jsonl", native=False)
    assert predictor.calls == [((240, 320, 3), None)] * 2  # the paper's protocol: as before
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.png"), np.full((40, 53, 3), 90, np.uint8))  # a 12x frame
    predictor = _Sized()
    options = PredictOptions(out=tmp_path / "out", progress=False, native_lowres=True)
    run_predict(predictor, [str(frames)], options)
    assert predictor.calls == [((40, 53, 3), (636, 480))]
