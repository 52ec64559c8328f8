"""fill_agent_state: the one definition of the position and unrealised-return channels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from evotrader.data.features import FeaturePipeline
from evotrader.env import EnvSpec, MarketEnv
from evotrader.env.market_data import MAX_UNREALISED, fill_agent_state


def test_one_window_and_a_batch_get_the_same_channels() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3, 8, 5)).astype(np.float32)
    positions, unrealised = np.array([1.0, 0.0, -0.5]), np.array([0.02, -3.0, 25.0])
    batch = fill_agent_state(features.copy(), positions, unrealised)
    for i in range(3):
        single = fill_agent_state(features[i].copy(), float(positions[i]), float(unrealised[i]))
        np.testing.assert_array_equal(single, batch[i])
    np.testing.assert_array_equal(batch[..., :3], features[..., :3])  # features untouched
    np.testing.assert_array_equal(batch[:, :, -2], np.repeat(positions[:, None], 8, axis=1))
    assert batch[0, 0, -1] == np.float32(0.02)
    assert batch[1, 0, -1] == -1.0 and batch[2, 0, -1] == MAX_UNREALISED  # clipped


def test_market_env_reports_its_position_and_unrealised_return(
    bars: pd.DataFrame, pipeline: FeaturePipeline
) -> None:
    env = MarketEnv(bars, pipeline, EnvSpec(window=8, episode_length=None), random_start=False)
    obs, _ = env.reset()
    assert not obs[:, -2:].any()
    _, _, _, _, first = env.step(2)  # long from flat: equity at the fill is cash less costs
    entry = env.env_spec.initial_cash - first["cost"]
    obs, _, _, _, info = env.step(2)  # hold
    np.testing.assert_array_equal(obs[:, -2], 1.0)
    np.testing.assert_allclose(obs[:, -1], info["equity"] / entry - 1.0, rtol=1e-6)
    assert first["cost"] > 0
