import math

import numpy as np
import pandas as pd
import pytest
import torch

from evotrader.backtest.engine import run_backtest
from evotrader.backtest.policies import ConstantPolicy, MovingAverageCrossover, RandomPolicy
from evotrader.data import FeaturePipeline, generate_synthetic
from evotrader.env import EnvSpec, ExecutionModel, MarketEnv

STATELESS = EnvSpec(agent_state=False)  # a policy that reads no state runs batched


class ReplayPolicy:
    """Plays a fixed action sequence, whatever the batch size."""

    def __init__(self, actions: np.ndarray) -> None:
        self.actions, self.calls, self.cursor = actions, 0, 0

    def act(self, observations: np.ndarray) -> np.ndarray:
        self.calls += 1
        batch = self.actions[self.cursor : self.cursor + len(observations)]
        self.cursor += len(observations)
        return batch


def _env_episode(bars, pipeline, actions, spec: EnvSpec) -> tuple[float, float]:
    env = MarketEnv(bars, pipeline, spec, random_start=False)
    env.reset()
    total, info = 0.0, {}
    for action in actions:
        _, reward, terminated, truncated, info = env.step(int(action))
        total += reward
        if terminated or truncated:
            break
    return total, info["equity"]


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_env_episode_return_equals_backtest_return(bars, pipeline, fill) -> None:
    execution = ExecutionModel(
        commission_bps=3, half_spread_bps=2, slippage_bps=4, impact_coef=0.05, fill=fill
    )
    spec = EnvSpec(window=32, execution=execution, agent_state=False, episode_length=None)
    env = MarketEnv(bars, pipeline, spec, random_start=False)
    steps = env.market.last_decision - env.market.first_decision + 1
    actions = np.random.default_rng(0).integers(3, size=steps)
    total, final_equity = _env_episode(bars, pipeline, actions, spec)
    policy = ReplayPolicy(actions)
    result = run_backtest(policy, bars, pipeline=pipeline, spec=spec, batch_size=64)
    assert result.equity.iloc[-1] == final_equity
    assert total == pytest.approx(
        math.log(result.equity.iloc[-1] / result.equity.iloc[0]), abs=1e-12
    )
    assert policy.calls == math.ceil(steps / 64)  # batched: never one call per bar


def test_state_reading_policy_steps_through_the_env_and_agrees(bars, pipeline) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 8, 3))
    result = run_backtest(net, bars, pipeline=pipeline, spec=EnvSpec(window=16, agent_state=True))
    env = MarketEnv(bars, pipeline, EnvSpec(window=16, episode_length=None), random_start=False)
    obs, _ = env.reset()
    done, equity = False, None
    while not done:
        with torch.no_grad():
            action = int(net(torch.as_tensor(obs[None])).argmax())
        obs, _, terminated, truncated, info = env.step(action)
        done, equity = terminated or truncated, info["equity"]
    assert result.equity.iloc[-1] == pytest.approx(equity, rel=1e-12)
    assert result.metrics["n_trades"] > 0


def test_no_look_ahead_in_decisions(bars, pipeline) -> None:
    t_change = 420
    changed = bars.copy()
    changed.iloc[t_change + 1 :] *= np.linspace(0.5, 2.0, len(bars) - t_change - 1)[:, None]
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(24 * 8, 3))
    for agent_state, policy in [(False, MovingAverageCrossover(pipeline, 5, 20)), (True, net)]:
        a = run_backtest(
            policy, bars, pipeline=pipeline, spec=EnvSpec(window=24, agent_state=agent_state)
        )
        b = run_backtest(
            policy, changed, pipeline=pipeline, spec=EnvSpec(window=24, agent_state=agent_state)
        )
        # Position held during bar t+1 is the decision taken at bar t's close.
        upto = a.positions.index <= bars.index[t_change + 1]
        pd.testing.assert_series_equal(a.positions[upto], b.positions[upto])
        assert not a.equity.equals(b.equity)


def test_costs_reduce_returns_exactly_by_the_fees(bars, pipeline) -> None:
    policy = RandomPolicy(3, seed=4)
    free = run_backtest(
        RandomPolicy(3, seed=4),
        bars,
        pipeline=pipeline,
        spec=EnvSpec(execution=ExecutionModel(0, 0, 0), agent_state=False),
    )
    costly = run_backtest(
        policy,
        bars,
        pipeline=pipeline,
        spec=EnvSpec(execution=ExecutionModel(5, 5, 5), agent_state=False),
    )
    assert costly.metrics["fees"] > 0 and free.metrics["fees"] == 0
    assert costly.equity.iloc[-1] < free.equity.iloc[-1]
    assert costly.fills["cost"].sum() == pytest.approx(costly.metrics["fees"])
    assert (costly.fills["cost"] > 0).all()


