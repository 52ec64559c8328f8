import numpy as np
import pandas as pd
import pytest

from evotrader.data import FeaturePipeline
from evotrader.env import EnvSpec, MarketEnv, VectorMarketEnv


def test_matches_single_env_step_for_step(bars: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    spec = EnvSpec(window=32, episode_length=None)
    single = MarketEnv(bars, pipeline, spec, random_start=False)
    vector = VectorMarketEnv(bars, 3, pipeline, spec, random_start=False)
    obs, _ = single.reset()
    batch, _ = vector.reset(seed=0)
    for env_obs in batch:
        np.testing.assert_array_equal(env_obs, obs)
    actions = np.random.default_rng(5).integers(3, size=200)
    for action in actions:
        obs, reward, _, truncated, info = single.step(int(action))
        batch, rewards, _, truncations, infos = vector.step(np.full(3, action))
        np.testing.assert_array_equal(batch[1], obs)
        np.testing.assert_allclose(rewards, reward, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(infos["equity"], info["equity"])
        assert not truncated and not truncations.any()


def test_next_step_autoreset(bars, pipeline) -> None:
    vector = VectorMarketEnv(bars, 4, pipeline, EnvSpec(window=16, episode_length=5))
    vector.reset(seed=0)
    for _ in range(4):
        _, _, terminated, truncated, _ = vector.step(np.full(4, 2))
        assert not (terminated | truncated).any()
    _, _, _, truncated, infos = vector.step(np.full(4, 2))
    assert truncated.all()
    obs, rewards, _, truncated, infos = vector.step(np.full(4, 0))  # ignored: reset step
    assert not truncated.any() and not rewards.any()
    assert np.all(infos["equity"] == vector.env_spec.initial_cash)
    assert np.all(obs[:, :, -2] == 0.0)  # flat again


def _trend(direction: float, n: int = 300) -> pd.DataFrame:
    close = 100.0 * np.exp(direction * 0.002 * np.arange(1, n + 1))
    open_ = np.r_[100.0, close[:-1]]
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": 1e6 + np.arange(n) % 7,
        },
        index=pd.date_range("2020-01-01", periods=n, freq="B", name="timestamp"),
    )


def test_episodes_never_cross_symbols() -> None:
    up, down = _trend(+1.0), _trend(-1.0, n=250)
    vector = VectorMarketEnv(
        {"UP": up, "DOWN": down}, 16, spec=EnvSpec(window=8, episode_length=40), fit_bars=100
    )
    vector.reset(seed=2)
    signs = [set() for _ in range(16)]
    seen_signs = set()
    for _ in range(200):
        _, rewards, _, truncated, _ = vector.step(np.full(16, 2))  # always long
        for i, reward in enumerate(rewards):
            if reward:
                signs[i].add(np.sign(reward))
            if truncated[i]:
                assert len(signs[i]) == 1  # one symbol, one trend, for a whole episode
                seen_signs |= signs[i]
                signs[i] = set()
    assert seen_signs == {1.0, -1.0}  # both symbols were drawn


def test_same_seed_same_rollout(bars, pipeline) -> None:
    def rollout(seed: int) -> np.ndarray:
        vector = VectorMarketEnv(bars, 8, pipeline, EnvSpec(window=16, episode_length=30))
        vector.reset(seed=seed)
        return np.array([vector.step(np.full(8, 2))[1] for _ in range(60)])

    np.testing.assert_array_equal(rollout(1), rollout(1))
    assert not np.array_equal(rollout(1), rollout(2))


def test_observations_are_fresh_arrays(bars, pipeline) -> None:
    vector = VectorMarketEnv(bars, 2, pipeline, EnvSpec(window=16))
    first, _ = vector.reset(seed=0)
    kept = first.copy()
    vector.step(np.array([0, 2]))
    np.testing.assert_array_equal(first, kept)


def test_bad_arguments(bars, pipeline) -> None:
    with pytest.raises(ValueError, match="num_envs"):
        VectorMarketEnv(bars, 0, pipeline)
    with pytest.raises(ValueError, match="at least one symbol"):
        VectorMarketEnv([], 2, pipeline)
