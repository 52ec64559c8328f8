"""Checkpoints for the lifecycle tests: real GOOG checkpoints (tests/unit/live/helpers.py)
whose test split ends 2010-12-31, so the embedded bars (to 2013-03-01) hold a holdout after
it. On the holdout 2011-01-03 -> 2011-09-30 (GOOG falls) seed 1 beats buy-and-hold by an
excess Sharpe of about 1.3, seed 0 by 0.25, and seed 4 trails it by 1.4."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.unit.live.helpers import make_checkpoint

from evotrader.core.checkpoint import load_checkpoint, save_checkpoint

DATA_RANGE = {
    "train_start": "2004-08-19 00:00:00",
    "train_end": "2008-06-30 00:00:00",
    "validation_start": "2008-07-10 00:00:00",
    "validation_end": "2009-09-30 00:00:00",
    "test_start": "2009-10-12 00:00:00",
    "test_end": "2010-12-31 00:00:00",
}
HOLDOUT_END = "2011-09-30"
BETTER, CHAMPION, WORSE = 1, 0, 4  # seeds, by their excess over buy-and-hold on the holdout


def lifecycle_checkpoint(path: Path, seed: int, **changes: Any) -> Path:
    """A GOOG checkpoint of ``seed`` with the early test split; ``changes`` replace fields
    (metrics, extra, ...) as a run would have written them."""
    make_checkpoint(path, seed=seed)
    checkpoint = load_checkpoint(path)
    return save_checkpoint(replace(checkpoint, data_range=DATA_RANGE, **changes), path)
