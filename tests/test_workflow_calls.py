"""The workflow calls the stages' functions, not command lines: every step of the demo, the
experiment and adapt makes the call its recorded command makes (the verb, parsed, calls the same
function with the same arguments), and running steps parses no command line."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import pytest
import yaml

from conftest import tiny_dataset_json
from orpose import commands
from orpose.data import cli as data_cli
from orpose.evaluation import cli as evaluation_cli
from orpose.inference import cli as inference_cli
from orpose.lifting import cli as lifting_cli
from orpose.teacher import cli as teacher_cli
from orpose.training import cli as training_cli
from orpose.workflow import stages
from orpose.workflow.steps import Step, StepRunner, call

# The functions of typed arguments that the verbs call after parsing (module, name) ...
TYPED = [
    (data_cli, "subset"),
    (data_cli, "mvor_to_coco"),
    (data_cli, "show"),
    (lifting_cli, "lift_train"),
    (teacher_cli, "label"),
    (evaluation_cli, "evaluate_and_report"),
    (inference_cli, "predict"),
    (training_cli, "self_label"),
    (training_cli, "soup"),
]
# ... of which the demo calls all but these (the experiment's weight average of seeds)
EXPERIMENT_ONLY = {"soup"}
# ... and the verb's function of a namespace that stages.train reaches (module name, function name)
NAMESPACED = [("orpose.training.cli", "train_from_args")]
ORIGINALS = {name: getattr(module, name) for module, name in TYPED}  # before any patch
TRAIN_FIELDS = ("config", "out", "overrides", "device", "resume", "eval_sets", "allow_eval_overlap")


def _bound(function, args, kwargs) -> dict:
    """The arguments of a call by parameter name, defaults filled in (a tuple as a list); for
    ``**settings``, unset (None) entries left out (None means unset)."""
    bound = inspect.signature(function).bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = {k: list(v) if isinstance(v, tuple) else v for k, v in bound.arguments.items()}
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            arguments[name] = {k: v for k, v in arguments[name].items() if v is not None}
    return arguments


def _recorders(monkeypatch) -> tuple[list, set]:
    """Replace the stages' innermost functions by recorders; returns the record and the
    original typed functions."""
    import importlib

    calls: list = []
    for module, name in TYPED:
        original = ORIGINALS[name]

        def record(*args, _f=original, _n=name, **kwargs):
            calls.append((_n, _bound(_f, args, kwargs)))
            return 0

        monkeypatch.setattr(module, name, record)
    for module_name, name in NAMESPACED:
        module = importlib.import_module(module_name)

        def record_namespace(args: argparse.Namespace, _n=name):
            calls.append((_n, {k: getattr(args, k) for k in TRAIN_FIELDS}))
            return Path(args.out) / "last.pt", Path(args.out)

        monkeypatch.setattr(module, name, record_namespace)
    return calls, set(ORIGINALS.values())


def check_steps(steps: list[Step], monkeypatch) -> set[str]:
    """Each step's call does what its command line does; returns the functions reached."""
    calls, originals = _recorders(monkeypatch)
    reached = set()
    for step in steps:
        assert step.call is not None, step.name
        assert commands.run(step.argv) == 0, step.command
        from_command = list(calls)
        calls.clear()
        function = step.call.function
        if function in originals:  # a typed function: compare its arguments
            calls.append((function.__name__, _bound(function, step.call.args, step.call.kwargs)))
        else:  # a stage of orpose.workflow.stages: run it, up to the verb's function
            assert step.call() == 0
        assert len(from_command) == 1, step.command
        assert calls == from_command, step.command
        reached.add(calls[0][0])
        calls.clear()
    return reached


def test_the_demos_steps_make_the_calls_of_their_commands(monkeypatch):
    from orpose.workflow.demo import demo_steps
    from orpose.workflow.demo_options import DemoOptions

    reached = set()
    for options in ({}, {"mvor_frames": 3}, {"lifter": Path("l.pt"), "mvor": False}):
        for opts in (DemoOptions(out=Path("d"), **options),
                     DemoOptions.quick(out=Path("q"), **options)):  # fmt: skip
            reached |= check_steps(demo_steps(opts, Path("/s/data")), monkeypatch)
    every = {name for _, name in TYPED} | {name for _, name in NAMESPACED}
    assert reached == every - EXPERIMENT_ONLY  # every stage the workflow runs is checked


