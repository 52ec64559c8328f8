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


CROSS_SECTION = 5  # symbols a cross-sectional template ranks in the per-template tests


def template_case(
    template_id: str, n_bars: int = 600, seed: int = 2
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Bars by symbol and the symbols a template is tested on: one regime-switching series,
    the planted cointegrated pair, or a cross-section of independent random walks."""
    from evotrader.data.sources.synthetic_universe import generate_universe
    from evotrader.strategies.knowledge import UNIVERSE_LEGS
    from evotrader.strategies.templates import SIGNALS

    legs = SIGNALS[template_id].legs
    if legs == 2:
        return cointegrated_pair(n_bars, seed=seed), ["A", "B"]
    if legs == UNIVERSE_LEGS:
        universe = generate_universe(CROSS_SECTION, n_bars, seed=seed, kind="noise")
        return universe.bars, list(universe.bars)
    return {"X": generate_synthetic(n_bars, seed=seed + 3, kind="regimes").bars}, ["X"]
