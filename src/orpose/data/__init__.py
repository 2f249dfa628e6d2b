"""Datasets (COCO pose files, MVOR), frame sources and the low-resolution transform."""
