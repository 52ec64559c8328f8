"""The IB cost model, apart from NautilusTrader so the run's schema can nest it.

``IBCosts`` follows IBKR's Fixed pricing for US stocks: $0.005 a share, $1 minimum, at most
1% of the trade's value, per fill, plus slippage in basis points of notional. NautilusTrader
charges it (``nautilus_replay.IBFeeModel``); validation's settings carry it
(``strategies/settings.ValidationConfig.costs``), which configuring loads, so this module
imports no more than our execution model.
"""

from __future__ import annotations

from dataclasses import dataclass

from evotrader.core.checks import require_nonnegative
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
