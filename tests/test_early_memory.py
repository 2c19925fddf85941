"""The memory guard refuses a CPU run too large for the RAM before torch is imported, from the
content's header, with the same message as the guard that runs after the model loads."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner
from odd_files import png_header_only, rgb

from nst.cli import main
from nst.runtime.device import precision_name
from nst.runtime.early_memory import AUTO_ON_CPU, NVIDIA_DRIVER

PROBE = textwrap.dedent("""
    import sys
    from nst.cli import main
    try:
        main(sys.argv[1:], standalone_mode=False)
    except BaseException as exc:
        print("refused:", getattr(exc, "message", None) or exc)
    print("torch imported:", "torch" in sys.modules)
""")


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    d = tmp_path_factory.mktemp("huge")
    return png_header_only(d / "phone-12k.png", 12000, 12000, padded=True), rgb(d / "style.png", 36, 36)


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_a_run_too_large_is_refused_before_torch_loads(vgg19_onnx, huge, tmp_path, monkeypatch, device):
    content, style = huge
    args = ["stylize", str(content), str(style), "-m", str(vgg19_onnx), "-o", str(tmp_path / "o.png"),
            "--size", "12000", "--device", device]  # fmt: skip
    if device == "auto" and NVIDIA_DRIVER.exists():
        pytest.skip("auto may mean CUDA on this machine: the early guard leaves it to the later one")
    probe = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120,
                           env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)})  # fmt: skip
    early, loaded = probe.stdout.strip().splitlines()[-2:]
    assert early.startswith("refused: this run needs about "), probe.stdout + probe.stderr
    assert loaded == "torch imported: False"
    # The guard after the model loads says the same, when the early one is skipped.
    monkeypatch.setattr("nst.runtime.early_memory.check_memory_early", lambda *a, **k: None)
    later = CliRunner().invoke(main, args)
    # The same words and figures, but for the RAM available, which moves between the two reads.
    assert later.exit_code == 1 and _free(later.output) == _free(f"Error: {early.removeprefix('refused: ')}\n")
    assert not list(tmp_path.glob("o*"))


def _free(message: str) -> str:
    return re.sub(r"[0-9.]+ GiB is available", "N GiB is available", message)


def test_auto_on_the_cpu_is_what_the_early_guard_assumes():
    assert precision_name(torch.device("cpu"), "auto") == AUTO_ON_CPU
