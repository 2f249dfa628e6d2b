"""benchmarks/seed_spread.py: the mean and spread of a recipe's runs over seeds."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks/seed_spread.py"


@pytest.fixture(scope="module")
def seed_spread():
    spec = importlib.util.spec_from_file_location("seed_spread", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(path: Path, rows: list[tuple[str, float, float, float]]) -> Path:
    lines = ["scale,box_ap,keypoint_ap,mpjpe_mm"] + [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_mean_lowest_and_highest_per_scale(seed_spread, tmp_path, capsys):
    a = write(tmp_path / "a.csv", [("1x", 40.0, 45.0, 150.0), ("12x", 20.0, 24.0, 190.0)])
    b = write(tmp_path / "b.csv", [("1x", 42.0, 44.0, 160.0), ("12x", 26.0, 27.0, 200.0)])
    c = write(tmp_path / "c.csv", [("1x", 41.0, 46.0, 155.0)])  # no 12x: only 1x is shared
    table = seed_spread.spread([a, b], ["box_ap", "keypoint_ap", "mpjpe_mm"])
    assert table["12x"]["box_ap"] == (23.0, 20.0, 26.0)
    assert table["1x"]["mpjpe_mm"] == (155.0, 150.0, 160.0)
    assert list(seed_spread.spread([a, b, c], ["box_ap"])) == ["1x"]
    assert seed_spread.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "| mean | 41.0 / 44.5 / 155.0 | 23.0 / 25.5 / 195.0 |" in out
    assert "| spread | 40.0-42.0 / 44.0-45.0 / 150.0-160.0 |" in out


def test_a_missing_file_exits_2_naming_it(seed_spread, tmp_path, capsys):
    a = write(tmp_path / "a.csv", [("1x", 40.0, 45.0, 150.0)])
    assert seed_spread.main([str(a), str(tmp_path / "none.csv")]) == 2
    assert "none.csv" in capsys.readouterr().err
