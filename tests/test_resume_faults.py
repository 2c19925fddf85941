"""States that cannot be resumed (another image size, a finished run, NaNs) and weights that
leave nothing to optimise: each is one line, or a run that works, never a traceback."""

from __future__ import annotations

import hashlib
import warnings

import pytest
import torch
from click.testing import CliRunner
from odd_files import rgb
from PIL import Image

from nst.cli import main
from nst.runtime.state import load_state, save_state


@pytest.fixture(scope="module")
def run(tmp_path_factory, vgg19_onnx):
    """A finished 4-iteration run with a state at iteration 2, and the argv that made it."""
    d = tmp_path_factory.mktemp("resume")
    content, style = rgb(d / "content.png", 40, 32, seed=0), rgb(d / "style.png", 36, 36, seed=1)
    argv = ["stylize", str(content), str(style), "-m", str(vgg19_onnx), "--size", "0", "--iterations", "4",
            "--seed", "3", "-q", "--no-log", "-o", str(d / "out.png")]  # fmt: skip
    result = CliRunner().invoke(main, [*argv, "--checkpoint-iterations", "2"])
    assert result.exit_code == 0, result.output
    return d, argv


def _resume_with(run, tmp_path, change) -> tuple[int, str, bytes]:
    d, argv = run
    state = load_state(d / "out.0002.state")
    change(state)
    path = save_state(state, tmp_path / "edited.state")
    before = (d / "out.png").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning either
        result = CliRunner().invoke(main, [*argv, "--resume", str(path), "--overwrite"])
    assert "Traceback" not in result.output and (d / "out.png").read_bytes() == before
    return result.exit_code, result.output, path.read_bytes()


def _resize(state):
    state.image = torch.zeros(1, 3, 20, 24)
    state.best_image = None


def test_a_state_of_another_image_size_is_one_line(run, tmp_path):
    code, output, _ = _resume_with(run, tmp_path, _resize)
    assert code == 1
    assert output == (
        "Error: the state is for a 24x20 image, this run makes 40x32; resume with the content, --size and "
        "--scales of the run that wrote it, or start without --resume\n"
    )


@pytest.mark.parametrize("iteration", [4, 9])
def test_a_state_with_no_iteration_left_is_refused(run, tmp_path, iteration):
    code, output, _ = _resume_with(run, tmp_path, lambda state: setattr(state, "iteration", iteration))
    assert code == 1
    path = tmp_path / "edited.state"
    assert output == (
        f"Error: {path} holds a finished run (iteration {iteration} of 4); there is nothing to resume: its image "
        "is that run's output, or start a new run without --resume\n"
    )


@pytest.mark.parametrize("field", ["image", "best_image"])
def test_a_state_holding_nans_is_refused_before_any_work(run, tmp_path, field):
    def poison(state):
        tensor = getattr(state, field).clone()
        tensor[0, 0, 0, 0] = float("nan")
        setattr(state, field, tensor)

    code, output, _ = _resume_with(run, tmp_path, poison)
    assert code == 1
    assert (
        output
        == f"Error: {tmp_path / 'edited.state'} holds non-finite values (NaN or infinity); start without --resume\n"
    )


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("weights", [["--content-weight", "0", "--style-weight", "0", "--tv-weight", "0"],
                                     ["--initial-noiseblend", "0", "--style-weight", "0", "--tv-weight", "0"]])  # fmt: skip
def test_all_weights_zero_leaves_the_start_image(run, tmp_path, optimizer, weights):
    """Nothing to optimise: L-BFGS takes no step along a zero gradient (as Adam's update is
    zero), so the run writes its start image and exits 0."""
    _, argv = run
    outputs = []
    for iterations in ("1", "3"):
        out = tmp_path / f"{iterations}.png"
        args = [*argv[:-1], str(out), *weights, "--optimizer", optimizer, "--iterations", iterations]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and result.exception is None, result.output
        with Image.open(out) as img:
            outputs.append(hashlib.sha256(img.tobytes()).hexdigest())
    assert outputs[0] == outputs[1]  # more iterations change no pixel
