"""Export of the student, and what checks and measures an exported graph.

- :mod:`orpose.export.export`: the student to ONNX (dynamic image size) and TorchScript;
- :mod:`orpose.export.agreement`: does the ONNX graph give the PyTorch student's results, on
  real images (onnxruntime, through :mod:`orpose.inference.onnx_runner`);
- :mod:`orpose.export.int8`: static int8 (QDQ) copies of the CPU student's graphs, calibrated
  on training frames (``orpose export --int8``);
- :mod:`orpose.export.flops`: multiply-accumulates of the student and of ONNX graphs;
- :mod:`orpose.export.cli`: the ``orpose export`` verb.

Above inference: exporting runs the exported graph with inference's runner; inference itself
never imports this package (tests/test_architecture.py).
"""
