"""Our own engine as a strategy translator: a spec's targets replayed by ``simulate``.

The targets come from the same ``spec_targets`` every translator uses, and ``simulate`` is
the backtest engine's account replay, which calls the execution model's ``rebalance`` once
per trade, so a spec pays exactly the fills and costs an RL policy would on the same bars.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np
import pandas as pd

from evotrader.backtest.engine import simulate
from evotrader.env.execution import ExecutionModel
from evotrader.strategies.runs import Leg, LegRun, SpecRun, run_legs
from evotrader.strategies.spec import StrategySpec
from evotrader.strategies.universe import Book


def run_engine(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    *,
    parameters: Mapping[str, int | float] | None = None,
    start: str | pd.Timestamp | None = None,
    books: list[Book] | None = None,
    execution: ExecutionModel | None = None,
    cash: float = 1_000_000.0,
) -> SpecRun:
    """Run ``spec`` on ``data`` (bars by symbol) in evotrader's engine, after costs.

    Trading starts at ``start`` (earlier bars are indicator history); ``cash`` is split
    equally across legs. See ``runs.plan`` for how ``books`` default.
    """
    execution = execution or ExecutionModel()
    return run_legs(
        spec,
        data,
        partial(_fill, execution),
        execution,
        parameters=parameters,
        start=start,
        books=books,
        cash=cash,
    )


def _fill(execution: ExecutionModel, leg: Leg, first: int, cash: float) -> LegRun:
    count = len(leg.bars) - 1 - first  # decisions first .. last bar - 1
    sim = simulate(
        leg.targets[first : first + count],
        execution.prices(leg.bars),
        first,
        execution.linear_rate,
        cash,
    )
    marks = sim.fill_decisions + 1  # a decision's fill changes the position from the next mark
    delta = np.zeros(count + 1)
    delta[marks] = sim.fill_units
    fill_prices = np.full(count + 1, np.nan)
    fill_prices[marks] = sim.fill_prices
    notional = float(np.abs(sim.fill_units * sim.fill_prices).sum())
    return LegRun(
        leg=leg,
        equity=sim.equity,
        units=np.where(sim.positions == 0.0, 0.0, np.cumsum(delta)),  # no rounding residue
        fill_prices=fill_prices,
        traded_notional=notional,
        costs=float(sim.fill_costs.sum()),
        commission=notional * execution.commission_bps / 1e4,
    )
