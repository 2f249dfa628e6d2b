"""onnxruntime sessions: one thread pool shared by all the sessions of a process, on request."""

import subprocess
import sys
import textwrap

import pytest


def _sessions(tmp_path, body: str) -> str:
    """Run ``body`` in a fresh process (the pool belongs to onnxruntime's environment, made once
    per process) with ``path``, a one-node ONNX graph; its first printed line."""
    script = textwrap.dedent(f"""
        import numpy as np
        import onnx
        from onnx import TensorProto, helper

        from orpose.onnx_session import open_session, share_one_thread_pool

        graph = helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
        path = r"{tmp_path / "relu.onnx"}"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    """) + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[0]


@pytest.mark.parametrize(
    ("ask", "expected"),
    [(True, "True [False, False] [0.0, 2.0]"), (False, "None [True, True] [0.0, 2.0]")],
)
def test_sessions_share_one_pool_only_once_asked(tmp_path, ask, expected):
    out = _sessions(
        tmp_path,
        f"""
        shared = share_one_thread_pool(2) if {ask} else None
        sessions = [open_session(path, 2), open_session(path, 1, spin=False)]
        own = [s.get_session_options().use_per_session_threads for s in sessions]
        y = sessions[1].run(None, {{"x": np.array([-1.0, 2.0], np.float32)}})[0]
        print(shared, own, y.tolist())
    """,
    )
    assert out == expected


def test_a_pool_asked_for_too_late_leaves_sessions_working(tmp_path):
    out = _sessions(
        tmp_path,
        """
        first = open_session(path, 2)  # the environment exists now, without a shared pool
        share_one_thread_pool(2)
        later = open_session(path, 2)
        print(later.run(None, {"x": np.array([-3.0, 1.0], np.float32)})[0].tolist())
    """,
    )
    assert out == "[0.0, 1.0]"


def test_sessions_fall_back_to_their_own_pools_where_the_environment_has_none(monkeypatch):
    """onnxruntime refuses a shared-pool session in an environment made without the pool; the
    session is then opened with a pool of its own, and so are the later ones."""
    import onnxruntime as ort

    from orpose import onnx_session

    opened = []

    def session(path, options, providers):
        opened.append(options.use_per_session_threads)
        if not options.use_per_session_threads:
            raise RuntimeError("session_env.EnvCreatedWithGlobalThreadPools() was false.")
        return "session"

    monkeypatch.setattr(ort, "InferenceSession", session)
    monkeypatch.setitem(onnx_session._pool, "shared", True)
    assert onnx_session.open_session("m.onnx", 2) == "session"
    assert onnx_session.open_session("m.onnx", 2) == "session"
    assert opened == [False, True, True] and not onnx_session._pool["shared"]


def test_a_row_names_the_provider_its_session_runs_on():
    from types import SimpleNamespace

    from orpose.onnx_session import runtime_name

    def session(*providers):
        return SimpleNamespace(get_providers=lambda: list(providers))

    assert runtime_name(session("CPUExecutionProvider")) == "onnxruntime"
    assert runtime_name(session("CUDAExecutionProvider", "CPUExecutionProvider")) == (
        "onnxruntime-cuda"
    )
    assert runtime_name(session("TensorrtExecutionProvider")) == "onnxruntime-tensorrt"
