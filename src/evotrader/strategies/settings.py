"""The strategy track's settings: the screen's, validation's, the evolver's and Claude's.

They live apart from the code that uses them, light to import (no backtesting.py, torch,
NautilusTrader or anthropic), because the run's schema (``evotrader.config``) nests them as
they are: each checks its values in ``__post_init__``, so a bad one stops the run when its
config loads, and a message names the key as the YAML spells it (``screening.n_folds ...``).
OmegaConf hands tuples over as lists; the classes turn them back into tuples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from evotrader.backtest.costs import IBCosts, Liquidity
from evotrader.core.checks import (
    require_at_least,
    require_between,
    require_finite,
    require_nonnegative,
    require_positive,
)


@dataclass(frozen=True)
class ScreeningConfig:
    """Walk-forward settings and pass criteria (all strict: Sharpe > 0.5, drawdown < 30%...).

    The first ``min_train_fraction`` of the bars is only ever in-sample; the rest is cut
    into ``n_folds`` out-of-sample folds. Each parameter's grid has ``grid_points`` values
    over its bounds plus the spec's own value; grids larger than ``max_combinations`` are
    sampled by backtesting.py (seeded by the run: ``screen(..., seed=)``). ``maximize`` is
    the backtesting.py statistic ranked for one-leg specs; multi-leg specs rank the legs'
    mean return. ``beat_benchmark``: the Sharpe must also beat buy-and-hold's.
    """

    min_sharpe: float = 0.5
    max_drawdown: float = 0.30
    min_trades: int = 20
    min_profit_factor: float = 1.2
    n_folds: int = 4
    min_train_fraction: float = 0.4
    embargo: int = 0
    grid_points: int = 3
    max_combinations: int = 64
    maximize: str = "Sharpe Ratio"
    cash: float = 1_000_000.0
    beat_benchmark: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.beat_benchmark, bool):
            raise ValueError(
                f"screening.beat_benchmark must be true or false, got {self.beat_benchmark!r}"
            )
        require_between("screening.", self, 0, 1, "max_drawdown", include_high=True)
        require_finite("screening.", self, "min_sharpe")
        require_nonnegative("screening.", self, "min_profit_factor")
        require_at_least("screening.", self, 0, "min_trades", "embargo")
        require_at_least("screening.", self, 1, "n_folds", "grid_points", "max_combinations")
        require_between("screening.", self, 0, 1, "min_train_fraction")
        if not self.maximize:
            raise ValueError("screening.maximize must name a backtesting.py statistic")
        require_positive("screening.", self, "cash")

    def failures(
        self, summary: Mapping[str, float], benchmark: Mapping[str, float] | None = None
    ) -> list[str]:
        """The pass criteria ``summary`` misses, each as '<metric> <value> <limit>'.

        With ``beat_benchmark``, the Sharpe must also exceed ``benchmark``'s (buy-and-hold
        of the universe on the same bars, after costs): an edge that is only the market's
        drift is no edge.
        """
        failed = []
        sharpe, drawdown = summary["sharpe"], abs(summary["max_drawdown"])
        trades, profit_factor = summary["n_trades"], summary["profit_factor"]
        if not sharpe > self.min_sharpe:
            failed.append(f"walk-forward Sharpe {sharpe:.2f} {_below(sharpe, self.min_sharpe)}")
        if self.beat_benchmark:
            failed += _not_beating("walk-forward", sharpe, benchmark)
        if not drawdown < self.max_drawdown:
            failed.append(f"max drawdown {drawdown:.1%} >= {self.max_drawdown:.0%}")
        if not trades > self.min_trades:
            failed.append(f"{trades:.0f} trades, need more than {self.min_trades}")
        if not profit_factor > self.min_profit_factor:
            failed.append(
                f"profit factor {profit_factor:.2f} {_below(profit_factor, self.min_profit_factor)}"
            )
        return failed


def _not_beating(label: str, sharpe: float, benchmark: Mapping[str, float] | None) -> list[str]:
    """The benchmark criterion: an edge must beat buy-and-hold's Sharpe on the same bars."""
    held = (benchmark or {}).get("sharpe", math.nan)
    if not math.isfinite(held) or sharpe > held:
        return []
    return [f"{label} Sharpe {sharpe:.2f} does not beat buy-and-hold's {held:.2f} on the same bars"]


def _below(value: float, limit: float) -> str:
    return f"{'<' if value < limit else '='} {limit:g}"


@dataclass(frozen=True)
class RegimePeriod:
    """A calendar period of one market regime, named from the S&P 500's own history."""

    regime: str
    start: str
    end: str
    note: str = ""

    def __post_init__(self) -> None:
        if not pd.Timestamp(self.start) < pd.Timestamp(self.end):
            raise ValueError(f"validation.regimes: {self} must start before it ends")


