"""Static int8 quantization of the exported CPU student (ONNX Runtime's QDQ format).

``orpose export --int8`` writes, beside ``student.onnx`` and ``student_native.onnx``, their int8
copies ``student.int8.onnx`` and ``student.int8_native.onnx`` (with the native graph's size limit
in ``student.int8_native.json``): ``onnx_runner.load_onnx_student`` pairs them by name as it
pairs the fp32 graphs, so ``orpose predict`` and ``orpose bench`` take an int8 file like any
export.

How (:func:`quantize_graph`): ``onnxruntime.quantization.quantize_static`` with a
:class:`~onnxruntime.quantization.CalibrationDataReader` over real frames, ``QuantFormat.QDQ``,
uint8 activations and int8 weights per output channel (U8S8, what ONNX Runtime's x86 kernels
run with AVX-512 VNNI) kept to 7 bits (so that CPUs without VNNI do not overflow), MinMax
calibration. Only convolutions are quantized
(:data:`OP_TYPES`): the graph around them is box decoding, NMS, RoIAlign, heatmap decoding and
index arithmetic, which int8 would break and which costs little; the lifters (fully connected
layers, a small part of a person's cost) stay fp32 too.

The calibration frames are what the runner feeds each graph (the graph takes the whole image;
the crops are cut inside it): the full graph gets frames as they are and, one in two, degraded
by a privacy factor and upsampled back (``orpose predict --downscale S``, the paper's protocol);
the native graph gets the frames shrunk by the privacy factors (``--native-lowres``). The frames
come from the training sources (:data:`CALIBRATION_SETS` of the shared folder, or a folder or
COCO file given with ``--calibration``); images of the evaluation sets are refused by content
(:func:`refuse_eval_images`).

What loses accuracy in int8 stays fp32 (docs/inference.md, "An int8 student", has the
agreement with fp32 of each variant tried): the detector and the heatmap head
(:data:`DEFAULT_KEEP_FP32`), and the convolutions whose own int8 error, measured on calibration
frames (:func:`conv_sensitivity`), is above :data:`SENSITIVITY_LIMIT` (mostly depthwise ones),
each with the convolutions that feed it (:func:`float_island`): fp32 in a QDQ graph is the
fp32 weights (:func:`unquantize`) and fp32 inputs (:func:`bypass_qdq`).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orpose.data.lowres import degrade, downsample
from orpose.data.sources import IMAGE_SUFFIXES, coco_image_paths, list_images, read_image_rgb
from orpose.errors import UserError
from orpose.inference.onnx_runner import INPUT_NAME, NATIVE_SUFFIX, image_to_input

INT8_TAG = ".int8"  # student.onnx -> student.int8.onnx (and student.int8_native.onnx)
# folders of <shared>/data that training uses (unlabelled, pseudo-labelled by the teacher)
CALIBRATION_SETS = ("coco_person_unlabeled300/images", "or_x")
PRIVACY_SCALES = (8, 10, 12)  # the paper's low resolutions (its PAPER_SCALES above 1x)
OP_TYPES = ("Conv",)
# a convolution whose own int8 error (relative RMS of its output, conv_sensitivity) is above this
# stays fp32; measured on this many calibration frames
SENSITIVITY_LIMIT = 0.05
SENSITIVITY_FRAMES = 8
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear

# The parts that can stay fp32 (names for docs and tests); see part_nodes
PARTS = ("heatmap_head", "detector", "depthwise")
DEFAULT_KEEP_FP32: tuple[str, ...] = ("detector", "heatmap_head")

_HEATMAP_HEAD = re.compile(r"^/model/(native_|full_res_)?head/(soft|hard)(_\d+)?/")
# the trained detector and the full-resolution one (a flat graph holds both)
_DETECTOR = re.compile(r"^/model/(full_res_)?detector/body/")


def int8_path(onnx_path: Path | str) -> Path:
    """``student.onnx`` -> ``student.int8.onnx``."""
    path = Path(onnx_path)
    return path.with_name(path.stem + INT8_TAG + ".onnx")


def native_path(onnx_path: Path | str) -> Path:
    """The native low-resolution graph beside an export (see onnx_runner.load_onnx_student)."""
    path = Path(onnx_path)
    return path.with_name(path.stem + NATIVE_SUFFIX)


# -- which nodes -----------------------------------------------------------------------------------


def part_nodes(model, part: str) -> list[str]:
    """Names of the nodes of an exported CPU student graph (parsed ONNX) that make up ``part``:

    - ``heatmap_head``: the last 1x1 convolutions that give the heatmaps (both branches, every
      crop size, every head: the trained one, the full-resolution one where the student has it,
      the native one; their outputs go through the DARK sub-pixel refinement, a log of the
      heatmap);
    - ``detector``: every convolution of the person detectors (the trained one and, where the
      student has it, the full-resolution one);
    - ``depthwise``: every depthwise convolution (one input channel per group).
    """
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    if part == "heatmap_head":
        return [n.name for n in convs if _HEATMAP_HEAD.match(n.name)]
    if part == "detector":
        return [n.name for n in convs if _DETECTOR.match(n.name)]
    if part == "depthwise":
        shapes = {t.name: list(t.dims) for t in model.graph.initializer}
        return [n.name for n in convs if _group(n) > 1 and shapes.get(n.input[1], [0, 0])[1] == 1]
    raise ValueError(f"unknown part {part!r}; known: {', '.join(PARTS)}")


def _group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


# -- calibration frames ----------------------------------------------------------------------------


def default_calibration_sources() -> list[Path]:
    """The training sources of the shared folder that exist (none without it)."""
    from orpose.paths import shared_data

    found = (shared_data(rel, required=False) for rel in CALIBRATION_SETS)
    return [p for p in found if p is not None]


def source_images(source: Path) -> list[Path]:
    """The images of a calibration source: a folder (recursively), a COCO file's images or one
    image; errors are one line (exit 2)."""
    if source.is_dir():
        images = list_images(source)
    elif source.is_file() and source.suffix.lower() == ".json":
        images = list(coco_image_paths(source))
    elif source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        images = [source]
    elif not source.exists():
        raise UserError(f"--calibration: {source}: no such folder or file")
    else:
        raise UserError(f"--calibration: {source}: expected a folder of images or a COCO .json")
    if not images:
        raise UserError(f"--calibration: {source}: holds no image")
    return images


def spread(items: Sequence, count: int) -> list:
    """``count`` items spread evenly over ``items`` (all of them when there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[math.floor(i * len(items) / count)] for i in range(count)]


