"""Without the shared folder, tests that need it are skipped, except under CI: there the run
stops at once with one line (tests/conftest.py), instead of passing with 57 tests skipped."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
NEEDS_SHARED = "def test_needs_shared(shared):\n    assert (shared / 'data').is_dir()\n"


def run_pytest(tmp_path: Path, ci: str | None, shared: Path) -> subprocess.CompletedProcess:
    """pytest on a one-test folder using the project's conftest, with $ORPOSE_SHARED=shared."""
    suite = tmp_path / "suite"
    suite.mkdir(exist_ok=True)
    shutil.copy(CONFTEST, suite / "conftest.py")
    (suite / "test_one.py").write_text(NEEDS_SHARED)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["ORPOSE_SHARED"] = str(shared)
    if ci is not None:
        env["CI"] = ci
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(suite)]
    return subprocess.run(cmd, cwd=suite, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci", ["true", "1"])
def test_missing_shared_folder_fails_a_ci_run_at_once_in_one_line(tmp_path, ci):
    missing = tmp_path / "no_shared_here"
    done = run_pytest(tmp_path, ci, missing)
    assert done.returncode != 0
    assert done.stdout.strip() == ""  # stopped before collecting: no test ran or was skipped
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(missing) in lines[0] and "ORPOSE_SHARED" in lines[0]


@pytest.mark.parametrize("ci", [None, "false"])
def test_missing_shared_folder_skips_outside_ci(tmp_path, ci):
    done = run_pytest(tmp_path, ci, tmp_path / "no_shared_here")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout and "not found" in done.stdout


def test_ci_run_with_the_shared_folder_runs_its_tests(tmp_path):
    (tmp_path / "shared" / "data").mkdir(parents=True)
    done = run_pytest(tmp_path, "true", tmp_path / "shared")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
