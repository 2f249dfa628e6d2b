"""orpose: label-free multi-person 2D/3D pose estimation for the operating room.

The package follows the data's path through the method: ``data`` -> ``teacher`` -> ``lifting``
-> ``student`` -> ``training`` -> ``evaluation`` -> ``inference``; stages talk through files.
"""

__version__ = "0.1.0"
