"""Backtest engine bars/s for a moving-average policy on 100k synthetic bars.

Target: >= 1M bars/s, end to end (features, batched policy, fills, costs, metrics and
the buy-and-hold benchmark).
"""

from __future__ import annotations

import argparse
import time

from evotrader.backtest.engine import run_backtest
from evotrader.backtest.policies import MovingAverageCrossover
from evotrader.data import FeaturePipeline, generate_synthetic
from evotrader.env import EnvSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    bars = generate_synthetic(args.bars, seed=args.seed, kind="regimes", freq="h").bars
    pipeline = FeaturePipeline().fit(bars.iloc[: len(bars) // 2])
    policy = MovingAverageCrossover(pipeline, fast=10, slow=50)
    timings = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = run_backtest(
            policy, bars, pipeline=pipeline, spec=EnvSpec(window=args.window, agent_state=False)
        )
        timings.append(time.perf_counter() - start)
    best = min(timings)
    print(f"bars={len(bars):,} window={args.window} trades={int(result.metrics['n_trades'])}")
    rate = len(bars) / best
    print(f"run_backtest  best {best * 1e3:.1f} ms -> {rate:>12,.0f} bars/s  (target >= 1,000,000)")


if __name__ == "__main__":
    main()
