"""Running a student on images: ``orpose predict`` (images, folders, videos, streams; privacy
mode, tracking, renders) and the onnxruntime runner of exported students.

The student as a function of an image is :mod:`orpose.predictor` (evaluation uses it
too); exporting, its agreement check and FLOP counts are :mod:`orpose.export`.
"""