def calibration_images(sources: Sequence[Path], count: int) -> list[Path]:
    """``count`` images spread over the sources, taken from each in turn."""
    per_source = [source_images(Path(s)) for s in sources]
    if not per_source:
        raise UserError(
            "--int8: no calibration frames: the shared training images "
            f"({', '.join(CALIBRATION_SETS)}) were not found; give --calibration DIR_OR_COCO"
        )
    shares = [count // len(per_source) + (i < count % len(per_source))
              for i in range(len(per_source))]  # fmt: skip
    picked = [spread(images, n) for images, n in zip(per_source, shares, strict=True)]
    out = []
    for i in range(max(map(len, picked))):  # interleaved: any prefix mixes the sources
        out += [p[i] for p in picked if i < len(p)]
    return out


def refuse_eval_images(images: Sequence[Path], extra_eval_sets: Sequence[Path] = ()) -> None:
    """Calibration is training data: refuse images whose bytes are those of an image of the
    protected evaluation sets (coco_person_val500, the MVOR test frames) or of
    ``extra_eval_sets`` (the agreement check's images)."""
    import os

    from orpose.data.overlap import eval_set_images, file_sha256, protected_eval_sets

    by_size: dict[int, list[Path]] = {}
    for eval_set in [*protected_eval_sets(), *extra_eval_sets]:
        for path in eval_set_images(eval_set):
            if path.is_file():
                by_size.setdefault(path.stat().st_size, []).append(path)
    sizes = set(by_size)  # only files of the same size can have the same bytes
    digests: dict[str, Path] = {}  # of the evaluation images of the sizes met so far
    for image in images:
        size = os.stat(image).st_size
        if size not in sizes:
            continue
        for twin in by_size.pop(size, ()):
            digests.setdefault(file_sha256(twin), twin)
        twin = digests.get(file_sha256(image))
        if twin is not None:
            raise UserError(
                f"--calibration: {image} is the evaluation image {twin}: int8 calibration is "
                "training data; give frames of the training sources"
            )


Prepare = Callable[[np.ndarray], np.ndarray]


