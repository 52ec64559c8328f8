"""Headless Chromium for the report tests: find it (or skip), and screenshot a page.

The reports promise a self-contained page that renders anywhere; a real browser is the only
honest check of that, so the HTML report tests share this one way to drive it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1280,2000",
)


def chromium() -> str:
    """The headless browser, or skip (never in CI, where `make browser` installs it)."""
    found = next(
        (shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)),
        None,
    )
    if found:
        return found
    message = "chromium not found; `make browser` installs Debian's chromium"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (it must run in CI)")
    pytest.skip(message)


def screenshot(page: Path, workdir: Path) -> np.ndarray:
    """The page as headless Chromium draws it (1280 x 2000, RGB in [0, 1]); fails the test
    when the browser fails, reports an uncaught error, or misses a resource."""
    browser = chromium()
    shot = workdir / f"{page.stem}.png"
    run = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={workdir / 'profile'}",
            f"--screenshot={shot}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Uncaught" not in run.stderr and "Failed to load resource" not in run.stderr
    pixels: np.ndarray = matplotlib.image.imread(shot)[..., :3]
    return pixels
