"""PortfolioEnv: one asset moves exactly as MarketEnv; weights, costs, seeding, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from evotrader.data import DataError, FeaturePipeline
from evotrader.env import (
    PORTFOLIO_ENV_ID,
    EnvSpec,
    ExecutionModel,
    MarketEnv,
    PortfolioEnv,
    PortfolioSpec,
)

Universe = dict[str, pd.DataFrame]
IMPACT = ExecutionModel(commission_bps=2.0, impact_coef=0.5)
CASES = {
    "log_return next_open": EnvSpec(window=16, episode_length=None),
    "sharpe close impact": EnvSpec(
        window=8,
        episode_length=None,
        reward="differential_sharpe",
        execution=ExecutionModel(impact_coef=0.5, fill="close"),
    ),
    "positions 0..1 no agent state": EnvSpec(
        window=4, episode_length=None, positions=(0.0, 0.5, 1.0), agent_state=False
    ),
    "random start": EnvSpec(window=16, episode_length=60, execution=IMPACT),
}


def _portfolio_action(form: str, index: int, positions: tuple[float, ...]) -> np.ndarray:
    """The action of each form that asks a one-asset portfolio for ``positions[index]``."""
    if form == "discrete":
        return np.array([index])
    if form == "long_short":
        return np.array([positions[index]], dtype=np.float32)
    return np.array([positions[index], 1.0 - positions[index]])


PAIRS = [
    (form, name)
    for form in ("discrete", "long_short", "long_only")
    for name, spec in CASES.items()
    if form != "long_only" or min(spec.positions) >= 0  # long-only weights cannot short
]


@pytest.mark.parametrize(("form", "case"), PAIRS, ids=[f"{f}: {c}" for f, c in PAIRS])
def test_one_asset_portfolio_equals_market_env(
    form: str, case: str, gapped_bars: pd.DataFrame
) -> None:
    """Same positions, same bars: every figure equal with ==, over a whole episode."""
    bars = gapped_bars
    spec = CASES[case]
    random_start = spec.episode_length is not None
    market = MarketEnv(bars, spec=spec, random_start=random_start, fit_bars=150)
    portfolio = PortfolioEnv(
        {"X": bars},
        spec=spec,
        portfolio=PortfolioSpec(form),
        random_start=random_start,
        fit_bars=150,
    )
    expected, info = market.reset(seed=4)
    observed, portfolio_info = portfolio.reset(seed=4)
    assert info == portfolio_info
    features = slice(None, -2) if spec.agent_state else slice(None)
    actions = np.random.default_rng(6).integers(len(spec.positions), size=len(bars))
    steps = 0
    for action in actions:
        assert observed.shape == (1, *expected.shape)
        assert np.array_equal(observed[0][:, features], expected[:, features])
        if spec.agent_state:  # the unrealised-return channel is MarketEnv's too
            assert np.array_equal(observed[0][:, -1], expected[:, -1])
        expected, reward, terminated, truncated, info = market.step(int(action))
        observed, portfolio_reward, *ends, portfolio_info = portfolio.step(
            _portfolio_action(form, int(action), spec.positions)
        )
        assert portfolio_reward == reward
        assert ends == [terminated, truncated]
        assert portfolio_info["equity"] == info["equity"]
        assert portfolio_info["cost"] == info["cost"]
        assert portfolio_info["weights"].tolist() == [info["position"]]
        assert portfolio_info["t"] == info["t"]
        steps += 1
        if terminated or truncated:
            break
    assert steps == (60 if random_start else market.market.last_decision - 150 + 1)
    assert info["equity"] != spec.initial_cash


def test_weights_channel_and_costs_follow_the_account(
    universe: Universe, universe_pipeline: FeaturePipeline
) -> None:
    spec = EnvSpec(window=8, episode_length=None, execution=IMPACT)
    env = PortfolioEnv(universe, universe_pipeline, spec, random_start=False)
    obs, _ = env.reset()
    assert not obs[..., -2:].any()  # all cash, nothing unrealised
    target = np.array([0.5, 0.3, 0.0, 0.2])  # 20% cash
    obs, _, _, _, info = env.step(target)
    t, fill = info["t"] - 1, env.market.fill[info["t"] - 1]
    units = info["weights"] * 100_000.0 / fill  # sized on the equity before costs
    rate, impact = IMPACT.linear_rate, env.market.impact[t]
    np.testing.assert_allclose(info["costs"], units * fill * (rate + impact * units**0.5))
    assert info["weights"].tolist() == [0.5, 0.3, 0.0]
    mark = env.market.mark[info["t"]]
    weights = units * mark / info["equity"]
    np.testing.assert_allclose(obs[:, :, -2], np.repeat(weights[:, None], 8, axis=1), rtol=1e-6)
    cash = 100_000.0 - (units * fill).sum() - info["cost"]
    np.testing.assert_allclose(weights.sum() + cash / info["equity"], 1.0, rtol=1e-12)
    for _ in range(5):  # the same target again: no trade, the weights drift with prices
        previous = obs[0, 0, -2]
        obs, _, _, _, info = env.step(target)
        assert info["cost"] == 0.0 and obs[0, 0, -2] != previous
    _, _, _, _, info = env.step(np.array([0.0, 0.0, 0.0, 1.0]))  # sell all: pays on the lot
    assert info["cost"] > 0 and np.all(info["costs"][:2] > 0) and info["costs"][2] == 0.0
    np.testing.assert_allclose(info["equity"], env._cash, rtol=0, atol=1e-9)


def test_permuting_the_symbols_permutes_the_observation(
    universe: Universe, universe_pipeline: FeaturePipeline
) -> None:
    spec = EnvSpec(window=8, episode_length=None)
    order = ["CCC", "AAA", "BBB"]
    env = PortfolioEnv(universe, universe_pipeline, spec, PortfolioSpec("long_short"))
    swapped = PortfolioEnv(
        {s: universe[s] for s in order}, universe_pipeline, spec, PortfolioSpec("long_short")
    )
    permutation = [list(universe).index(s) for s in order]
    obs, _ = env.reset(seed=9)
    other, _ = swapped.reset(seed=9)
    rng = np.random.default_rng(0)
    for _ in range(100):
        assert np.array_equal(other[..., :-2], obs[permutation][..., :-2])
        np.testing.assert_allclose(other, obs[permutation], rtol=1e-6, atol=1e-7)
        action = rng.uniform(-0.5, 0.5, size=3)
        obs, reward, *_ = env.step(action)
        other, other_reward, *_ = swapped.step(action[permutation])
        np.testing.assert_allclose(other_reward, reward, rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore:.*symmetric and normalized space")
@pytest.mark.parametrize(
    "portfolio",
    [PortfolioSpec("long_only"), PortfolioSpec("long_short", 1.5), PortfolioSpec("discrete")],
    ids=lambda p: p.action,
)
def test_observations_stay_in_the_space_and_the_env_checker_passes(
    portfolio: PortfolioSpec, universe: Universe
) -> None:
    spec = EnvSpec(window=8, episode_length=200)
    env = PortfolioEnv(universe, spec=spec, portfolio=portfolio, fit_bars=100)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    env.action_space.seed(1)
    for _ in range(200):
        assert env.observation_space.contains(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    assert truncated


def test_a_bust_terminates_as_market_env_does(crash_bars: pd.DataFrame) -> None:
    """Five times leveraged into a 40% fall: equity goes below zero on the same bar."""
    bars, spec = crash_bars, EnvSpec(window=4, positions=(0.0, 5.0), episode_length=None)
    market = MarketEnv(bars, spec=spec, random_start=False, fit_bars=100)
    portfolio = PortfolioEnv(
        {"X": bars},
        spec=spec,
        portfolio=PortfolioSpec("discrete", 5.0),
        random_start=False,
        fit_bars=100,
    )
    market.reset()
    portfolio.reset()
    for _ in range(200):
        _, reward, terminated, _, info = market.step(1)
        _, portfolio_reward, portfolio_terminated, _, portfolio_info = portfolio.step(np.array([1]))
        assert (portfolio_reward, portfolio_terminated) == (reward, terminated)
        assert portfolio_info["equity"] == info["equity"]
        if terminated:
            break
    assert terminated and info["equity"] == 1e-12 * spec.initial_cash and 200 < info["t"] <= 205


def test_close_only_bars_fill_at_the_next_close() -> None:
    """Close-only bars (open = high = low = close, no volume) with close-only features: the
    default next-open fill is the next close, which the equity shows."""
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.01, (300, 2)), axis=0))
    index = pd.date_range("2020-01-01", periods=300, freq="B", name="timestamp")
    bars = {
        symbol: pd.DataFrame(
            {"open": c, "high": c, "low": c, "close": c, "volume": 0.0}, index=index
        )
        for symbol, c in zip(("A", "B"), close.T, strict=True)
    }
    pipeline = FeaturePipeline(("log_return", "volatility", "trend")).fit(
        [frame.iloc[:150] for frame in bars.values()]
    )
    spec = EnvSpec(window=8, episode_length=None, execution=ExecutionModel(0.0, 0.0, 0.0))
    env = PortfolioEnv(bars, pipeline, spec, random_start=False)
    _, info = env.reset()
    t = info["t"]
    _, _, _, _, info = env.step(np.array([1.0, 0.0, 0.0]))  # all in A at bar t + 1's close
    assert info["equity"] == pytest.approx(100_000.0)  # bought and marked at the same close
    _, _, _, _, info = env.step(np.array([1.0, 0.0, 0.0]))
    assert info["equity"] == pytest.approx(100_000.0 * close[t + 2, 0] / close[t + 1, 0])


def test_gym_make_and_render(universe: Universe) -> None:
    env = gym.make(
        PORTFOLIO_ENV_ID, bars=universe, spec=EnvSpec(window=8), fit_bars=100, render_mode="ansi"
    )
    env.reset(seed=0)
    env.step(np.array([1.0, 0.0, 0.0, 0.0]))
    text: object = env.render()
    assert isinstance(text, str)
    assert "AAA=+1.00" in text and "BBB=+0.00" in text and "equity=" in text


def test_same_seed_same_episode_other_seed_other_start(universe: Universe) -> None:
    spec = EnvSpec(window=8, episode_length=50)

    def rollout(seed: int) -> tuple[int, list[float]]:
        env = PortfolioEnv(universe, spec=spec, fit_bars=100)
        _, info = env.reset(seed=seed)
        env.action_space.seed(seed)
        equities = [env.step(env.action_space.sample())[4]["equity"] for _ in range(50)]
        return info["t"], equities

    assert rollout(3) == rollout(3)
    starts = {rollout(seed)[0] for seed in range(6)}
    assert len(starts) > 1


def test_misaligned_or_missing_bars_are_refused_naming_the_symbol(universe: Universe) -> None:
    shifted = {**universe, "BBB": universe["BBB"].shift(1, freq="D")}
    with pytest.raises(DataError, match="bars for BBB are not aligned with AAA: bar 0 is"):
        PortfolioEnv(shifted, fit_bars=100)
    shorter = {**universe, "CCC": universe["CCC"].iloc[:-1]}
    with pytest.raises(
        DataError, match="CCC are not aligned with AAA: it has 499 bars, AAA has 500"
    ):
        PortfolioEnv(shorter, fit_bars=100)
    with pytest.raises(DataError, match="non-empty mapping"):
        PortfolioEnv({}, fit_bars=100)
    with pytest.raises(DataError, match="non-empty mapping"):
        PortfolioEnv(list(universe.values()), fit_bars=100)  # type: ignore[arg-type]


def test_bad_actions_and_starts_are_refused(universe: Universe) -> None:
    env = PortfolioEnv(universe, spec=EnvSpec(window=8), fit_bars=100)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="long_only action for 3 assets needs 4 values"):
        env.step(np.ones(3))
    with pytest.raises(ValueError, match="start bar 99 outside"):
        env.reset(options={"start": 99})
    with pytest.raises(ValueError, match="fit_bars must lie in"):
        PortfolioEnv(universe, fit_bars=500)