def full_graph_inputs() -> Callable[[int], Prepare]:
    """Frame ``i`` as the full graph gets it: as it is (even ``i``), or degraded by a privacy
    factor and upsampled back (odd ``i``, factors in turn)."""

    def prepare(i: int) -> Prepare:
        if i % 2 == 0:
            return _same
        return lambda image: degrade(image, PRIVACY_SCALES[(i // 2) % len(PRIVACY_SCALES)])

    return prepare


def native_graph_inputs(max_side: int) -> Callable[[int], Prepare]:
    """Frame ``i`` as the native graph gets it: shrunk by a privacy factor (in turn), more where
    its longer side would still exceed ``max_side``."""

    def prepare(i: int) -> Prepare:
        def shrink(image: np.ndarray) -> np.ndarray:
            scale = max(PRIVACY_SCALES[i % len(PRIVACY_SCALES)], max(image.shape[:2]) / max_side)
            small = downsample(image, scale)
            while max(small.shape[:2]) > max_side:  # floor() rounding at the limit
                scale *= 1.01
                small = downsample(image, scale)
            return small

        return shrink

    return prepare


def _same(image: np.ndarray) -> np.ndarray:
    return image


class FrameReader:
    """A ``CalibrationDataReader``: the graph's input for each frame, read when asked for."""

    def __init__(self, images: Sequence[Path], prepare: Callable[[int], Prepare]):
        self.images, self.prepare = list(images), prepare
        self._next: Iterator[dict] = self._inputs()

    def _inputs(self) -> Iterator[dict]:
        for i, path in enumerate(self.images):
            image = self.prepare(i)(read_image_rgb(path))
            yield {INPUT_NAME: image_to_input(image)}

    def get_next(self) -> dict | None:
        return next(self._next, None)

    def inputs(self) -> Iterator[dict]:
        """The inputs again, from the first frame (apart from the reader's position)."""
        return self._inputs()

    def rewind(self) -> None:
        self._next = self._inputs()


# -- quantization ----------------------------------------------------------------------------------


@dataclass
class Int8Graph:
    """What :func:`quantize_graph` wrote."""

    path: Path
    quantized: int  # convolutions in int8
    kept_fp32: dict[str, int]  # why -> convolutions left in fp32 for that reason
    sensitivity: dict[str, float] = field(default_factory=dict)  # conv -> local int8 error


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization logs a pre-processing advice at WARNING on the root logger, and
    its calibration sessions warn that the graph's optional ``min_score`` input has a default
    (onnxruntime's own log)."""
    import onnxruntime as ort

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        yield
    finally:
        root.setLevel(level)
        ort.set_default_logger_severity(2)


def quantize_graph(
    fp32_path: Path | str,
    out_path: Path | str,
    reader: FrameReader,
    keep_fp32: Sequence[str] = DEFAULT_KEEP_FP32,
    limit: float | None = SENSITIVITY_LIMIT,
    sample_frames: int = SENSITIVITY_FRAMES,
) -> Int8Graph:
    """Static QDQ int8 copy of an exported student graph, calibrated on ``reader``'s frames.

    The convolutions of the ``keep_fp32`` parts (:func:`part_nodes`) stay fp32, and so do those
    whose own int8 error, measured on ``sample_frames`` of the frames
    (:func:`conv_sensitivity`), is above ``limit`` (None: none is measured); each of them on
    fp32 inputs (:func:`float_island`)."""
    import onnx

    from orpose.export.branch_weights import subgraphs

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    fp32 = onnx.load(str(fp32_path))
    if any(n.op_type in OP_TYPES for g in subgraphs(fp32.graph) for n in g.node):
        # the quantizer and the steps below read the top level only
        raise ValueError(f"{fp32_path}: convolutions in If branches; quantize the flat export "
                         "(export_onnx(..., skip_empty_crops=False))")  # fmt: skip
    opset = next((o.version for o in fp32.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise UserError(f"--int8: the graph has opset {opset}; export with --opset {MIN_OPSET} "
                        "or higher (per-channel int8 weights)")  # fmt: skip
    convs = {n.name for n in fp32.graph.node if n.op_type in OP_TYPES}
    kept = {part: set(part_nodes(fp32, part)) for part in keep_fp32}
    producers, island = float_island(fp32, set().union(*kept.values()))
    excluded = set().union(*kept.values()) | producers
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _quantize_static(fp32_path, out_path, reader, sorted(excluded))
    model = onnx.load(str(out_path))
    bypass_qdq(model, excluded | island)
    kept["unseen"] = unseen_convs(model) - excluded
    sensitivity: dict[str, float] = {}
    if limit is not None:
        samples = list(itertools.islice(reader.inputs(), sample_frames))
        sensitivity = conv_sensitivity(fp32_path, model, samples)
        kept["measured"] = {name for name, error in sensitivity.items() if error > limit}
    chosen = set().union(*kept.values())
    producers, island = float_island(fp32, chosen)
    kept["their_producers"] = producers - chosen
    excluded = chosen | producers
    unquantize(model, fp32, excluded)
    bypass_qdq(model, excluded | island)
    drop_unused(model)
    onnx.save(model, str(out_path))
    del model
    check_calibrated(out_path)
    return Int8Graph(out_path, len(convs - excluded),
                     {why: len(names) for why, names in kept.items()}, sensitivity)  # fmt: skip


def unseen_convs(model) -> set[str]:
    """Convolutions that read or write an activation that no calibration frame reached (a
    crop size no person had: its range is empty, see :func:`uncalibrated_tensors`)."""
    empty = set(uncalibrated_tensors(model))
    if not empty:
        return set()
    producer = {out: node for node in model.graph.node for out in node.output}
    constants = {t.name for t in model.graph.initializer}
    out = set()
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        if _qdq_source(producer, node.input[0], constants) in empty or node.output[0] in empty:
            out.add(node.name)
    return out


def _quantize_static(fp32_path: Path, out_path: Path, reader, excluded: list[str]) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    reader.rewind()
    with _quiet_quantizer():
        quantize_static(
            str(fp32_path),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(OP_TYPES),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # 7-bit weights: without AVX-512 VNNI (an AVX2 CPU) ONNX Runtime's U8S8 kernels sum
            # pairs of u8 x s8 products into 16 bits, which 8-bit weights overflow (ONNX
            # Runtime's quantization docs, "saturation"); a file made on one CPU runs on others
            reduce_range=True,
            nodes_to_exclude=excluded,
            calibrate_method=CalibrationMethod.MinMax,
        )


def _qdq_source(producer: dict, tensor: str, constants: set[str]) -> str | None:
    """The fp32 tensor in front of an activation's QuantizeLinear -> DequantizeLinear pair
    that gives ``tensor`` (None: ``tensor`` is not such a pair's output)."""
    dq = producer.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in constants:
        return None
    q = producer.get(dq.input[0])
    return q.input[0] if q is not None and q.op_type == "QuantizeLinear" else None


def conv_sensitivity(fp32_path: Path, model, samples: Sequence[dict]) -> dict[str, float]:
    """Each int8 convolution of ``model`` (QDQ) alone: the relative error (RMS over RMS) of its
    output when its input is quantized with its own scale and its weights are its int8 ones,
    against fp32, on the fp32 activations of ``samples`` (graph inputs).

    Measured in one onnxruntime session: the fp32 graph with, beside each such convolution, its
    int8 twin reading the same input through QuantizeLinear/DequantizeLinear, and the sums of
    squares of the twin's difference and of the fp32 output as extra outputs (how ONNX Runtime's
    calibrator adds its ReduceMin/ReduceMax nodes).

    Why measure: in these networks (PP-PicoDet, PP-TinyPose, folded batch norm) some depthwise
    convolutions multiply input channels of a tiny range by large weights, so one activation
    scale per tensor leaves those channels a few levels: their output is off by 10-90%, where
    most convolutions' is off by 1-3% (docs/inference.md)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    twins = {}  # conv -> (its input's scale, zero point, int8 weights dequantized)
    for node in model.graph.node:
        if node.op_type != "Conv" or _qdq_source(producer, node.input[0], set(constants)) is None:
            continue
        w_dq = producer.get(node.input[1])
        if w_dq is None or w_dq.op_type != "DequantizeLinear" or w_dq.input[0] not in constants:
            continue  # weights computed in the graph: not measured
        dq = producer[node.input[0]]
        twins[node.name] = (constants[dq.input[1]], constants[dq.input[2]],
                            _dequantize(w_dq, constants))  # fmt: skip
    graph = onnx.load(str(fp32_path))
    sums: list[tuple[str, str, str]] = []  # conv, error output, total output
    added = []
    for node in list(graph.graph.node):
        if node.name not in twins:
            continue
        scale, zero, weight = twins[node.name]
        tag = f"{node.name}/int8_twin"
        names = {k: f"{tag}/{k}" for k in ("s", "z", "w", "q", "dq", "y", "d", "err", "tot")}
        for key, value in (("s", scale), ("z", zero)):
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value)
            tensor.name = names[key]
            graph.graph.initializer.append(tensor)
        graph.graph.initializer.append(numpy_helper.from_array(weight, names["w"]))
        x, y = node.input[0], node.output[0]
        conv_inputs = [names["dq"], names["w"], *node.input[2:]]
        scale_zero = [names["s"], names["z"]]
        added += [
            helper.make_node("QuantizeLinear", [x, *scale_zero], [names["q"]]),
            helper.make_node("DequantizeLinear", [names["q"], *scale_zero], [names["dq"]]),
            helper.make_node("Conv", conv_inputs, [names["y"]], name=tag),
            helper.make_node("Sub", [names["y"], y], [names["d"]]),
            helper.make_node("ReduceSumSquare", [names["d"]], [names["err"]], keepdims=0),
            helper.make_node("ReduceSumSquare", [y], [names["tot"]], keepdims=0),
        ]
        added[-4].attribute.extend(node.attribute)
        sums.append((node.name, names["err"], names["tot"]))
    graph.graph.node.extend(added)
    del graph.graph.output[:]
    for _, err, tot in sums:
        graph.graph.output.extend([helper.make_empty_tensor_value_info(err),
                                   helper.make_empty_tensor_value_info(tot)])  # fmt: skip
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(graph.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    del graph
    names = [n for _, err, tot in sums for n in (err, tot)]
    error = np.zeros(len(sums))
    total = np.zeros(len(sums))
    for sample in samples:
        values = np.asarray(session.run(names, sample), dtype=np.float64).reshape(-1, 2)
        error += values[:, 0]
        total += values[:, 1]
    measured = zip((conv for conv, _, _ in sums), error, total, strict=True)
    return {conv: float(np.sqrt(e / t)) for conv, e, t in measured if t > 0}


def _dequantize(dq, constants: dict) -> np.ndarray:
    """The fp32 values of a DequantizeLinear of constants (per tensor or per channel)."""
    from onnx import numpy_helper

    value = numpy_helper.to_array(constants[dq.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(constants[dq.input[1]]).astype(np.float32)
    zero = (numpy_helper.to_array(constants[dq.input[2]]).astype(np.float32)
            if len(dq.input) > 2 else np.zeros_like(scale))  # fmt: skip
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and value.ndim > 1:
        shape = [1] * value.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (value - zero) * scale


def unquantize(model, fp32, names: set[str]) -> None:
    """Turn the named convolutions of a QDQ graph back to fp32: their fp32 weights and bias
    (copied from the graph ``fp32``) instead of the dequantized int8 ones."""
    import onnx

    originals = {n.name: n for n in fp32.graph.node if n.name in names}
    have = {t.name for t in model.graph.initializer}
    produced = {out for node in model.graph.node for out in node.output}
    fp32_constants = {t.name: t for t in fp32.graph.initializer}
    for node in model.graph.node:
        if node.name not in names or node.name not in originals:
            continue
        for i, tensor in enumerate(originals[node.name].input):
            if i == 0 or tensor not in fp32_constants:
                continue
            # the quantizer names a bias's DequantizeLinear output after the fp32 bias
            name = tensor + "_fp32" if tensor in produced else tensor
            node.input[i] = name
            if name not in have:
                constant = onnx.TensorProto()
                constant.CopyFrom(fp32_constants[tensor])
                constant.name = name
                model.graph.initializer.append(constant)
                have.add(name)


def drop_unused(model) -> None:
    """Remove QuantizeLinear/DequantizeLinear nodes nobody reads, then unread initializers."""
    outputs = {o.name for o in model.graph.output}
    while True:
        read = {i for node in model.graph.node for i in node.input} | outputs
        unread = [n for n in model.graph.node
                  if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                  and not any(o in read for o in n.output)]  # fmt: skip
        if not unread:
            break
        for node in unread:
            model.graph.node.remove(node)
    read = {i for node in model.graph.node for i in node.input} | outputs
    unused = [t for t in model.graph.initializer if t.name not in read]
    for tensor in unused:
        model.graph.initializer.remove(tensor)


# nodes whose every input is data (the others: data first, then shapes, indices, boxes, scales)
_DATA_INPUTS_ALL = frozenset({"Add", "Sub", "Mul", "Div", "Concat", "Sum", "Max", "Min", "Mean"})


def float_island(model, kept: set[str]) -> tuple[set[str], set[str]]:
    """What must stay fp32 for the ``kept`` nodes to see fp32 inputs: the convolutions that
    produce their inputs (through any other nodes: activations, sums, splits, shuffles,
    resizes) and those other nodes. Returns (producer convolutions, nodes in between).

    Why: a quantized convolution quantizes its output for every reader (QDQ), so a kept node
    fed by one would still see int8 values, the very error it is kept from."""
    producer = {out: node for node in model.graph.node for out in node.output}
    constants = {t.name for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    producers: set[str] = set()
    island: set[str] = set()
    stack = [i for name in kept if name in nodes for i in nodes[name].input[:1]]
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor in constants:
            continue
        seen.add(tensor)
        node = producer.get(tensor)
        if node is None:
            continue
        if node.op_type == "Conv":
            producers.add(node.name)
        elif node.name and node.name not in island:  # (the exporter names every node)
            island.add(node.name)
            stack.extend(node.input if node.op_type in _DATA_INPUTS_ALL else node.input[:1])
    return producers, island


def bypass_qdq(model, names: set[str]) -> int:
    """Let the named nodes read the fp32 tensors in front of the activations' QDQ pairs (the
    pairs left without readers go with :func:`drop_unused`). Returns the inputs rewired."""
    producer = {out: node for node in model.graph.node for out in node.output}
    constants = {t.name for t in model.graph.initializer}
    rewired = 0
    for node in model.graph.node:
        if node.name not in names or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for i, tensor in enumerate(node.input):
            source = _qdq_source(producer, tensor, constants)
            if source is not None:
                node.input[i] = source
                rewired += 1
    return rewired


def uncalibrated_tensors(model) -> list[str]:
    """Activations that no calibration frame reached (e.g. a crop size that no person had):
    the quantizer gives their empty range the scale 1 and zero point 0."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    weights = set(inits)
    out = []
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in weights:
            continue
        scale, zero = (inits.get(n) for n in [*node.input[1:3], "", ""][:2])
        if scale is None or zero is None:
            continue
        if np.all(numpy_helper.to_array(scale) == 1.0) and not numpy_helper.to_array(zero).any():
            out.append(node.input[0])
    return out


def check_calibrated(path: Path) -> None:
    """Refuse an int8 graph with activations that no calibration frame reached (one line)."""
    import onnx

    missing = uncalibrated_tensors(onnx.load(str(path)))
    if missing:
        path.unlink(missing_ok=True)
        raise UserError(
            f"--int8: {len(missing)} activation(s) of {path.name} saw no calibration frame "
            f"(e.g. {missing[0]}): give more frames with people of every size "
            "(--calibration, --calibration-count)"
        )


def quantize_student(
    onnx_path: Path,
    images: Sequence[Path],
    native_max_side: int = 0,
    keep_fp32: Sequence[str] = DEFAULT_KEEP_FP32,
    flat_graph: Path | None = None,
) -> list[Int8Graph]:
    """int8 copies of an export (and of its native graph when ``native_max_side`` > 0), named
    after ``onnx_path``; ``flat_graph``: the same student exported without ``If`` branches
    (``export_onnx(..., skip_empty_crops=False)``), which is what gets quantized where
    ``onnx_path`` has its crop sizes as branches."""
    from orpose.data.coco import write_json_atomic

    graphs = [quantize_graph(flat_graph or onnx_path, int8_path(onnx_path),
                             FrameReader(images, full_graph_inputs()), keep_fp32)]  # fmt: skip
    native = native_path(int8_path(onnx_path))
    if native_max_side > 0:
        reader = FrameReader(images, native_graph_inputs(native_max_side))
        graphs.append(quantize_graph(native_path(onnx_path), native, reader, keep_fp32))
        write_json_atomic(native.with_suffix(".json"), {"native_max_side": native_max_side})
    else:  # an earlier export's native graph would be paired with this one
        native.unlink(missing_ok=True)
        native.with_suffix(".json").unlink(missing_ok=True)
    return graphs
