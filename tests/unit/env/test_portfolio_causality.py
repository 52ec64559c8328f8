"""Perturb the future of every asset: PortfolioEnv's and VectorPortfolioEnv's observations at
bar t, and the equity marked up to bar t, depend on bars <= t only."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from evotrader.data import FeaturePipeline
from evotrader.env import (
    EnvSpec,
    ExecutionModel,
    PortfolioEnv,
    PortfolioSpec,
    VectorPortfolioEnv,
)

CHANGE_AFTER = 300  # bars after this one get a different future
Universe = dict[str, pd.DataFrame]


def _changed(universe: Universe) -> Universe:
    """The same bars up to CHANGE_AFTER, then each asset's prices moved by its own factor
    and its volume halved."""
    changed = {}
    for factor, (symbol, bars) in zip((1.3, 0.7, 1.1), universe.items(), strict=True):
        frame = bars.copy()
        frame.iloc[CHANGE_AFTER + 1 :] *= factor
        frame.iloc[CHANGE_AFTER + 1 :, frame.columns.get_loc("volume")] *= 0.5 / factor
        changed[symbol] = frame
    return changed


def _single_run(env: PortfolioEnv, actions: np.ndarray) -> tuple[list, list]:
    """Observations at every bar up to CHANGE_AFTER + 1 and the equity marked at each."""
    obs, info = env.reset(seed=0)
    seen, marked = [obs], [(info["t"], info["equity"])]
    for action in actions[: CHANGE_AFTER + 1 - info["t"]]:
        obs, _, _, _, info = env.step(action)
        seen.append(obs)
        marked.append((info["t"], info["equity"]))
    return seen, marked


def _assert_causal(original: list[np.ndarray], altered: list[np.ndarray]) -> None:
    """Equal at every bar <= CHANGE_AFTER; the next bar differs, so the change is seen."""
    assert len(original) == len(altered) > 20
    for a, b in zip(original[:-1], altered[:-1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(original[-1], altered[-1])


Builder = Callable[[Universe, FeaturePipeline], PortfolioEnv]
FILLS = {
    "next_open": ExecutionModel(impact_coef=0.5),
    "close": ExecutionModel(impact_coef=0.5, fill="close"),
}


@pytest.mark.parametrize("fill", FILLS.values(), ids=FILLS.keys())
@pytest.mark.parametrize("fitted", [False, True], ids=["fit_bars", "pipeline"])
def test_portfolio_env_ignores_the_future(
    fill: ExecutionModel, fitted: bool, universe: Universe, universe_pipeline: FeaturePipeline
) -> None:
    spec = EnvSpec(window=16, episode_length=None, execution=fill)
    portfolio = PortfolioSpec("long_short", max_gross=1.5)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(CHANGE_AFTER, len(universe)))
    runs = []
    for bars in (universe, _changed(universe)):
        if fitted:
            env = PortfolioEnv(bars, universe_pipeline, spec, portfolio, random_start=False)
        else:
            env = PortfolioEnv(bars, None, spec, portfolio, random_start=False, fit_bars=150)
        runs.append(_single_run(env, actions))
    (original, marks), (altered, altered_marks) = runs
    _assert_causal(original, altered)
    # Equity marked at bars <= CHANGE_AFTER (fills included) is untouched; the next differs.
    assert marks[:-1] == altered_marks[:-1] and marks[-1] != altered_marks[-1]
    assert marks[-1][0] == CHANGE_AFTER + 1


def test_vector_portfolio_env_ignores_the_future(universe: Universe) -> None:
    spec = EnvSpec(window=16, episode_length=None, execution=ExecutionModel(impact_coef=0.5))
    rng = np.random.default_rng(1)
    actions = rng.random((CHANGE_AFTER, 4, len(universe) + 1))
    runs = []
    for bars in (universe, _changed(universe)):
        env = VectorPortfolioEnv(bars, 4, spec=spec, random_start=False, fit_bars=150)
        obs, info = env.reset(seed=0)
        seen, equities = [obs], [info["equity"]]
        for batch in actions[: CHANGE_AFTER + 1 - env.market.first_decision]:
            obs, _, _, _, info = env.step(batch)
            seen.append(obs)
            equities.append(info["equity"])
        runs.append((seen, equities))
    (original, marks), (altered, altered_marks) = runs
    _assert_causal(original, altered)
    _assert_causal(marks, altered_marks)
