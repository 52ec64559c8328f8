"""Run the repository's entry points as a user would, from the integration tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_script(
    script: str, *args: str, timeout: int = 300, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """``python <script> <args>`` from ``cwd`` (the repository root), output captured as text."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
