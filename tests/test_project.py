"""Project rules that can drift: the README's set-up commands, CI, and a light `nst --help`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", head, flags=re.S)


def test_readme_opens_with_two_setup_commands():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    install_run, install_test = commands
    assert install_run.startswith("pip install") and "&& nst " in install_run
    assert install_test.startswith("pip install") and install_test.endswith("pytest")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


PROBE = """
import sys
from nst.cli import main
try:
    main(["--help"])
except SystemExit:
    pass
print("HEAVY", sorted(m for m in ("torch", "onnxruntime", "onnx", "scipy") if m in sys.modules))
"""


def test_help_does_not_import_heavy_modules():
    """`nst --help` lists every command without loading torch, onnxruntime, onnx or scipy."""
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert "export-vgg" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout
