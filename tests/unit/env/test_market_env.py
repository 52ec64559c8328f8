import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from evotrader.data import FeaturePipeline
from evotrader.env import ENV_ID, EnvSpec, ExecutionModel, MarketEnv


def _hand_bars() -> pd.DataFrame:
    opens = [100.0, 101.0, 102.0, 104.0, 106.0, 103.0]
    closes = [101.0, 102.0, 103.0, 105.0, 104.0, 102.0]
    return pd.DataFrame(
        {
            "open": opens,
            "high": [max(o, c) * 1.01 for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) * 0.99 for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": [1000.0, 1100.0, 900.0, 1000.0, 1200.0, 800.0],
        },
        index=pd.date_range("2024-01-01", periods=6, freq="B", name="timestamp"),
    )


def test_check_env_passes(bars: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    check_env(MarketEnv(bars, pipeline, EnvSpec(window=32)), skip_render_check=True)


def test_gymnasium_make_builds_the_registered_env(bars, pipeline) -> None:
    env = gym.make(ENV_ID, bars=bars, pipeline=pipeline, spec=EnvSpec(window=16))
    assert env.unwrapped.env_spec == EnvSpec(window=16)  # ours, beside gymnasium's env.spec
    assert env.spec is not None and env.spec.id == ENV_ID
    obs, _ = env.reset(seed=1)
    assert obs.shape == (16, pipeline.num_features + 2)
    assert env.observation_space.contains(obs)


def test_costs_and_fills_match_a_hand_computed_example() -> None:
    bars = _hand_bars()
    pipeline = FeaturePipeline(window=2).fit(bars)
    costs = ExecutionModel(commission_bps=10.0, half_spread_bps=5.0, slippage_bps=5.0)
    env = MarketEnv(
        bars,
        pipeline,
        EnvSpec(window=1, execution=costs, initial_cash=10_000.0, episode_length=None),
        random_start=False,
    )
    env.reset()
    # Decide long at bar 2's close: buy 10,000/104 units at bar 3's open, pay 20 bps.
    _, reward, _, _, info = env.step(2)
    assert info["cost"] == pytest.approx(20.0)
    assert info["equity"] == pytest.approx(10_000 * 105 / 104 - 20)
    assert reward == pytest.approx(math.log((10_000 * 105 / 104 - 20) / 10_000))
    # Hold: no trade, no cost, marked at bar 4's close (104).
    _, _, _, _, info = env.step(2)
    assert info["cost"] == 0.0
    assert info["equity"] == pytest.approx(10_000 - 20)
    # Go flat: sell at bar 5's open (103) and pay 20 bps on that notional.
    notional = 10_000 * 103 / 104
    _, _, terminated, truncated, info = env.step(1)
    assert info["cost"] == pytest.approx(notional * 0.002)
    assert info["equity"] == pytest.approx(notional - 20 - notional * 0.002)
    assert truncated and not terminated


def test_no_look_ahead_in_observations(bars: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    t_change = 350
    changed = bars.copy()
    changed.iloc[t_change + 1 :] *= 1.3
    actions = np.random.default_rng(0).integers(3, size=400)

    def observations(frame: pd.DataFrame) -> list[np.ndarray]:
        env = MarketEnv(
            frame, pipeline, EnvSpec(window=32, episode_length=None), random_start=False
        )
        seen = [env.reset()[0]]
        for action in actions:
            if env.market.first_decision + len(seen) - 1 >= t_change:
                break
            seen.append(env.step(int(action))[0])
        return seen

    original, altered = observations(bars), observations(changed)
    assert len(original) > 100
    for a, b in zip(original, altered, strict=True):
        np.testing.assert_array_equal(a, b)


def test_episode_return_is_the_log_equity_change(bars, pipeline) -> None:
    env = MarketEnv(bars, pipeline, EnvSpec(window=32, episode_length=100))
    env.reset(seed=3)
    rewards, rng, done = [], np.random.default_rng(3), False
    while not done:
        _, reward, terminated, truncated, info = env.step(int(rng.integers(3)))
        rewards.append(reward)
        done = terminated or truncated
    assert len(rewards) == 100
    assert sum(rewards) == pytest.approx(
        math.log(info["equity"] / env.env_spec.initial_cash), abs=1e-12
    )


def test_same_seed_same_episode_and_random_starts_vary(bars, pipeline) -> None:
    env = MarketEnv(bars, pipeline, EnvSpec(window=32, episode_length=50))
    first = env.reset(seed=11)[1]["t"]
    assert env.reset(seed=11)[1]["t"] == first
    starts = {env.reset(seed=s)[1]["t"] for s in range(20)}
    assert len(starts) > 10
    assert min(starts) >= env.market.first_decision
    assert max(starts) + 50 <= env.market.last_decision + 1


def test_long_only_and_sizing_levels(bars, pipeline) -> None:
    env = MarketEnv(bars, pipeline, EnvSpec(window=16, positions=(0.0, 0.5, 1.0)))
    assert env.action_space.n == 3
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(1)
    assert np.all(obs[:, -2] == 0.5)
    assert env.observation_space.contains(obs)


def test_differential_sharpe_reward(bars, pipeline) -> None:
    env = MarketEnv(bars, pipeline, EnvSpec(window=16, reward="differential_sharpe"))
    env.reset(seed=0)
    rewards = [env.step(2)[1] for _ in range(50)]
    assert all(np.isfinite(rewards)) and any(r != 0 for r in rewards)


def test_ruin_terminates_the_episode() -> None:
    bars = _hand_bars()
    bars.loc[bars.index[4:], ["open", "high", "low", "close"]] *= 3.0  # short squeeze x3
    pipeline = FeaturePipeline(window=2).fit(bars)
    env = MarketEnv(
        bars,
        pipeline,
        EnvSpec(window=1, positions=(-2.0, 0.0), episode_length=None),
        random_start=False,
    )
    env.reset()
    env.step(0)
    _, reward, terminated, _, info = env.step(0)
    assert terminated and reward < -10 and info["equity"] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reward": "profit"}, "reward"),
        ({"positions": (1.0,)}, "positions"),
        ({"window": 10_000}, "bars"),
    ],
)
def test_bad_settings_fail_clearly(bars, pipeline, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        MarketEnv(bars, pipeline, EnvSpec(**kwargs))
