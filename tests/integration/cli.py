"""Run the repository's entry points as a user would, from the integration tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

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


def start_script(script: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """``python <script> <args>`` started from the repository root, not waited for (to be
    interrupted or killed); ``popen`` picks the pipes and the environment."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / script), *args], cwd=ROOT, text=True, **popen
    )