# Chosen on the embedded S&P 500 closes (1999-2018); returns and annualised volatility of
# daily log returns over each period. A regime may have several periods; each spec is
# judged on the bars its data covers.
SP500_REGIMES: tuple[RegimePeriod, ...] = (
    RegimePeriod("bull", "2003-03-12", "2007-10-09", "trough to peak: +95%, volatility 12%"),
    RegimePeriod("bear", "2000-03-24", "2002-10-09", "dot-com bust: -49%"),
    RegimePeriod("bear", "2007-10-10", "2009-03-09", "financial crisis: -57%"),
    RegimePeriod("high_vol", "2008-09-01", "2009-06-30", "Lehman to recovery: volatility 49%"),
    RegimePeriod("sideways", "2011-01-03", "2011-12-30", "-1% over the year, range 19%"),
    RegimePeriod("sideways", "2015-01-02", "2015-12-31", "-1% over the year, range 12%"),
)


# The market regimes ``diagnostics.label_regimes`` names, which validation judges per bar
# of its held-out window.
REGIME_LABELS = ("bull", "bear", "high_vol", "sideways")


@dataclass(frozen=True)
class ValidationConfig:
    """Pass criteria (Sharpe > 0.3, drawdown < 35%, positive in >= 2 of the held-out
    window's regimes, capacity > $50k), the account, broker costs, the fill model, the
    calendar regime periods reported in sample, and the capacity scan.

    Fill model: with ``slippage_in_price`` the costs' slippage moves fill prices (buys above
    the close, sells below) instead of being charged as a fee; an order fills at most
    ``participation`` x its bar's volume there (None: no limit), the rest on the following
    bars; fills pay square-root impact (``impact_coef x sigma x sqrt(shares / average
    volume)`` over ``impact_window`` bars). Regimes (``REGIME_LABELS``) are judged where the
    window holds at least ``min_regime_bars`` bars of them; a window with fewer than
    ``min_positive_regimes`` such regimes must be positive in all it has. ``regimes`` (the
    S&P 500's calendar periods) are only reported. Capacity is the capital at which the
    fill model cuts the Sharpe to ``capacity_keep`` of its value with unlimited liquidity,
    scanned over ``capacity_grid`` (dollars) from ``cash`` up.
    """

    min_sharpe: float = 0.3
    max_drawdown: float = 0.35
    min_positive_regimes: int = 2
    min_capacity: float = 50_000.0
    cash: float = 100_000.0
    costs: IBCosts = field(default_factory=IBCosts)
    slippage_in_price: bool = True
    participation: float | None = 0.1
    regimes: tuple[RegimePeriod, ...] = SP500_REGIMES
    min_regime_bars: int = 60
    impact_coef: float = 1.0
    impact_window: int = 20
    capacity_keep: float = 0.5
    capacity_grid: tuple[float, ...] = tuple(float(10**k) for k in range(4, 11))
    beat_benchmark: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "regimes", tuple(self.regimes))
        if not isinstance(self.beat_benchmark, bool):
            raise ValueError(
                f"validation.beat_benchmark must be true or false, got {self.beat_benchmark!r}"
            )
        object.__setattr__(self, "capacity_grid", tuple(map(float, self.capacity_grid)))
        require_finite("validation.", self, "min_sharpe")
        require_between("validation.", self, 0, 1, "max_drawdown", include_high=True)
        if not 0 <= self.min_positive_regimes <= len(REGIME_LABELS):
            raise ValueError(
                f"validation.min_positive_regimes must lie in [0, {len(REGIME_LABELS)}] "
                f"(regimes {list(REGIME_LABELS)}), got {self.min_positive_regimes}"
            )
        require_positive("validation.", self, "cash", finite=True)
        if not self.min_capacity >= 0:  # by hand: NaN fails here, infinity passes
            raise ValueError(f"validation.min_capacity must be >= 0, got {self.min_capacity}")
        if not isinstance(self.slippage_in_price, bool):
            raise ValueError(
                "validation.slippage_in_price must be true or false, got "
                f"{self.slippage_in_price!r}"
            )
        if self.participation is not None:
            require_between("validation.", self, 0, 1, "participation", include_high=True)
        require_at_least("validation.", self, 2, "min_regime_bars", "impact_window")
        require_nonnegative("validation.", self, "impact_coef")
        require_between("validation.", self, 0, 1, "capacity_keep")
        grid = self.capacity_grid
        if not grid or any(not 0 < c < math.inf for c in grid) or list(grid) != sorted(set(grid)):
            raise ValueError(
                f"validation.capacity_grid must be positive and increasing, got {list(grid)}"
            )

    @property
    def regime_names(self) -> list[str]:
        """The calendar periods' regimes, in order of first appearance."""
        return list(dict.fromkeys(p.regime for p in self.regimes))

    @property
    def slippage(self) -> Literal["price", "fee"]:
        """Where the fill model puts the costs' slippage."""
        return "price" if self.slippage_in_price else "fee"

    @property
    def liquidity(self) -> Liquidity:
        """The fill model's participation limit and impact."""
        return Liquidity(self.participation, self.impact_coef, self.impact_window)

    def failures(
        self,
        summary: Mapping[str, float],
        positive: Sequence[str],
        judged: int,
        capacity: float,
        benchmark: Mapping[str, float] | None = None,
    ) -> list[str]:
        """The pass criteria missed, each as '<what> <value> <limit>': ``positive`` names the
        regimes the held-out window made money in, out of ``judged`` it held enough of; with
        ``beat_benchmark`` the Sharpe must beat ``benchmark``'s (buy-and-hold, same bars)."""
        failed = []
        sharpe, drawdown = summary["sharpe"], abs(summary["max_drawdown"])
        if not sharpe > self.min_sharpe:
            failed.append(f"held-out Sharpe {sharpe:.2f} {_below(sharpe, self.min_sharpe)}")
        if self.beat_benchmark:
            failed += _not_beating("held-out", sharpe, benchmark)
        if not drawdown < self.max_drawdown:
            failed.append(f"held-out max drawdown {drawdown:.1%} >= {self.max_drawdown:.0%}")
        needed = min(self.min_positive_regimes, judged)
        if len(positive) < needed:
            failed.append(
                f"positive in {len(positive)} of {judged} held-out regimes, need {needed}"
            )
        if not capacity > self.min_capacity:
            failed.append(f"capacity ${capacity:,.0f} <= ${self.min_capacity:,.0f}")
        return failed