def test_the_experiments_steps_make_the_calls_of_their_commands(tmp_path, monkeypatch):
    from orpose.paths import configs_dir
    from orpose.workflow.experiment import experiment_steps, load_experiment
    from test_experiment_sets import SOUPED, SPEC, write

    shipped = [configs_dir() / f"experiments/{name}.yaml" for name in ("cpu", "demo_seeds")]
    (tmp_path / "souped").mkdir()
    reached = set()
    for path in (write(tmp_path, SPEC), write(tmp_path / "souped", SOUPED), *shipped):
        for allow in (False, True):
            spec = load_experiment(path)
            spec.allow_eval_overlap = allow
            reached |= check_steps(experiment_steps(spec, tmp_path / "o"), monkeypatch)
    assert reached >= EXPERIMENT_ONLY


@pytest.mark.parametrize(("stored_downscale", "temporal"), [(1.0, False), (12, False), (12, True)])
def test_adapts_steps_make_the_calls_of_their_commands(
    tmp_path, monkeypatch, stored_downscale, temporal
):
    from orpose.workflow.adapt import AdaptOptions, adapt_steps
    from test_adapt import run_folder

    run = run_folder(tmp_path)
    (tmp_path / "lifter.pt").write_bytes(b"")
    opts = AdaptOptions(run / "last.pt", [tmp_path / "frames"], tmp_path / "out",
                        stored_downscale=stored_downscale, allow_eval_overlap=True,
                        temporal=temporal)  # fmt: skip
    steps, _ = adapt_steps(opts)
    assert ("--temporal" in steps[0].argv) == temporal
    (tmp_path / "out").mkdir()
    (tmp_path / "out/adapt_config.yaml").write_text(yaml.safe_dump({}))  # written by run_adapt
    check_steps(steps, monkeypatch)


def parses_no_command_line(monkeypatch) -> list:
    """Record every command line parsed by orpose's parser (its top-level parse)."""
    parsed = []
    original = argparse.ArgumentParser.parse_known_args

    def parse_known_args(self, args=None, namespace=None):
        if self.prog == "orpose":
            parsed.append(args)
        return original(self, args, namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", parse_known_args)
    return parsed


def test_running_steps_parses_no_command_line(tmp_path, monkeypatch, capsys):
    data = tiny_dataset_json(tmp_path)
    parsed = parses_no_command_line(monkeypatch)
    monkeypatch.setattr("orpose.cli.main", lambda argv=None: pytest.fail("orpose.cli.main"))
    steps = [
        Step("subset", ["data", "subset", str(data), "--num", "1", "--out", "never parsed"],
             [tmp_path / "sub.json"], call=call(stages.subset, data, 1, tmp_path / "sub.json")),
        Step("show", ["data", "show"], [tmp_path / "pictures"],
             call=call(stages.show, tmp_path / "sub.json", tmp_path / "pictures", num=1)),
    ]  # fmt: skip
    records = StepRunner(tmp_path / "work").run_all(steps)
    assert [r.skipped for r in records] == [False, False]
    assert len(list((tmp_path / "pictures").glob("*.png"))) == 1
    assert parsed == []
    out = capsys.readouterr().out  # the progress lines name the recorded commands
    assert (
        "[subset] orpose data subset" in out and f"wrote {tmp_path / 'sub.json'}: 1 images" in out
    )


def test_a_stages_input_error_is_the_verbs_one_line(tmp_path, capsys):
    from orpose.workflow.steps import StepError

    missing = tmp_path / "missing.json"
    out = tmp_path / "o.json"
    step = Step("subset", ["data", "subset", str(missing), "--num", "1", "--out", "o.json"],
                [out], call=call(stages.subset, missing, 1, out))  # fmt: skip
    with pytest.raises(StepError, match=r"step 'subset' failed \(exit 2\); rerun: orpose data"):
        StepRunner(tmp_path / "w").run(step)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("orpose data: error: ") and "missing.json" in err[0]


def _verb_parser(verb: str) -> argparse.ArgumentParser:
    parser = commands.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[verb]


@pytest.mark.parametrize(
    ("verb", "function"),
    [("predict", inference_cli.predict), ("self-label", training_cli.self_label)],
)
def test_a_verbs_function_has_the_verbs_defaults(verb, function):
    """Every option of the verb is a parameter of its function, with the same default
    (``--no-X`` is ``X=True``)."""
    parameters = inspect.signature(function).parameters
    for action in _verb_parser(verb)._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name, default = action.dest, action.default
        if name.startswith("no_"):
            name, default = name[3:], not default
        assert name in parameters, f"{verb}: {action.dest}"
        if action.required or not action.option_strings:  # positional or required: no default
            continue
        assert parameters[name].default == default, f"{verb}: {action.dest}"
