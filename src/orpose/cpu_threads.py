"""CPU threads that do not fight: what ``orpose predict`` sets before PyTorch is loaded.

PyTorch's OpenMP threads spin after each parallel region before they sleep (GNU OpenMP: 300,000
spins by default, far longer with ``OMP_WAIT_POLICY=ACTIVE``). One process alone gains a little
from it; two or three processes on the same cores (one per OR camera, or beside the hospital's
other software) lose most of their time to it: each one's spinning threads hold the cores the
other one's work waits for. ``orpose predict`` therefore lets its idle threads spin only
briefly (``GOMP_SPINCOUNT=1000``; ``KMP_BLOCKTIME=1`` ms for Intel's OpenMP), which keeps a
lone process within a few percent of its spinning speed while three side by side no longer
starve each other. Measured on the 2-core development CPU (docs/inference.md, 'Several
cameras'): three processes side by side 1.1 frames/s in all with spinning threads, 5.7 with brief
spins, 7.5 with none (``OMP_WAIT_POLICY=PASSIVE``, which costs a lone process 20%).
"""

from __future__ import annotations

import os
import sys

# what predict sets when the user set none of these (any one of them set: the user's choice)
BRIEF_SPINS = {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "1"}
_USER_CHOICES = ("OMP_WAIT_POLICY", *BRIEF_SPINS)


def brief_spins() -> bool:
    """Idle OpenMP threads spin briefly, then sleep (see the module), unless the user chose a
    wait policy or spin count. They are read when PyTorch loads its OpenMP runtime: False when
    it is too late (torch already imported) or the user chose."""
    if "torch" in sys.modules or any(name in os.environ for name in _USER_CHOICES):
        return False
    os.environ.update(BRIEF_SPINS)
    return True
