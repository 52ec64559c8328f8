"""A portfolio policy judged on one time split, and its checkpoint in the common format.

The portfolio stages select on the validation split as the single-symbol stages do, but
through the portfolio backtest engine (per-asset costs, fills at the next open) and against
equal weight over the same assets (rebalanced as the policy may be, after the same costs),
the baseline a universe is judged by, and buy-and-hold of the universe (equal weight bought
at the split's start and never rebalanced: what the run summary's "B&H" columns show): the
same two baselines run_backtest.py reports.
Its checkpoints record the universe reference and the PortfolioSpec, so
``PortfolioCheckpoint`` can trade them again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from evotrader.backtest.baselines import (
    BUY_AND_HOLD,
    EQUAL_WEIGHT,
    buy_and_hold,
    compare_with_baselines,
    equal_weight,
)
from evotrader.backtest.portfolio import PortfolioResult
from evotrader.backtest.significance import bar_returns
from evotrader.core.checkpoint import Checkpoint
from evotrader.env import EnvSpec
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.training.guards import PortfolioPolicy, portfolio_settings
from evotrader.training.market_envs import UniverseInputs
from evotrader.training.run_folder import FINGERPRINT_FILE, Fingerprint
from evotrader.training.stages import STAGES

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from evotrader.training.pipeline import CheckpointedPolicy, StageContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitComparison:
    """The policy and equal weight over one split's bars, after costs."""

    policy: PortfolioResult
    equal_weight: PortfolioResult
    buy_hold: PortfolioResult

    def numbers(self) -> dict[str, float]:
        """Headline figures (the run summary's keys too); ``excess_return`` is over equal
        weight; ``n_trades`` counts per-asset fills."""
        mine, ew, hold = self.policy.metrics, self.equal_weight.metrics, self.buy_hold.metrics
        return {
            "sharpe": float(mine["sharpe"]),
            "total_return": float(mine["total_return"]),
            "max_drawdown": float(mine["max_drawdown"]),
            "turnover": float(mine["turnover"]),
            "equal_weight_sharpe": float(ew["sharpe"]),
            "equal_weight_return": float(ew["total_return"]),
            "excess_return": float(mine["total_return"] - ew["total_return"]),
            "buy_hold_sharpe": float(hold["sharpe"]),
            "buy_hold_return": float(hold["total_return"]),
            "n_trades": float(len(self.policy.fills)),
        }


def compare_on_split(
    net: PortfolioTransformer, inputs: UniverseInputs, env: EnvSpec, split: pd.DataFrame
) -> SplitComparison:
    """``net`` as a weights policy, equal weight and buy-and-hold over ``split``'s dates;
    earlier bars serve as history only. The baselines are run_backtest.py's own
    (``compare_with_baselines``, same settings and costs), so a run's summary and its
    backtest judge the same equal weight."""
    settings = portfolio_settings(env, inputs.portfolio)
    policy = PortfolioPolicy(net, inputs.pipeline, env, inputs.portfolio)
    runs = compare_with_baselines(
        policy,
        inputs.bars(split, history=True),
        settings,
        start=split.index[0],
        baselines={EQUAL_WEIGHT: equal_weight, BUY_AND_HOLD: buy_and_hold},
    ).results
    return SplitComparison(runs["policy"], runs[EQUAL_WEIGHT], runs[BUY_AND_HOLD])


def validate_portfolio(
    ctx: StageContext,
    inputs: UniverseInputs,
    net: PortfolioTransformer,
    iteration: int,
    writer: SummaryWriter,
    best: dict[str, float],
) -> dict[str, float]:
    """The validation split's figures, recorded as a trial against equal weight and logged."""
    comparison = compare_on_split(net, inputs, ctx.config.env, inputs.splits.validation)
    ctx.trials.record(
        ctx.name,
        f"iteration {iteration}",
        bar_returns(comparison.policy.equity),
        bar_returns(comparison.equal_weight.equity),
    )
    numbers = comparison.numbers()
    for name, value in numbers.items():
        writer.add_scalar(f"validation/{name}", value, iteration)
    improved = numbers["sharpe"] > best["sharpe"]
    log.info(
        f"[{ctx.name}] validation (used for selection) sharpe={numbers['sharpe']:.2f} "
        f"(equal weight {numbers['equal_weight_sharpe']:.2f}) "
        f"return={numbers['total_return']:.2%} (equal weight "
        f"{numbers['equal_weight_return']:.2%}){'  * best, saved' if improved else ''}"
    )
    return numbers


def portfolio_checkpoint(
    ctx: StageContext,
    inputs: UniverseInputs,
    kind: str,
    policy: CheckpointedPolicy,
    hyperparameters: dict[str, Any],
    metrics: dict[str, float],
    **extra: Any,
) -> Checkpoint:
    """A portfolio policy in the common format: the universe's symbols joined by "+" as its
    symbol, its splits' ranges, and in ``extra`` the universe reference and PortfolioSpec."""
    fingerprint = Fingerprint.load(ctx.run_dir / FINGERPRINT_FILE)
    return Checkpoint(
        kind=kind,
        architecture=policy.architecture(),
        state_dict=policy.state_dict(),
        hyperparameters={**hyperparameters, "seed": ctx.config.seed},
        feature_pipeline=inputs.pipeline.state_dict(),
        env=ctx.config.env.to_dict(),
        symbol=inputs.name,
        data_range=replace(ctx, splits=inputs.splits).data_range(),
        metrics={key: float(value) for key, value in metrics.items()},
        extra={
            "stage": ctx.name,
            "universe": inputs.ref.to_dict(),
            "portfolio": inputs.portfolio.to_dict(),
            "run": {
                "name": ctx.config.run_name,
                "fingerprint": fingerprint.stage_digest(ctx.name, STAGES.names()),
            },
            **extra,
        },
    )
