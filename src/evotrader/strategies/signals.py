"""A spec's target positions on one book: template signal, sizing, shorting rule and exits.

This is the single place where a spec becomes targets; our engine, backtesting.py and the
NautilusTrader translator all trade its output, so they differ only in how orders fill.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from evotrader.strategies.spec import RiskParams, StrategySpec
from evotrader.strategies.templates import template_signal


def spec_targets(
    spec: StrategySpec,
    frames: Sequence[pd.DataFrame],
    parameters: Mapping[str, int | float] | None = None,
) -> np.ndarray:
    """Targets (bars, legs) decided at each close, as fractions of each leg's capital.

    ``parameters`` overrides the spec's (already validated, e.g. by an optimiser's grid).
    """
    raw = template_signal(spec.template, frames, parameters or spec.parameters)
    if not spec.risk.allow_short:
        raw = np.maximum(raw, 0.0)
    raw = raw * spec.risk.position_size
    if spec.risk.has_exits:
        closes = np.column_stack([frame["close"].to_numpy(np.float64) for frame in frames])
        raw = apply_exits(raw, closes, spec.risk)
    return raw


def apply_exits(targets: np.ndarray, closes: np.ndarray, risk: RiskParams) -> np.ndarray:
    """Cut positions to flat on stop-loss, take-profit or maximum holding time.

    A trade starts at the close where the targets' signs change to a non-flat set; its
    return at close t is the target-weighted return of the legs since that close, divided
    by the gross target. When an exit fires at t, the target is 0 from t on until the signs
    change again (no re-entry into the same signal). Causal: only closes <= t are read.
    """
    out = targets.copy()
    sides = np.sign(targets)
    entry = -1
    blocked: np.ndarray | None = None
    for t in range(len(targets)):
        if blocked is not None and np.array_equal(sides[t], blocked):
            out[t] = 0.0
            continue
        blocked = None
        if not sides[t].any():
            entry = -1
            continue
        if entry < 0 or not np.array_equal(sides[t], sides[entry]):
            entry = t
        weights = targets[entry]
        trade_return = float(weights @ (closes[t] / closes[entry] - 1.0)) / np.abs(weights).sum()
        if (
            (risk.stop_loss is not None and trade_return <= -risk.stop_loss)
            or (risk.take_profit is not None and trade_return >= risk.take_profit)
            or (risk.max_holding_bars is not None and t - entry >= risk.max_holding_bars)
        ):
            out[t] = 0.0
            blocked, entry = sides[t], -1
    return out
