"""The tree stays ruff-clean and mypy-clean: checked here so CI enforces it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff() -> None:
    lint = run(str(BIN / "ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    style = run(str(BIN / "ruff"), "format", "--check", ".")
    assert style.returncode == 0, style.stdout + style.stderr


def test_mypy() -> None:
    typed = run(str(BIN / "mypy"), "streams", "agents", "schemas", "tests", "deploy/grafana", "bench")
    assert typed.returncode == 0, typed.stdout + typed.stderr
