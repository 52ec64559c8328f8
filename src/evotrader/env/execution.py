"""The one execution model: fill timing and costs, shared by env, backtest and sim broker.

A decision taken on bar t's close fills at bar t+1's open (``fill="next_open"``, the
default) or at bar t's close (``fill="close"``). A trade moves the account from its
current units to ``target * equity / price`` units and pays, on the traded notional,
commission + half-spread + slippage (all in basis points) plus an optional square-root
market impact ``impact_coef * sigma * sqrt(shares / average_volume)`` whose sigma and
average volume are trailing (bars <= t), so even the cost model cannot see the future.
Impact on bars without any volume (close-only data) is refused, not silently zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from evotrader.core.checks import require_at_least
from evotrader.data.errors import DataError
from evotrader.data.features import has_volume

Number = TypeVar("Number", float, np.ndarray)
FILL_TIMINGS = ("next_open", "close")


@dataclass(frozen=True)
class ExecutionModel:
    """Costs and fill timing. Every component is charged on the traded notional."""

    commission_bps: float = 1.0
    half_spread_bps: float = 1.0
    slippage_bps: float = 1.0
    impact_coef: float = 0.0
    impact_window: int = 20
    fill: str = "next_open"  # one of FILL_TIMINGS (a str, so the Hydra schema can nest this)

    def __post_init__(self) -> None:
        if self.fill not in FILL_TIMINGS:
            raise ValueError(f"execution fill must be one of {FILL_TIMINGS}, got {self.fill!r}")
        costs = ("commission_bps", "half_spread_bps", "slippage_bps", "impact_coef")
        require_at_least("execution ", self, 0, *costs)
        require_at_least("execution ", self, 2, "impact_window")

    @property
    def linear_rate(self) -> float:
        """Cost per unit of traded notional that does not depend on trade size."""
        return (self.commission_bps + self.half_spread_bps + self.slippage_bps) / 1e4

    def prices(self, bars: pd.DataFrame) -> ExecutionPrices:
        """Per-decision fill prices, per-bar marks and impact scales for these bars."""
        close = bars["close"].to_numpy(np.float64)
        if self.fill == "next_open":
            fill = np.append(bars["open"].to_numpy(np.float64)[1:], np.nan)
        else:
            fill = close.copy()
        impact = np.zeros(len(bars))
        if self.impact_coef > 0:
            self._require_volume(bars)
            sigma = np.log(bars["close"]).diff().rolling(self.impact_window, min_periods=2).std()
            volume = bars["volume"].rolling(self.impact_window, min_periods=1).mean()
            scale = self.impact_coef * sigma / np.sqrt(volume.where(volume > 0))
            impact = np.nan_to_num(scale.to_numpy(np.float64), nan=0.0)
        return ExecutionPrices(fill=fill, mark=close, impact=impact)

    def _require_volume(self, bars: pd.DataFrame) -> None:
        """Refuse impact on bars without volume, where it would silently charge nothing."""
        if not has_volume(bars):
            span = f"{bars.index[0]} to {bars.index[-1]}" if len(bars) else "no bars"
            raise DataError(
                f"execution impact_coef={self.impact_coef:g} needs traded volume, but the "
                f"{len(bars)} bars ({span}) have none (close-only data?): square-root impact "
                "would charge nothing; set impact_coef=0 for bars without volume"
            )


@dataclass(frozen=True)
class ExecutionPrices:
    """Arrays aligned with the bars: ``fill[t]`` is where a decision at t executes."""

    fill: np.ndarray
    mark: np.ndarray
    impact: np.ndarray


def rebalance(
    cash: Number,
    units: Number,
    target: Number,
    price: Number,
    linear_rate: float,
    impact: Number,
) -> tuple[Number, Number, Number]:
    """Trade to ``target`` x equity at ``price``; returns (cash, units, cost).

    Works on Python floats (MarketEnv, sim broker) and on numpy arrays (vector env)
    with the same arithmetic, so every component charges costs identically. Sizing
    uses equity before costs; the cost is paid from cash.
    """
    equity = cash + units * price
    new_units = target * equity / price
    traded = abs(new_units - units)
    cost = traded * price * (linear_rate + impact * traded**0.5)
    cash = cash - (new_units - units) * price - cost
    return cash, new_units, cost


def rebalance_portfolio(
    cash: Number,
    units: np.ndarray,
    target: np.ndarray,
    price: np.ndarray,
    linear_rate: float | np.ndarray,
    impact: np.ndarray,
) -> tuple[Number, np.ndarray, np.ndarray]:
    """Trade every asset to ``target[..., i]`` x its portfolio's equity at ``price[..., i]``
    from that portfolio's one cash balance; returns (cash, units, cost per asset).

    One portfolio (cash a float, the rest of shape (assets,)) or a batch (cash of shape
    (...), the rest (..., assets)) in one call, with the same arithmetic per portfolio, so a
    vector env's accounts move exactly as single envs do. ``linear_rate`` is one rate or one
    per asset (per-asset commission + spread + slippage). Per asset this is ``rebalance``'s
    arithmetic with the portfolio's equity in place of a single account's, so a one-asset
    portfolio moves exactly as a one-symbol account does.
    """
    accounts = cash.shape if isinstance(cash, np.ndarray) else ()
    _check_portfolio_shapes(accounts, units, target, price, linear_rate, impact)
    equity = cash + (units * price).sum(axis=-1)
    new_units = target * (equity[..., None] if accounts else equity) / price
    traded = np.abs(new_units - units)
    cost = traded * price * (linear_rate + impact * traded**0.5)
    new_cash = cash - ((new_units - units) * price).sum(axis=-1) - cost.sum(axis=-1)
    if isinstance(cash, np.ndarray):
        return np.asarray(new_cash), new_units, cost
    return float(new_cash), new_units, cost


def _check_portfolio_shapes(
    accounts: tuple[int, ...],
    units: np.ndarray,
    target: np.ndarray,
    price: np.ndarray,
    linear_rate: float | np.ndarray,
    impact: np.ndarray,
) -> None:
    """One clear error when the arrays of ``rebalance_portfolio`` do not line up (cheap when
    they do: it runs on every step of the portfolio envs)."""
    expected = units.shape
    rate_shape = linear_rate.shape if isinstance(linear_rate, np.ndarray) else ()
    if (
        expected[:-1] == accounts
        and len(expected) == len(accounts) + 1
        and target.shape == price.shape == impact.shape == expected
        and (rate_shape == () or rate_shape == expected[-1:])
    ):
        return
    if len(expected) != len(accounts) + 1 or expected[:-1] != accounts:
        raise ValueError(
            f"rebalance_portfolio: units of shape {expected} do not match cash of shape "
            f"{accounts}; units need the shape (*cash.shape, assets)"
        )
    for name, array in (("target", target), ("price", price), ("impact", impact)):
        if array.shape != expected:
            raise ValueError(
                f"rebalance_portfolio: {name} has shape {array.shape}, units {expected}"
            )
    raise ValueError(
        f"rebalance_portfolio: linear_rate must be one rate or one per asset "
        f"({expected[-1]}), got shape {rate_shape}"
    )


@dataclass
class SimAccount:
    """One symbol's cash and units, traded with the shared ``rebalance`` arithmetic (the sim
    broker's account, the trading guard's paper book, the telemetry's expected equity)."""

    cash: float
    units: float = 0.0

    def equity(self, price: float) -> float:
        return self.cash + self.units * price

    def rebalance_to(
        self, target: float, price: float, rate: float, impact: float
    ) -> tuple[float, float]:
        """Trade to ``target`` x equity at ``price``; returns (units traded, cost)."""
        before = self.units
        self.cash, self.units, cost = rebalance(self.cash, self.units, target, price, rate, impact)
        return self.units - before, cost

    def trade(
        self, quantity: float, price: float, rate: float, impact: float
    ) -> tuple[float, float]:
        """Trade ``quantity`` signed units at ``price`` (costs as ``rebalance`` charges them)."""
        equity = self.equity(price)
        if not equity > 0:
            raise ValueError(f"account equity {equity:,.2f} cannot carry a trade")
        return self.rebalance_to((self.units + quantity) * price / equity, price, rate, impact)