@dataclass(frozen=True)
class EvolverConfig:
    """Batch size, promotion count, explore share, the control rules and the cycle cap.

    Defaults are the design's (5 specs a cycle, 3 promoted, 40% explore, 10 cycles). The
    control rules: after ``improving_cycles`` new bests in a row the explore share halves
    (never below ``min_explore_ratio``, nor raised to it); after ``plateau_cycles`` without
    one it doubles (at least back to ``explore_ratio``) and explore turns to templates not
    yet tried; after ``exhaustion_cycles`` without one the search pauses, resumably.
    ``max_cycles`` counts every cycle of the search, a resumed one included.
    """

    batch_size: int = 5
    top_n_screen: int = 3
    explore_ratio: float = 0.4
    max_cycles: int = 10
    improving_cycles: int = 3
    plateau_cycles: int = 5
    exhaustion_cycles: int = 8
    min_explore_ratio: float = 0.1
    history_size: int = 10  # most recent evaluated specs shown to the generator

    def __post_init__(self) -> None:
        counts = (
            "batch_size",
            "top_n_screen",
            "max_cycles",
            "improving_cycles",
            "plateau_cycles",
            "exhaustion_cycles",
        )
        require_at_least("evolver.", self, 1, *counts)
        require_at_least("evolver.", self, 0, "history_size")
        require_between(
            "evolver.", self, 0, 1, "explore_ratio", include_low=True, include_high=True
        )
        require_between(
            "evolver.", self, 0, 1, "min_explore_ratio", include_low=True, include_high=True
        )
        if self.plateau_cycles >= self.exhaustion_cycles:
            raise ValueError(
                f"evolver.plateau_cycles ({self.plateau_cycles}) must be below "
                f"evolver.exhaustion_cycles ({self.exhaustion_cycles}): the search would pause "
                "before it ever explored new templates"
            )


@dataclass(frozen=True)
class LLMConfig:
    """Claude settings: model, reply budget, retries of invalid replies, HTTP behaviour.

    ``retries`` counts extra requests after a reply that held invalid strategies;
    ``http_retries`` are the SDK's own retries of a failed request (429, 5xx, timeouts).
    ``base_url`` empty means the SDK's default endpoint.
    """

    model: str = "claude-sonnet-4-5"
    max_tokens: int = 4096
    retries: int = 2
    timeout_s: float = 60.0
    http_retries: int = 2
    base_url: str = ""

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("llm.model must name a Claude model")
        require_at_least("llm.", self, 256, "max_tokens")
        require_at_least("llm.", self, 0, "retries", "http_retries")
        require_positive("llm.", self, "timeout_s", finite=True)
