"""VectorPortfolioEnv: each sub-environment is a PortfolioEnv; autoreset; seeding; input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evotrader.data import DataError, FeaturePipeline
from evotrader.env import EnvSpec, ExecutionModel, PortfolioEnv, PortfolioSpec, VectorPortfolioEnv

Universe = dict[str, pd.DataFrame]
NUM_ENVS = 4


@pytest.mark.parametrize(
    "portfolio",
    [PortfolioSpec("long_only"), PortfolioSpec("long_short", 1.5), PortfolioSpec("discrete")],
    ids=lambda p: p.action,
)
@pytest.mark.parametrize("reward", ["log_return", "differential_sharpe"])
def test_equals_one_portfolio_env_per_sub_environment(
    portfolio: PortfolioSpec, reward: str, universe: Universe, universe_pipeline: FeaturePipeline
) -> None:
    """Different actions per sub-environment, some repeated (no trade): all figures equal."""
    spec = EnvSpec(
        window=8, episode_length=None, reward=reward, execution=ExecutionModel(impact_coef=0.5)
    )
    vector = VectorPortfolioEnv(
        universe, NUM_ENVS, universe_pipeline, spec, portfolio, random_start=False
    )
    singles = [
        PortfolioEnv(universe, universe_pipeline, spec, portfolio, random_start=False)
        for _ in range(NUM_ENVS)
    ]
    batch, _ = vector.reset(seed=0)
    for env, obs in zip(singles, batch, strict=True):
        assert np.array_equal(env.reset()[0], obs)
    vector.single_action_space.seed(2)
    actions = np.stack([vector.single_action_space.sample() for _ in range(NUM_ENVS)])
    for step in range(250):
        if step % 3:  # two steps in three, a new target; otherwise the same one (drift)
            actions = np.stack([vector.single_action_space.sample() for _ in range(NUM_ENVS)])
        batch, rewards, terminated, truncated, infos = vector.step(actions)
        for i, env in enumerate(singles):
            obs, reward_i, *ends, info = env.step(actions[i])
            assert np.array_equal(batch[i], obs)
            assert infos["equity"][i] == info["equity"]
            assert infos["cost"][i] == info["cost"]
            # numpy's vectorised log and power may differ from scalar math in the last bit.
            assert rewards[i] == pytest.approx(reward_i, rel=1e-14, abs=1e-15)
            assert [terminated[i], truncated[i]] == ends == [False, False]
    assert len(set(infos["equity"])) == NUM_ENVS  # the accounts went their own ways


def test_twelve_assets_equal_one_portfolio_env_each(universe: Universe) -> None:
    """Past numpy's unrolled sums (8+ assets), the one batched rebalance still leaves every
    account bit-for-bit where its PortfolioEnv is, trading or drifting."""
    frames = list(universe.values())
    bars = {
        f"S{i:02d}": frames[i % 3].assign(
            **{c: frames[i % 3][c] * (1.0 + 0.01 * i) for c in ("open", "high", "low", "close")}
        )
        for i in range(12)
    }
    spec = EnvSpec(window=4, episode_length=None, execution=ExecutionModel(impact_coef=0.5))
    portfolio = PortfolioSpec("long_short", 2.0)
    vector = VectorPortfolioEnv(
        bars, 3, spec=spec, portfolio=portfolio, random_start=False, fit_bars=100
    )
    singles = [
        PortfolioEnv(bars, spec=spec, portfolio=portfolio, random_start=False, fit_bars=100)
        for _ in range(3)
    ]
    vector.reset(seed=0)
    for env in singles:
        env.reset()
    rng = np.random.default_rng(4)
    actions = rng.uniform(-1.0, 1.0, (3, 12))
    for step in range(60):
        actions[step % 3] = rng.uniform(-1.0, 1.0, 12)  # one account at a time holds
        batch, _, _, _, infos = vector.step(actions)
        for i, env in enumerate(singles):
            obs, _, _, _, info = env.step(actions[i])
            assert np.array_equal(batch[i], obs)
            assert infos["equity"][i] == info["equity"] and infos["cost"][i] == info["cost"]
    assert np.array_equal(vector._units, np.stack([env._units for env in singles]))


def test_a_bust_terminates_each_account_as_its_portfolio_env_does(
    crash_bars: pd.DataFrame,
) -> None:
    """Four times and once leveraged into a 40% fall: only the first account goes bust."""
    spec = EnvSpec(window=4, episode_length=None)
    portfolio = PortfolioSpec("long_short", 4.0)
    vector = VectorPortfolioEnv(
        {"X": crash_bars}, 2, spec=spec, portfolio=portfolio, random_start=False, fit_bars=100
    )
    single = PortfolioEnv(
        {"X": crash_bars}, spec=spec, portfolio=portfolio, random_start=False, fit_bars=100
    )
    vector.reset(seed=0)
    single.reset()
    actions = np.array([[4.0], [1.0]])
    for _ in range(200):
        _, _, terminated, _, infos = vector.step(actions)
        _, _, single_terminated, _, info = single.step(actions[0])
        assert terminated[0] == single_terminated and infos["equity"][0] == info["equity"]
        if single_terminated:
            break
    assert terminated.tolist() == [True, False]
    assert infos["equity"][0] == 1e-12 * spec.initial_cash
    assert 0 < infos["equity"][1] < 0.7 * spec.initial_cash


def test_next_step_autoreset(universe: Universe, universe_pipeline: FeaturePipeline) -> None:
    spec = EnvSpec(window=8, episode_length=5)
    vector = VectorPortfolioEnv(universe, NUM_ENVS, universe_pipeline, spec)
    vector.reset(seed=0)
    buy = np.tile([0.5, 0.5, 0.0, 0.0], (NUM_ENVS, 1))
    for _ in range(4):
        _, _, terminated, truncated, _ = vector.step(buy)
        assert not (terminated | truncated).any()
    obs, _, _, truncated, _ = vector.step(buy)
    assert truncated.all() and obs[:, :2, :, -2].all()
    obs, rewards, _, truncated, infos = vector.step(buy)  # ignored: the reset step
    assert not truncated.any() and not rewards.any() and not infos["cost"].any()
    assert np.all(infos["equity"] == spec.initial_cash)
    assert not obs[..., -2:].any()  # all cash again


def test_starts_are_seeded_and_inside_the_data(
    universe: Universe, universe_pipeline: FeaturePipeline
) -> None:
    spec = EnvSpec(window=8, episode_length=30)

    def rollout(seed: int) -> tuple[np.ndarray, np.ndarray]:
        vector = VectorPortfolioEnv(universe, 16, universe_pipeline, spec)
        vector.reset(seed=seed)
        starts = vector._t.copy()
        equities = [vector.step(np.full((16, 4), 0.25))[4]["equity"] for _ in range(60)]
        return starts, np.array(equities)

    starts, equities = rollout(5)
    again, equities_again = rollout(5)
    assert np.array_equal(starts, again) and np.array_equal(equities, equities_again)
    assert len(set(starts)) > 8 and not np.array_equal(starts, rollout(6)[0])
    first = VectorPortfolioEnv(universe, 1, universe_pipeline, spec).market.first_decision
    assert starts.min() >= first and starts.max() <= 500 - 2 - 30 + 1


def test_bad_input_is_refused(universe: Universe, universe_pipeline: FeaturePipeline) -> None:
    with pytest.raises(ValueError, match="num_envs must be >= 1, got 0"):
        VectorPortfolioEnv(universe, 0, universe_pipeline)
    with pytest.raises(DataError, match="bars for CCC are not aligned"):
        VectorPortfolioEnv({**universe, "CCC": universe["CCC"].iloc[1:]}, 2, universe_pipeline)
    vector = VectorPortfolioEnv(universe, 2, universe_pipeline, EnvSpec(window=8))
    vector.reset(seed=0)
    with pytest.raises(ValueError, match=r"one action per sub-environment \(2\), got 3"):
        vector.step(np.full((3, 4), 0.25))
    with pytest.raises(ValueError, match="long_only action for 3 assets needs 4 values"):
        vector.step(np.full((2, 3), 0.25))
