"""Evaluation of any policy on one time split, after costs, next to buy-and-hold.

Only the test split is out of sample: the validation split is where every stage selects.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from evotrader.backtest.engine import BacktestResult, run_backtest
from evotrader.backtest.significance import bar_returns
from evotrader.core.policy import Policy
from evotrader.data import FeaturePipeline
from evotrader.env import EnvSpec

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from evotrader.training.pipeline import StageContext

log = logging.getLogger(__name__)


def evaluate_on_split(
    policy: Policy,
    bars: pd.DataFrame,
    split: pd.DataFrame,
    pipeline: FeaturePipeline,
    env: EnvSpec,
) -> BacktestResult:
    """Backtest ``policy`` over ``split``'s bars, earlier bars serving as history only."""
    return run_backtest(
        policy,
        bars.loc[: split.index[-1]],
        start=split.index[0],
        pipeline=pipeline,
        spec=env,
    )


HEADLINE = (
    "sharpe",
    "total_return",
    "max_drawdown",
    "n_trades",
    "buy_hold_sharpe",
    "buy_hold_return",
)


def headline(result: BacktestResult) -> dict[str, float]:
    """The few numbers a progress line and a summary table show, with buy-and-hold."""
    numbers = {key: float(result.metrics[key]) for key in HEADLINE[:4]}
    numbers["buy_hold_sharpe"] = float(result.benchmark["sharpe"])
    numbers["buy_hold_return"] = float(result.benchmark["total_return"])
    return numbers


def validate(
    ctx: StageContext,
    policy: Policy,
    iteration: int,
    writer: SummaryWriter,
    best: dict[str, float],
) -> dict[str, float]:
    """Backtest on the validation split, record it as a trial, and print it next to
    buy-and-hold.

    The stage decides what to keep; ``best`` only marks whether this evaluation beats it.
    Every evaluation is a candidate the stage could select, so each goes into the run's
    trial ledger, keyed by iteration (a resumed stage re-scoring one replaces it).
    """
    result = evaluate_on_split(
        policy, ctx.bars, ctx.splits.validation, ctx.pipeline, ctx.config.env
    )
    ctx.trials.record(
        ctx.name,
        f"iteration {iteration}",
        bar_returns(result.equity),
        bar_returns(result.benchmark_equity),
    )
    numbers = headline(result)
    for name, value in numbers.items():
        writer.add_scalar(f"validation/{name}", value, iteration)
    improved = numbers["sharpe"] > best["sharpe"]
    log.info(
        f"[{ctx.name}] validation (used for selection) sharpe={numbers['sharpe']:.2f} "
        f"(buy&hold {numbers['buy_hold_sharpe']:.2f}) return={numbers['total_return']:.2%} "
        f"trades={int(numbers['n_trades'])}{'  * best, saved' if improved else ''}"
    )
    return numbers
