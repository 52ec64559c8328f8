"""PortfolioEnv on close-only bars: features and impact they cannot carry are refused by
name; the close-only features trade, and a "next open" fill is the next close."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evotrader.data import DataError, FeaturePipeline
from evotrader.data.features import CLOSE_ONLY_FEATURES
from evotrader.data.universe import Universe
from evotrader.env import EnvSpec, ExecutionModel, PortfolioEnv, VectorPortfolioEnv


def early_fit(universe: Universe) -> FeaturePipeline:
    """The close-only features fitted on the first 200 bars of every symbol."""
    return FeaturePipeline(CLOSE_ONLY_FEATURES).fit(
        {symbol: bars.iloc[:200] for symbol, bars in universe.bars.items()}
    )


@pytest.fixture(scope="module")
def close_only(universe: dict[str, pd.DataFrame]) -> Universe:
    """The env universe's closes as a close-only source gives them (no opens, no volume)."""
    frames = {
        symbol: frame.assign(open=frame["close"], high=frame["close"], low=frame["close"]).assign(
            volume=0.0
        )
        for symbol, frame in universe.items()
    }
    built = Universe.from_bars(frames, source="closes")
    assert built.close_only
    return built


def test_the_default_features_are_refused_pointing_at_the_close_only_ones(
    close_only: Universe,
) -> None:
    for env_class, args in ((PortfolioEnv, ()), (VectorPortfolioEnv, (2,))):
        with pytest.raises(
            DataError,
            match=r"the bars of AAA are close-only.*: pass the env pipeline=FeaturePipeline\(",
        ):
            env_class(close_only.bars, *args, fit_bars=100)


def test_impact_is_refused_naming_the_symbol(close_only: Universe) -> None:
    spec = EnvSpec(window=8, execution=ExecutionModel(impact_coef=0.5))
    with pytest.raises(DataError, match=r"^AAA: execution impact_coef=0.5 needs traded volume"):
        PortfolioEnv(close_only.bars, early_fit(close_only), spec)


def test_close_only_features_trade_filling_at_the_next_close(close_only: Universe) -> None:
    env = PortfolioEnv(
        close_only.bars, early_fit(close_only), EnvSpec(window=8), random_start=False
    )
    obs, _ = env.reset(options={"start": 200})
    assert obs.shape == (3, 8, len(CLOSE_ONLY_FEATURES) + 2)
    assert np.isfinite(obs).all() and obs[..., : len(CLOSE_ONLY_FEATURES)].std() > 0.1
    _, _, _, _, info = env.step(np.array([0.5, 0.0, 0.0, 0.5]))  # half in AAA, half cash
    closes = close_only.closes().to_numpy()
    assert np.array_equal(env.market.fill[200], closes[201])  # "next open" = next close
    bought = env._units[0] * closes[201, 0]
    assert bought == pytest.approx(0.5 * env.env_spec.initial_cash, rel=1e-3)
    assert info["cost"] > 0
