"""The IB cost model and the market's liquidity, apart from NautilusTrader so the run's
schema can nest them.

``IBCosts`` follows IBKR's Fixed pricing for US stocks: $0.005 a share, $1 minimum, at most
1% of the trade's value, per fill, plus slippage in basis points of notional. NautilusTrader
charges it (``nautilus_replay.IBFeeModel``); validation's settings carry it
(``strategies/settings.ValidationConfig.costs``), which configuring loads, so this module
imports no more than our execution model. ``Liquidity`` (a participation limit on each bar's
volume and square-root impact) is what NautilusTrader's simulated book offers an order
(``nautilus_replay.BarLiquidity``).
"""

from __future__ import annotations

from dataclasses import dataclass

from evotrader.core.checks import require_at_least, require_between, require_nonnegative
from evotrader.env.execution import ExecutionModel


@dataclass(frozen=True)
class IBCosts:
    """IB-like costs per fill: per-share commission with a minimum and a cap, plus slippage.

    commission = min(max(per_share x shares, minimum), maximum_rate x value); slippage =
    slippage_bps x value (half-spread and price slippage together). Defaults follow IBKR's
    Fixed US-stock pricing ($0.005/share, $1.00 minimum, 1% cap).
    """

    per_share: float = 0.005
    minimum: float = 1.0
    maximum_rate: float = 0.01
    slippage_bps: float = 2.0

    def __post_init__(self) -> None:
        require_nonnegative("costs.", self, "per_share", "minimum", "maximum_rate", "slippage_bps")
        if not self.slippage_bps < 1e4:
            raise ValueError(f"costs.slippage_bps must be in [0, 10000), got {self.slippage_bps}")

    @classmethod
    def linear(cls, execution: ExecutionModel) -> IBCosts:
        """Costs equal to ``execution``'s (all of it as bps of notional), for comparisons."""
        if execution.fill != "close" or execution.impact_coef > 0:
            raise ValueError(
                "NautilusTrader fills at the decision bar's close without market impact: "
                f"compare with fill='close' and impact_coef=0, got {execution}"
            )
        return cls(
            per_share=0.0, minimum=0.0, maximum_rate=0.0, slippage_bps=1e4 * execution.linear_rate
        )

    def commission(self, shares: float, price: float) -> float:
        value = shares * price
        return min(max(self.per_share * shares, self.minimum), self.maximum_rate * value)

    def slippage(self, shares: float, price: float) -> float:
        return self.slippage_bps / 1e4 * shares * price

    def execution(self, price: float) -> ExecutionModel:
        """Our engine's nearest model at a typical ``price`` (commission as bps there)."""
        return ExecutionModel(
            commission_bps=1e4 * self.per_share / price,
            half_spread_bps=0.0,
            slippage_bps=self.slippage_bps,
            fill="close",
        )


@dataclass(frozen=True)
class Liquidity:
    """The market's side of a fill: how much of a bar's volume an order may take, and the
    square-root impact it pays for its size.

    An order fills at most ``participation`` x its bar's volume (whole shares) on that bar
    (None: no limit); the rest waits for the following bars. Impact moves the fill price by
    ``impact_coef x sigma x sqrt(shares / average volume)`` of the price, sigma and volume
    trailing over ``impact_window`` bars (our execution model's formula). Bars without any
    volume (close-only data) get neither: there is nothing to measure them against.
    """

    participation: float | None = None
    impact_coef: float = 0.0
    impact_window: int = 20

    def __post_init__(self) -> None:
        if self.participation is not None:
            require_between("", self, 0, 1, "participation", include_high=True)
        require_nonnegative("", self, "impact_coef")
        require_at_least("", self, 2, "impact_window")

    @property
    def limits(self) -> bool:
        """Whether this liquidity ever holds a fill back or moves its price."""
        return self.participation is not None or self.impact_coef > 0
