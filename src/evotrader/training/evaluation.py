"""Out-of-sample evaluation of any policy on a time split, after costs."""

from __future__ import annotations

import pandas as pd

from evotrader.backtest.engine import BacktestResult, run_backtest
from evotrader.backtest.policies import Policy
from evotrader.config import EnvConfig, execution_from
from evotrader.data import FeaturePipeline


def evaluate_on_split(
    policy: Policy,
    bars: pd.DataFrame,
    split: pd.DataFrame,
    pipeline: FeaturePipeline,
    env: EnvConfig,
) -> BacktestResult:
    """Backtest ``policy`` over ``split``'s bars, earlier bars serving as history only."""
    return run_backtest(
        policy,
        bars.loc[: split.index[-1]],
        start=split.index[0],
        pipeline=pipeline,
        window=env.window,
        positions=env.positions,
        execution=execution_from(env.execution),
        initial_cash=env.initial_cash,
        agent_state=env.agent_state,
    )


def headline(result: BacktestResult) -> dict[str, float]:
    """The few numbers a progress line and a summary table show, with buy-and-hold."""
    keys = ("sharpe", "total_return", "max_drawdown", "n_trades")
    numbers = {key: float(result.metrics[key]) for key in keys}
    numbers["buy_hold_sharpe"] = float(result.benchmark["sharpe"])
    numbers["buy_hold_return"] = float(result.benchmark["total_return"])
    return numbers
