"""``orpose predict``'s OpenMP waits: brief spins unless the user chose, set before torch loads."""

import subprocess
import sys

CHECK = (
    "import os, sys; from orpose.cpu_threads import brief_spins; "
    "done = brief_spins(); "
    "print(done, os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
)


def run(env: dict, code: str = CHECK) -> str:
    clean = {"PATH": "/usr/bin:/bin", **env}
    return subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True,
                          text=True, check=True).stdout.split()  # fmt: skip


def test_set_before_torch_and_only_when_the_user_chose_nothing():
    assert run({}) == ["True", "1000", "None"]
    assert run({"OMP_WAIT_POLICY": "ACTIVE"}) == ["False", "None", "ACTIVE"]
    assert run({"GOMP_SPINCOUNT": "50"}) == ["False", "50", "None"]
    # too late once torch is loaded: its OpenMP runtime has read the environment
    assert run({}, "import torch; " + CHECK) == ["False", "None", "None"]
