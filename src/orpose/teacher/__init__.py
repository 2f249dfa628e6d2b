"""The teacher stage: ONNX person detector -> top-down 2D pose (-> 3D lifter), with test-time
augmentation, writing soft and hard pseudo-label sets in COCO format (``orpose label``).

Modules, in the order data flows through them: :mod:`manifest` (which models, checksums),
:mod:`runtime` (onnxruntime sessions), :mod:`detectors` and :mod:`pose` (one adapter per output
kind), :mod:`decode` (SimCC keypoints; heatmaps go through the codec of
:mod:`orpose.heatmaps`), :mod:`tta` (views, WBF, heatmap averaging), :mod:`teacher` (the
pipeline), :mod:`lift3d`, :mod:`writer` and :mod:`journal` (the file and its resume record),
:mod:`labelling` (the run), :mod:`cli`.
"""
