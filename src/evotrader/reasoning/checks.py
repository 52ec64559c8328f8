"""Checks shared by the reasoning components: batches of paths and config options, clearly
rejected. Their configs' own field rules go through ``evotrader.core.checks.check_fields``."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np


def as_batch(values: Any, what: str, min_length: int) -> np.ndarray:
    """``values`` as a finite float64 array (batch, length) with length >= ``min_length``.

    ``what`` names the caller and argument in every error (e.g. ``"hmm.predict_proba windows"``).
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{what}: expected a 2-d array (batch, length), got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{what}: empty batch, shape {array.shape}")
    if array.shape[1] < min_length:
        raise ValueError(
            f"{what}: length {array.shape[1]} is too short, need at least {min_length}"
        )
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{what}: {int(bad.sum())} non-finite value(s), first at [{row}, {col}] "
            f"= {array[row, col]}"
        )
    return array


def as_series(values: Any, what: str, min_length: int) -> np.ndarray:
    """``values`` as a finite float64 1-d array of at least ``min_length`` values."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{what}: expected a 1-d array, got shape {array.shape}")
    return as_batch(array[None, :], what, min_length)[0]


def build_config(config_type: type[Any], owner: str, options: dict[str, Any]) -> Any:
    """``config_type(**options)``, with unknown option names reported as a ValueError.

    Components are built by name from config files, so a misspelt option names its owner and
    the known ones instead of a bare TypeError.
    """
    known = {f.name for f in fields(config_type)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{owner}: unknown option(s) {unknown}; known: {sorted(known)}")
    return config_type(**options)
