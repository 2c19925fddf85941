"""Test helpers for `nst` in other processes: start one, read its stderr as it comes, wait
for a line. A process of its own is what a race, a lock or a SIGKILL needs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# `nst` with the registry's vgg19 entry pointed at a test file (T_SHA256, T_SIZE) when they are set.
NST = """
import os, sys
if os.environ.get("T_SHA256"):
    from nst.models import registry
    entry = registry.WEIGHTS["vgg19"]
    registry.WEIGHTS["vgg19"] = entry.replace(sha256=os.environ["T_SHA256"], md5=None, size=int(os.environ["T_SIZE"]))
from nst.cli import main
main(sys.argv[1:], prog_name="nst")
"""


class Nst:
    """`nst ARGS` in a process of its own; `lines` fills with its stderr and stdout as they come."""

    def __init__(self, *args: object, env: dict[str, str] | None = None, script: str = NST):
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 120) -> str:
        """The first line that contains `text`, once it has come (AssertionError after `timeout` s)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = next((line for line in self.lines if text in line), None)
            if found is not None:
                return found
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r}; output so far:\n" + "\n".join(self.lines))

    def finish(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()
