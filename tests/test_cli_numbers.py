"""Every number of the command line is checked at the parser (issue #27, class 2 and 6).

The options are found by walking the real ``orpose`` parser, so that a new numeric option is
covered by default: one declared with a plain ``type=float`` accepts ``nan`` and fails here. The
checked types come from :func:`orpose.config.cli_number` / :func:`orpose.config.cli_numbers`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import pytest
import yaml

from orpose.cli import main
from orpose.commands import build_parser
from orpose.config import cli_number
from orpose.errors import ConfigError
from orpose.teacher.config import load_config

NON_FINITE = ("nan", "inf", "-inf", "NaN", "1e308", "-1e308", "1e400")
HUGE_INTEGER = "1" + "0" * 30


def numeric_options(parser: argparse.ArgumentParser, verb: tuple[str, ...] = ()):
    """``(verb words, action)`` of every option whose value is a number, in every subparser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from numeric_options(sub, (*verb, name))
        elif action.type in (int, float) or getattr(action.type, "checked_number", False):
            yield verb, action


def refusal(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[int | None, str]:
    """Exit code and stderr of parsing ``argv`` (None: it was accepted). Nothing is run."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parser.parse_args(argv)
        except SystemExit as done:
            return done.code, err.getvalue()
    return None, err.getvalue()


def problems_with(
    parser: argparse.ArgumentParser, values=NON_FINITE, checked_only: bool = False
) -> list[str]:
    """Every option that takes one of ``values`` or refuses it otherwise than with argparse's
    one line ``PROG VERB: error: argument --x: ...`` and exit code 2."""
    found = []
    for verb, action in numeric_options(parser):
        if checked_only and not getattr(action.type, "checked_number", False):
            continue
        option = action.option_strings[-1] if action.option_strings else None
        if option is None:
            found.append(f"{' '.join(verb)} {action.dest}: a numeric positional argument")
            continue
        for value in values:
            code, err = refusal(parser, [*verb, f"{option}={value}"])  # "-inf" is a value
            last = err.strip().splitlines()[-1] if err.strip() else ""
            prog = " ".join((parser.prog, *verb))
            if code != 2 or not last.startswith(f"{prog}: error: argument {option}"):
                found.append(f"{' '.join(verb)} {option} {value}: exit {code}, {last!r}")
    return found


def test_every_numeric_option_refuses_non_finite_and_huge_values():
    assert problems_with(build_parser()) == []


def test_every_numeric_option_goes_through_the_checked_types():
    """No plain int/float: a checked type also bounds integers (a camera index of 30 digits)."""
    plain = [
        f"{' '.join(verb)} {action.option_strings[-1]}"
        for verb, action in numeric_options(build_parser())
        if not getattr(action.type, "checked_number", False)
    ]
    assert plain == []
    checked = [
        (verb, action)
        for verb, action in numeric_options(build_parser())
        if getattr(action.type, "checked_number", False)
    ]
    assert len(checked) > 50
    huge = (HUGE_INTEGER, f"-{HUGE_INTEGER}")
    assert problems_with(build_parser(), huge, checked_only=True) == []


def test_every_default_is_within_its_range():
    outside = []
    for verb, action in numeric_options(build_parser()):
        if action.default is None or not getattr(action.type, "checked_number", False):
            continue
        defaults = action.default if isinstance(action.default, list) else [action.default]
        for value in defaults:
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            try:
                action.type(text)
            except argparse.ArgumentTypeError as err:
                outside.append(f"{' '.join(verb)} {action.option_strings[-1]}: {err}")
    assert outside == []


def test_the_walk_catches_a_plain_float_option():
    """What the first test relies on: a new option declared ``type=float`` is reported."""
    parser = argparse.ArgumentParser(prog="orpose")
    verbs = parser.add_subparsers(dest="command")
    probe = verbs.add_parser("probe")
    probe.add_argument("--factor", type=float)
    probe.add_argument("--checked", type=cli_number(float, min=1, max=10))
    found = problems_with(parser)
    assert found and all(line.startswith("probe --factor") for line in found)


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["predict", "m.pt", "x.jpg", "--downscale", "nan", "--overlay"], "--downscale"),
        (["predict", "m.pt", "x.jpg", "--downscale", "0.5"], "--downscale"),
        (["predict", "m.pt", "x.jpg", "--score-threshold", "2"], "--score-threshold"),
        (["predict", "m.pt", "x.jpg", "--max-frames", "-3"], "--max-frames"),
        (["predict", "m.pt", "x.jpg", "--max-frames", "0"], "--max-frames"),
        (["predict", "m.pt", "x.jpg", "--plot3d-every", "-1"], "--plot3d-every"),
        (["predict", "m.pt", "x.jpg", "--focal", "0"], "--focal"),
        (["predict", "m.pt", "x.jpg", "--root-depth", "inf"], "--root-depth"),
        (["eval", "--gt", "g.json", "--model", "m.pt", "--scales", "0"], "--scales"),
        (["eval", "--gt", "g.json", "--model", "m.pt", "--scales", "-1"], "--scales"),
        (["eval", "--gt", "g.json", "--model", "m.pt", "--scales", "1", "nan"], "--scales"),
        (["eval", "--gt", "g.json", "--model", "m.pt", "--limit", "-1"], "--limit"),
        (["label", "x.jpg", "--out", "l.json", "--det-scales", "nan"], "--det-scales"),
        (["label", "x.jpg", "--out", "l.json", "--det-scales", "0.0001"], "--det-scales"),
        (["label", "x.jpg", "--out", "l.json", "--det-scales", "1,1000"], "--det-scales"),
        (["label", "x.jpg", "--out", "l.json", "--pose-scales", "inf"], "--pose-scales"),
        (["label", "x.jpg", "--out", "l.json", "--min-score", "nan"], "--min-score"),
        (["label", "x.jpg", "--out", "l.json", "--downscale", "nan"], "--downscale"),
        (["data", "downscale", "x.jpg", "--out", "o", "--scale", "0"], "--scale"),
        (["data", "mvor-to-coco", "--out", "o.json", "--cameras", "0"], "--cameras"),
        (["data", "mvor-to-coco", "--out", "o.json", "--cameras", "1", "9" * 30], "--cameras"),
        (["data", "mvor-to-coco", "--out", "o.json", "--days", "-1"], "--days"),
        (["data", "mvor-to-coco", "--out", "o.json", "--days", "2.5"], "--days"),
    ],
)
def test_values_out_of_range_stop_at_the_parser(argv, option, capsys):
    """Exit code 2 and one error line naming the option; nothing runs (no model is read)."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"orpose {argv[0]}") and f"error: argument {option}: " in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_values_in_range_are_taken():
    args = build_parser().parse_args(
        ["predict", "m.pt", "x.jpg", "--downscale", "12", "--score-threshold", "0",
         "--root-depth", "auto", "--focal", "538.6", "--plot3d-every", "0"]
    )  # fmt: skip
    assert (args.downscale, args.score_threshold, args.root_depth) == (12.0, 0.0, "auto")
    args = build_parser().parse_args(
        ["label", "x.jpg", "--out", "l.json", "--det-scales", "1,1.5", "--min-score", "0.3"]
    )
    assert args.det_scales == (1.0, 1.5) and args.min_person_score == 0.3


# -- the teacher's YAML values, checked where the teacher config is loaded --


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("dark_kernel: 0", "dark_kernel: must be >= 1"),
        ("dark_kernel: 4", "dark_kernel: must be odd"),
        ("dark_kernel: -3", "dark_kernel: must be >= 1"),
        ("det_max_detections: -1", "det_max_detections: must be >= 1"),
        ("det_min_score: 2", "det_min_score: must be <= 1"),
        ("wbf_iou: 7", "wbf_iou: must be <= 1"),
        ("wbf_iou: 0", "wbf_iou: must be > 0"),
        ("det_scales: [1, .nan]", "det_scales[1]: expected a finite number"),
        ("pose_scales: [1000]", "pose_scales: must be <= 4"),
        ("det_scales: []", "det_scales: expected at least one scale"),
        ("min_person_score: .inf", "min_person_score: expected a finite number"),
    ],
)
def test_teacher_yaml_values_are_checked_naming_file_and_key(tmp_path, text, key):
    path = tmp_path / "teacher.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config("full", path)
    assert str(caught.value).startswith(f"{path}: {key}")


def test_label_with_a_bad_teacher_yaml_stops_in_one_line(tmp_path, capsys):
    image = tmp_path / "x.jpg"
    image.write_bytes(b"not looked at")
    config = tmp_path / "teacher.yaml"
    config.write_text(yaml.safe_dump({"dark_kernel": 4}))
    argv = ["label", str(image), "--out", str(tmp_path / "l.json"), "--config", str(config)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"orpose label: error: {config}: dark_kernel: must be odd, got 4"]
    assert not Path(tmp_path / "l.json").exists()
