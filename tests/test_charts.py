"""The model-versus-scale chart draws each model's metrics.csv values, in the panels asked for."""

from __future__ import annotations

import pytest

from orpose.viz import charts


def test_size_panels_plot_each_models_medium_and_large_keypoint_ap(tmp_path, monkeypatch):
    drawn = {}
    save = charts.save_figure

    def keep_axes(fig, path):
        drawn["axes"] = fig.axes
        return save(fig, path)

    monkeypatch.setattr(charts, "save_figure", keep_axes)
    rows = {
        "teacher": [{"scale": "12x", "keypoint_apm": "3.1", "keypoint_apl": "25.8"},
                    {"scale": "1x", "keypoint_apm": "56.7", "keypoint_apl": "69.2"}],
        "student": [{"scale": "1x", "keypoint_apm": "57.3", "keypoint_apl": "69.3"},
                    {"scale": "12x", "keypoint_apm": "5.6", "keypoint_apl": "32.7"}],
    }  # fmt: skip
    path = charts.plot_models_versus_scale(
        rows, tmp_path / "c.png", "t", charts.KEYPOINT_AP_BY_SIZE
    )
    assert path.stat().st_size > 0
    medium, large = drawn["axes"]
    assert medium.get_title() == "Keypoint AP, medium people (%)"
    medium_lines = {line.get_label(): line for line in medium.get_lines()}
    large_lines = {line.get_label(): line for line in large.get_lines()}
    assert list(large_lines["student"].get_xdata()) == [1.0, 12.0]  # sorted by scale
    assert list(large_lines["student"].get_ydata()) == [69.3, 32.7]
    assert list(medium_lines["teacher"].get_ydata()) == [56.7, 3.1]


def test_a_row_without_a_panels_column_names_it(tmp_path):
    with pytest.raises(KeyError, match="keypoint_apm"):
        charts.plot_models_versus_scale(
            {"m": [{"scale": "1x", "keypoint_ap": "1"}]},
            tmp_path / "x.png",
            panels=charts.KEYPOINT_AP_BY_SIZE,
        )
