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
from evotrader.strategies.templates._indicators import TRADING_DAYS, quarter_steps


def spec_targets(
    spec: StrategySpec,
    frames: Sequence[pd.DataFrame],
    parameters: Mapping[str, int | float] | None = None,
) -> np.ndarray:
    """Targets (bars, legs) decided at each close, as fractions of each leg's capital.

    ``parameters`` overrides the spec's own (already validated, e.g. by an optimiser's
    grid); members keep theirs. The combined targets then take the risk rules in order:
    no shorts, at most ``max_positions`` legs, sizing, then exits; every step reads closes
    <= t only.
    """
    own = template_signal(spec.template, frames, parameters or spec.parameters)
    others = [template_signal(m.template, frames, m.parameters) for m in spec.members]
    raw = combined(spec.combine, [own, *others]) if others else own
    risk = spec.risk
    if not risk.allow_short:
        raw = np.maximum(raw, 0.0)
    if risk.max_positions is not None:
        raw = strongest(raw, risk.max_positions)
    closes = np.column_stack([frame["close"].to_numpy(np.float64) for frame in frames])
    raw = sized(raw, closes, risk) * risk.position_size
    if risk.has_exits:
        raw = apply_exits(raw, closes, risk)
    return raw


def combined(method: str, signals: Sequence[np.ndarray]) -> np.ndarray:
    """One target per (bar, leg) from several templates' targets (see ``StrategySpec``).

    ``equal_weight`` is the mean target, rounded towards zero to a quarter step.

    ``score_rank`` sums the targets into a score per leg and holds, at full size on the
    score's side, the legs with the largest |score|: as many legs as the most invested
    template holds on that bar (lower column first on ties), none where the score is 0.
    """
    stack = np.stack(signals)  # (templates, bars, legs)
    if method == "equal_weight":  # rounded towards zero to the quarter steps the bot holds
        mean = stack.mean(axis=0)
        return np.sign(mean) * quarter_steps(np.abs(mean))
    if method == "intersection":
        agree = np.all(np.sign(stack) == np.sign(stack[0]), axis=0) & (stack[0] != 0.0)
        return np.where(agree, np.sign(stack[0]) * np.abs(stack).min(axis=0), 0.0)
    score = stack.sum(axis=0)
    held = (stack != 0.0).sum(axis=2).max(axis=0)  # legs the most invested template holds
    order = np.argsort(-np.abs(score), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(score.shape[1])[None, :], axis=1)
    return np.where(rank < held[:, None], np.sign(score), 0.0)


def strongest(targets: np.ndarray, count: int) -> np.ndarray:
    """Only the ``count`` largest |targets| of each bar stay open (lower column on ties)."""
    if targets.shape[1] <= count:
        return targets
    order = np.argsort(-np.abs(targets), axis=1, kind="stable")
    keep = np.zeros(targets.shape, dtype=bool)
    np.put_along_axis(keep, order[:, :count], True, axis=1)
    return np.where(keep, targets, 0.0)


def sized(targets: np.ndarray, closes: np.ndarray, risk: RiskParams) -> np.ndarray:
    """Targets scaled by the sizing method, rounded towards zero to quarter steps.

    The scale at bar t uses returns up to t; bars without enough history hold nothing.
    """
    if risk.sizing == "fixed":
        return targets
    returns = np.diff(np.log(closes), axis=0, prepend=np.nan)
    window = risk.sizing_window
    if risk.sizing == "volatility_target":
        volatility = pd.DataFrame(returns).rolling(window).std().to_numpy() * np.sqrt(TRADING_DAYS)
        scale = risk.target_vol / volatility
    else:  # kelly: the book's own unit bets, each held from the previous close
        held = np.sign(np.vstack([np.zeros((1, targets.shape[1])), targets[:-1]]))
        book = pd.Series(np.nan_to_num(held * returns).mean(axis=1))
        rolling = book.rolling(window)
        kelly = (rolling.mean() / rolling.var()).to_numpy()
        scale = np.clip(np.nan_to_num(kelly, nan=0.0), 0.0, risk.kelly_cap)[:, None]
    scale = np.nan_to_num(np.asarray(scale, dtype=np.float64), nan=0.0, posinf=0.0)
    return np.sign(targets) * quarter_steps(np.abs(targets) * np.minimum(scale, 1.0))


def apply_exits(targets: np.ndarray, closes: np.ndarray, risk: RiskParams) -> np.ndarray:
    """Cut positions to flat on stop-loss, take-profit, trailing stop or maximum holding time.

    A trade starts at the close where the targets' signs change to a non-flat set; its
    return at close t is the target-weighted return of the legs since that close, divided
    by the gross target. A trailing stop fires when that return falls ``trailing_stop`` below
    its best since the entry. When an exit fires at t, the target is 0 from t on until the
    signs change again (no re-entry into the same signal). Causal: only closes <= t are read.
    """
    out = targets.copy()
    sides = np.sign(targets)
    entry, best = -1, 0.0
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
            entry, best = t, 0.0
        weights = targets[entry]
        trade_return = float(weights @ (closes[t] / closes[entry] - 1.0)) / np.abs(weights).sum()
        best = max(best, trade_return)
        if (
            (risk.stop_loss is not None and trade_return <= -risk.stop_loss)
            or (risk.take_profit is not None and trade_return >= risk.take_profit)
            or (
                risk.trailing_stop is not None
                and (1.0 + trade_return) / (1.0 + best) - 1.0 <= -risk.trailing_stop
            )
            or (risk.max_holding_bars is not None and t - entry >= risk.max_holding_bars)
        ):
            out[t] = 0.0
            blocked, entry = sides[t], -1
    return out
