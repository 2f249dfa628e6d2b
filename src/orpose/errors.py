"""The errors orpose reports to its users: one base class, one subclass per kind of input.

Every stage raises these for problems caused by its input (a file, a field, a setting); the CLI
(:func:`orpose.cli.main`) catches the base class and prints one line naming the file and the
field, with exit code 2, instead of a traceback. They live here, at the bottom of the package,
so that library modules never import the command line.
"""

from __future__ import annotations


class OrposeError(Exception):
    """An error caused by the user's input: printed as one clear line, without a traceback."""


class UserError(OrposeError):
    """A bad command-line argument or a combination of options that cannot work."""


class DatasetError(OrposeError, ValueError):
    """A COCO/MVOR file, a prediction file or an image that cannot be used."""


class SourceError(OrposeError, ValueError):
    """An input of images, folders, videos or streams that cannot be read."""


class ImageFileError(OrposeError, OSError):
    """An image file that orpose will not decode: unreadable, not an image, or larger than the
    pixel limit (``ORPOSE_MAX_IMAGE_PIXELS``). An OSError too, so that the verbs that skip
    undecodable images (``predict``, ``label``, ``data downscale``) skip it with a warning."""


class ConfigError(OrposeError, ValueError):
    """A configuration file or ``--set`` override; the message names the file and the key."""


class ModelError(OrposeError):
    """A model file (ONNX, checkpoint, manifest entry) that is missing, tampered with or unsafe."""


class ExperimentError(OrposeError, ValueError):
    """An experiment spec that cannot be run."""


class MissingResourceError(OrposeError, FileNotFoundError):
    """A local model or data folder that is not where orpose was told to look."""
