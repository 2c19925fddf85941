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
from click.testing import CliRunner
from nst.cli import COMMANDS, main
runner = CliRunner()
assert runner.invoke(main, ["--help"]).exit_code == 0
for name in COMMANDS:
    result = runner.invoke(main, [name, "--help"])
    assert result.exit_code == 0, (name, result.output)
print("COMMANDS", sorted(COMMANDS))
print("HEAVY", sorted(m for m in ("torch", "onnxruntime", "onnx", "scipy", "tqdm") if m in sys.modules))
"""


def test_help_does_not_import_heavy_modules():
    """`nst --help` and every command's --help run without loading torch, onnxruntime, onnx,
    scipy or tqdm (the options come from the torch-free configs)."""
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert "export-vgg" in result.stdout and "stylize" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout


def test_no_docstring_cites_a_file_outside_the_repository():
    """Docs and docstrings cite docs/ in the repository, never the briefs beside it."""
    for path in [*ROOT.glob("nst/**/*.py"), *ROOT.glob("benchmarks/*.py"), *ROOT.glob("docs/*.md"), ROOT / "README.md"]:
        text = path.read_text()
        for cited in re.findall(r"\b([A-Z_]+\.md)\b", text):
            assert (
                (ROOT / cited).exists() or (ROOT / "docs" / cited).exists() or (ROOT / "benchmarks" / cited).exists()
            ), f"{path.relative_to(ROOT)} cites {cited}, which is not in the repository"
        assert "shared/" not in text and "DESIGN.md" not in text, path