def test_buy_and_hold_benchmark_is_on_the_same_bars_after_costs(bars, pipeline) -> None:
    result = run_backtest(
        ConstantPolicy(2), bars, pipeline=pipeline, spec=EnvSpec(window=16, agent_state=False)
    )
    pd.testing.assert_series_equal(result.equity, result.benchmark_equity, check_names=False)
    first_fill = bars["open"].iloc[pipeline.warmup + 16]
    last_close = bars["close"].iloc[-1]
    # One purchase at the first fill, paying 3 bps, then held to the end.
    expected = 100_000 * last_close / first_fill - 100_000 * 3e-4
    assert result.benchmark["final_equity"] == pytest.approx(expected)
    assert result.benchmark["n_trades"] == 1


def test_report_shows_strategy_next_to_buy_and_hold(bars, pipeline) -> None:
    text = run_backtest(
        MovingAverageCrossover(pipeline), bars, pipeline=pipeline, spec=STATELESS
    ).report()
    assert "buy & hold" in text and "Sharpe" in text


def test_bad_policy_output_fails_clearly(bars, pipeline) -> None:
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 3\)"):
        run_backtest(
            lambda obs: np.full(len(obs), 7),
            bars,
            pipeline=pipeline,
            spec=STATELESS,
        )
    with pytest.raises(ValueError, match="returned 1 actions"):
        run_backtest(
            lambda obs: np.zeros(1, dtype=int),
            bars,
            pipeline=pipeline,
            spec=STATELESS,
        )
    with pytest.raises(TypeError, match="integer"):
        run_backtest(lambda obs: np.zeros(len(obs)), bars, pipeline=pipeline, spec=STATELESS)
    with pytest.raises(TypeError, match="as a policy"):
        run_backtest(42, bars, pipeline=pipeline, spec=STATELESS)  # type: ignore[arg-type]


def test_unfitted_pipeline_is_refused(bars) -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        run_backtest(ConstantPolicy(1), bars, pipeline=FeaturePipeline(), spec=STATELESS)


def test_start_uses_earlier_bars_as_history_only(bars, pipeline) -> None:
    start = bars.index[450]
    policy = MovingAverageCrossover(pipeline, 5, 20)
    full = run_backtest(policy, bars, pipeline=pipeline, spec=EnvSpec(window=24, agent_state=False))
    late = run_backtest(
        policy, bars, pipeline=pipeline, start=start, spec=EnvSpec(window=24, agent_state=False)
    )
    assert late.equity.index[0] == start
    assert late.equity.iloc[0] == 100_000.0
    # Same decisions from `start` on: only the flat starting bar differs.
    assert (late.positions.iloc[1:] == full.positions.loc[late.positions.index[1:]]).all()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(24 * 8, 3))
    stateful = run_backtest(
        net, bars, pipeline=pipeline, start=start, spec=EnvSpec(window=24, agent_state=True)
    )
    assert stateful.equity.index[0] == start
    with pytest.raises(ValueError, match="history"):
        run_backtest(
            policy,
            bars,
            pipeline=pipeline,
            start=bars.index[10],
            spec=EnvSpec(window=24, agent_state=False),
        )


def test_annualisation_uses_the_reported_period_not_the_history() -> None:
    """Weekly history before daily trading: the Sharpe and annual return are annualised with
    the reported bars' frequency, as a hand computation from the equity curve does
    (ppy = returns / years, Sharpe = mean / std(ddof=1) * sqrt(ppy)); all 600 bars would
    give ~40 bars a year."""
    raw = generate_synthetic(600, seed=3, kind="regimes").bars
    history = pd.date_range(end="2009-12-25", periods=300, freq="W-FRI")
    reported = pd.bdate_range("2010-01-04", periods=300)
    bars = raw.set_axis(history.append(reported))
    pipeline = FeaturePipeline().fit(bars.iloc[:300])
    result = run_backtest(
        ConstantPolicy(2),
        bars,
        pipeline=pipeline,
        start=reported[0],
        spec=EnvSpec(window=16, agent_state=False),
    )
    equity = result.equity
    assert equity.index[0] == reported[0]
    returns = equity.pct_change().iloc[1:]
    years = (equity.index[-1] - equity.index[0]) / pd.Timedelta(days=365.25)
    ppy = len(returns) / years
    assert ppy == pytest.approx(261, rel=0.01)
    sharpe = returns.mean() / returns.std(ddof=1) * math.sqrt(ppy)
    annual = (equity.iloc[-1] / equity.iloc[0]) ** (ppy / len(returns)) - 1
    assert result.metrics["sharpe"] == pytest.approx(sharpe, rel=1e-12)
    assert result.metrics["annual_return"] == pytest.approx(annual, rel=1e-12)
    assert result.benchmark["sharpe"] == pytest.approx(sharpe, rel=1e-12)  # long = buy & hold
