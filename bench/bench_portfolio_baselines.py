"""Portfolio engine speed and the classic baselines on the embedded S&P 500 universe.

Offline: the ``sp500`` universe is the 20 large US stocks' daily closes (1990-2022) that ship
inside skfolio. The bars before ``--test-start`` are history only (the optimisers' first fit
sees them alone); every figure is on the test split, after costs, and the data are
close-only, so fills are at the next close. The example policy is a plain 12-1 month
momentum tilt (top quarter, equal weights), shown only to have something to put next to the
baselines.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import median_seconds
from evotrader.backtest.baselines import (
    EQUAL_WEIGHT,
    compare_with_baselines,
    default_baselines,
    equal_weight,
)
from evotrader.backtest.portfolio import History, PortfolioSettings, run_portfolio
from evotrader.data.universe import load_universe


def momentum_top_quarter(history: History) -> np.ndarray:
    """Equal weights in the quarter of assets with the best return from 12 to 1 months ago."""
    closes = history.closes
    if len(closes) < 253:
        return np.zeros(closes.shape[1])
    past = (closes.iloc[-22] / closes.iloc[-253]).to_numpy()
    chosen = np.argsort(-past)[: max(1, closes.shape[1] // 4)]
    weights = np.zeros(closes.shape[1])
    weights[chosen] = 1.0 / len(chosen)
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history-start", default="2012-01-01")
    parser.add_argument("--test-start", default="2019-01-02")
    parser.add_argument("--rebalance", default="monthly")
    parser.add_argument("--window", type=int, default=252)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    universe = load_universe("sp500", start=args.history_start)
    bars, close_only = universe.bars, universe.close_only
    settings = PortfolioSettings(args.rebalance)
    every_bar = PortfolioSettings("bar")
    seconds = median_seconds(
        lambda: run_portfolio(equal_weight, bars, every_bar, close_only=close_only), args.repeats
    )
    n_bars, n_assets = len(universe.index), len(universe.symbols)
    print(
        f"engine: {n_bars:,} bars x {n_assets} assets, equal weight rebalanced every bar: "
        f"median of {args.repeats} {seconds * 1e3:.0f} ms -> {n_bars / seconds:,.0f} bars/s, "
        f"{n_bars * n_assets / seconds:,.0f} asset-bars/s"
    )
    began = time.perf_counter()
    comparison = compare_with_baselines(
        momentum_top_quarter,
        bars,
        settings,
        close_only=close_only,
        name="momentum",
        split="test",
        start=args.test_start,
        baselines=default_baselines(window=args.window),
    )
    elapsed = time.perf_counter() - began
    decisions = len(comparison.results["momentum"].targets)
    print(
        f"baselines: {len(comparison.results) - 1} baselines + the policy, {decisions} "
        f"{args.rebalance} decisions each from {args.test_start}: {elapsed:.1f} s"
    )
    print(comparison.text())
    for note in comparison.results["momentum"].notes:
        print(f"note: {note}")
    edge = comparison.edge(EQUAL_WEIGHT)
    print(
        f"momentum vs {EQUAL_WEIGHT}: excess Sharpe {edge.sharpe * np.sqrt(252):.2f} "
        f"(annualised), probabilistic Sharpe {edge.probability:.3f}, p={edge.p_value:.3f} "
        f"({edge.split})"
    )


if __name__ == "__main__":
    main()
