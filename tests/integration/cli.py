"""Run the repository's entry points as a user would, from the integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def run_script_ok(
    script: str, *args: str, timeout: int = 300, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """``run_script`` that must exit 0: when it does not, the ends of its output say why."""
    done = run_script(script, *args, timeout=timeout, cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def start_script(script: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """``python <script> <args>`` started from the repository root, not waited for (to be
    interrupted or killed); ``popen`` picks the pipes and the environment."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / script), *args], cwd=ROOT, text=True, **popen
    )


def kill_training_at(line: str, *args: str, saved: Path | None = None) -> None:
    """Start ``run_training.py <args>`` in a session of its own and kill it (SIGKILL, its Ray
    workers too) at the first output line holding ``line``, once ``saved`` exists if given."""
    process = start_script(
        "run_training.py",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    for output in process.stdout:
        if line in output:
            break
    while saved is not None and not saved.exists():  # written right after the line
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
