"""A planted cointegrated pair for the strategy tests (and an unrelated third walk)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evotrader.data import generate_synthetic

PRICES = ["open", "high", "low", "close"]


def cointegrated_pair(n_bars: int = 1200, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A and B share one random walk; log(B) - log(A) is a stationary AR(1) (phi 0.9).
    C is an independent random walk."""
    first = generate_synthetic(n_bars, seed=seed, kind="random_walk").bars
    rng = np.random.default_rng(seed + 1)
    spread = np.zeros(n_bars)
    for t in range(1, n_bars):
        spread[t] = 0.9 * spread[t - 1] + 0.01 * rng.standard_normal()
    second = first.copy()
    second[PRICES] = first[PRICES].mul(0.5 * np.exp(spread), axis=0)
    other = generate_synthetic(n_bars, seed=seed + 7, kind="random_walk").bars
    return {"A": first, "B": second, "C": other}
