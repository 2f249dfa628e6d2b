"""orpose: label-free multi-person 2D/3D pose estimation for the operating room.

The package is a house whose floors follow the data's path through the method; stages talk
through files (docs/architecture.md). From the bottom:

1. base: errors, atomic writes, output places checked before work (``outputs``), JSON lines,
   paths (and ``{shared}``), the skeleton, the heatmap codec of the teacher and the students
   (``heatmaps``: Gaussian targets, DARK decoding), downscale factors as names (``scales``),
   the config layer (numbers of the command line too), the model manifest (``manifest.py`` +
   ``models.yaml``), onnxruntime sessions, safe checkpoint reading and writing
   (``safe_checkpoint``), torchvision's private helpers behind one import
   (``compat_torchvision``) and drawing (``viz``);
2. ``data``: COCO/MVOR files, image sources, low-resolution degradation;
3. ``lifting``: the 2D-to-3D lifters: orpose's, trained on motion capture alone, and the
   official ORPose one (Human3.6M statistics);
4. ``teacher``: ONNX detector + pose model -> pseudo labels (3D through a trained lifter);
5. ``student``: the student families and their registry;
6. ``checkpoints`` and ``predictor``: the students' checkpoint formats (orpose, torchvision,
   official detectron2), which build students, and the student as a function of an image;
7. ``training``: distillation of the pseudo labels into a student;
8. ``evaluation``: COCO AP and MPJPE, of files or of a student run on degraded images;
9. ``inference``: ``orpose predict`` (images, videos, streams; privacy mode; tracking) and the
   onnxruntime runner of exported students;
10. ``export``: ONNX/TorchScript export, its agreement check and FLOP counts;
11. ``workflow``, ``commands`` and ``api``: ``orpose demo`` / ``experiment`` / ``bench``, which
    run the verbs of every stage, the verbs' dispatch, and the Python API;
12. ``cli``: the entry point.

The Python API (docs/api.md), imported on first use so that ``import orpose`` stays light:
``orpose.load(path)`` -> a :class:`~orpose.api.Predictor`, whose call on an image (a path, an
RGB array, a PIL image) gives the people ``orpose predict`` writes (:class:`~orpose.api.Person`:
box, score, 2D keypoints with confidences, 3D in mm); ``orpose.load_teacher``,
``orpose.evaluate`` and ``orpose.train`` for the other stages.

A module imports only from its own floor and the floors below, and no module imports itself
through others (:data:`FLOORS`, checked by tests/test_architecture.py). Lifting sits below the
teacher because the teacher's 3D labels use the trained lifter, while the lifter needs no teacher.
"""

from orpose.lazy import lazy_exports

__version__ = "0.1.0"

# The Python API (orpose/api.py), imported on first use: torch loads only when a model does.
_API = ("Person", "Predictor", "TeacherPredictor", "evaluate", "load", "load_teacher", "train")
__all__ = ["FLOORS", "__version__", *_API]
__getattr__ = lazy_exports(__name__, dict.fromkeys(_API, "orpose.api"))

# The floors, bottom first: module names and the packages whose modules all belong to a floor.
# No name lies inside another (a package's modules are all on its floor); "orpose" is this
# module only.
FLOORS: tuple[tuple[str, ...], ...] = (
    (
        "orpose",
        "orpose.errors",
        "orpose.lazy",
        "orpose.atomic",
        "orpose.jsonl",
        "orpose.paths",
        "orpose.skeleton",
        "orpose.heatmaps",
        "orpose.scales",
        "orpose.config",
        "orpose.outputs",
        "orpose.registry",
        "orpose.manifest",
        "orpose.onnx_session",
        "orpose.cpu_threads",
        "orpose.safe_checkpoint",
        "orpose.compat_torchvision",
        "orpose.viz",
    ),
    ("orpose.data",),
    ("orpose.lifting",),
    ("orpose.teacher",),
    ("orpose.student",),
    ("orpose.checkpoints", "orpose.predictor"),
    ("orpose.training",),
    ("orpose.evaluation",),
    ("orpose.inference",),
    ("orpose.export",),
    ("orpose.workflow", "orpose.commands", "orpose.api"),
    ("orpose.cli",),
)
