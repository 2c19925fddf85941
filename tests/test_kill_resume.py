"""kill -9 at any moment, then --resume: the newest state on disk is always whole, and the run
resumed from it writes the bytes of the run that was never stopped (on the CPU).

Each run is a process of its own, killed with SIGKILL from inside at a chosen point (an
evaluation of the objective; half-way through writing a state file; between writing a file
and renaming it into place) or from outside at a random moment."""

from __future__ import annotations

import os
import random
import signal
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nst.cli import main
from nst.runtime.state import load_state, resumable_state

from processes import NST, Nst

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

# Kills this process at the T_KILL point ("evaluation:N", "state-write:N", "commit:N": the Nth
# time), then runs nst.
KILLER = (
    """
import io, os, signal
kind, n = os.environ["T_KILL"].split(":")
seen = [0]

def due():
    seen[0] += 1
    return seen[0] == int(n)

if kind == "evaluation":
    from nst.runtime.objective import Objective
    evaluate = Objective.__call__
    def killing(self, *args, **kwargs):
        if due():
            os.kill(os.getpid(), signal.SIGKILL)
        return evaluate(self, *args, **kwargs)
    Objective.__call__ = killing
elif kind == "state-write":
    from nst import container
    savez = container.np.savez
    def half(f, **arrays):
        if not due():
            return savez(f, **arrays)
        whole = io.BytesIO()
        savez(whole, **arrays)
        f.write(whole.getvalue()[: len(whole.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    container.np.savez = half
elif kind == "commit":
    from nst import fileio
    commit = fileio._commit
    def killing_commit(tmp, path, overwrite):
        if due():
            os.kill(os.getpid(), signal.SIGKILL)
        return commit(tmp, path, overwrite)
    fileio._commit = killing_commit
"""
    + NST
)

ARGS = ("--iterations", "8", "--checkpoint-iterations", "2", "--seed", "3", "--size", "0", "-q", "--no-log")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, vgg19_onnx):
    folder = tmp_path_factory.mktemp("kill")
    rng = np.random.default_rng(5)
    content, style = folder / "content.png", folder / "style.png"
    Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(content)
    Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(style)
    whole = folder / "whole.png"
    run = Nst("stylize", content, style, "-m", vgg19_onnx, "-o", whole, *ARGS)
    assert run.finish() == 0, run.output
    return content, style, vgg19_onnx, whole.read_bytes()


def _stylize(inputs, out, *extra, env=None, script=NST) -> Nst:
    content, style, model, _ = inputs
    return Nst("stylize", content, style, "-m", model, "-o", out, *ARGS, *extra, env=env, script=script)


def _resume_and_compare(inputs, out, expected_iteration: int) -> None:
    states = sorted(p for p in out.parent.glob("*.state") if not p.name.startswith("."))  # not the temporaries
    for path in states:  # every state on disk is whole
        load_state(path)
    newest = resumable_state(out)
    assert newest is not None and newest.iteration == expected_iteration, (newest, states)
    resumed = _stylize(inputs, out, "--resume", newest.path, "--overwrite")
    assert resumed.finish() == 0, resumed.output
    assert out.read_bytes() == inputs[3]  # byte for byte the run that was never stopped


@pytest.mark.slow
@pytest.mark.parametrize(
    "point, expected",
    [
        ("evaluation:4", 2),  # during an iteration after the first checkpoint
        ("state-write:2", 2),  # half-way through writing the state of iteration 4
        ("commit:3", 2),  # checkpoint 4's image written but not yet renamed into place
        ("commit:6", 4),  # checkpoint 6's image in place, its state not
    ],
)
def test_killed_at_a_point_then_resumed(inputs, tmp_path, point, expected):
    out = tmp_path / "out.png"
    killed = _stylize(inputs, out, env={"T_KILL": point}, script=KILLER)
    assert killed.finish() == -signal.SIGKILL, killed.output
    assert not out.exists()
    if point.startswith("state-write"):  # the half-written state is a temporary, never out.0004.state
        (partial,) = tmp_path.glob(".out.0004.*.part.state")
        assert partial.stat().st_size > 0 and not (tmp_path / "out.0004.state").exists()
    _resume_and_compare(inputs, out, expected)


@pytest.mark.slow
def test_killed_from_outside_at_a_random_moment_then_resumed(inputs, tmp_path):
    out = tmp_path / "out.png"
    run = _stylize(inputs, out)
    deadline = time.monotonic() + 120
    while not (tmp_path / "out.0002.state").exists() and run.process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(random.uniform(0, 0.3))
    os.kill(run.process.pid, signal.SIGKILL)
    if run.finish() == 0:  # it finished first: nothing to resume
        assert out.read_bytes() == inputs[3]
        return
    newest = resumable_state(out)
    if newest is None:  # killed after the output was in place, before the process exited
        assert out.read_bytes() == inputs[3]
        return
    _resume_and_compare(inputs, out, newest.iteration)


def test_a_state_to_resume_is_named_before_work_starts(inputs, tmp_path, monkeypatch):
    """The command that was killed, run again as it was: one line says how to continue
    instead, before its own refusal (the checkpoints exist) or its work."""
    content, style, model, _ = inputs
    out = tmp_path / "out.png"
    argv = ["stylize", str(content), str(style), "-m", str(model), "-o", str(out), *ARGS]
    with monkeypatch.context() as patch:
        from nst.runtime.stylize import Stylizer

        real = Stylizer.render

        def stopped(self, *args, callback=None, **kwargs):
            def step(s):
                callback(s)
                if s.iteration == 5:
                    raise SystemExit(137)  # as good as a kill for what is left on disk

            return real(self, *args, callback=step, **kwargs)

        patch.setattr(Stylizer, "render", stopped)
        assert CliRunner().invoke(main, argv).exit_code == 137
    note = (
        f"note: {tmp_path / 'out.0004.state'} holds an unfinished run of {out} (iteration 4 of 8); "
        f"to continue it instead, add --resume {tmp_path / 'out.0004.state'} --overwrite"
    )
    again = CliRunner().invoke(main, argv)
    assert again.exit_code == 1
    assert again.output.splitlines() == [
        note,
        f"Error: {tmp_path / 'out.0002.png'} exists; pass --overwrite to replace it",
    ]
    over = CliRunner().invoke(main, [*argv, "--overwrite"])
    assert over.exit_code == 0 and over.output.splitlines()[0] == note
    assert resumable_state(out) is None  # that run finished: nothing to resume any more
    assert "note:" not in CliRunner().invoke(main, [*argv, "--overwrite"]).output


def test_a_checkpoint_named_like_the_output_is_refused_before_work(inputs, tmp_path):
    content, style, model, _ = inputs
    out = tmp_path / "out_4.png"
    result = CliRunner().invoke(main, ["stylize", str(content), str(style), "-m", str(model), "-o", str(out),
                                       "--iterations", "8", "--checkpoint-iterations", "4",
                                       "--checkpoint-output", str(tmp_path / "out_%s.png"), "-q"])  # fmt: skip
    assert result.exit_code == 1
    assert result.output == (
        f"Error: the output and checkpoint 4 would both be written to {out}; choose another --checkpoint-output or -o\n"
    )
    assert list(tmp_path.iterdir()) == []
