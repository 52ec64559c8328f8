"""PPO, MoE and MAML side by side on symbols none of them trained on, after costs.

Trains the quick profile on GOOG with a task universe that leaves out the held-out symbols
(or reuses --run-dir), then backtests each stage's checkpoint on every held-out symbol over
the dates of the run's own test split, with the checkpoint's features and costs. MAML first
adapts on the bars just before those dates. Each row is next to buy-and-hold on the same bars.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import ROOT, run_training
from evotrader.core.checkpoint import checkpoint_name
from evotrader.training.evaluation import headline
from evotrader.training.guards import TradableCheckpoint

STAGES = ("stage_1_ppo", "stage_2_moe", "stage_3_maml")


def compare(run_dir: Path, symbol: str, held_out: list[str]) -> list[str]:
    """One formatted row per (held-out symbol, stage)."""
    rows = []
    for other in held_out:
        for stage in STAGES:
            tradable = TradableCheckpoint.load(run_dir / checkpoint_name(symbol, stage))
            v = headline(tradable.backtest(tradable.bars(other)))
            rows.append(
                f"{other:<8}{stage:<14}{v['sharpe']:>8.2f}{v['buy_hold_sharpe']:>8.2f}"
                f"{v['total_return']:>10.2%}{v['buy_hold_return']:>10.2%}"
                f"{v['max_drawdown']:>9.2%}{int(v['n_trades']):>7d}"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", default="GOOG")
    parser.add_argument("--held-out", nargs="+", default=["IBM", "NASDAQ"])
    parser.add_argument("--run-dir", type=Path, help="reuse this run instead of training one")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run_dir = args.run_dir
    if run_dir is None:
        universe = [
            s for s in ("GOOG", "AAPL", "MSFT", "IBM", "SP500", "NASDAQ") if s not in args.held_out
        ]
        run_name = f"stage-comparison-{args.symbol}-seed{args.seed}"
        run_training(
            f"data.symbol={args.symbol}",
            f"data.universe=[{','.join(universe)}]",
            f"run_name={run_name}",
            f"seed={args.seed}",
        )
        run_dir = ROOT / "runs" / run_name
    header = (
        f"{'symbol':<8}{'stage':<14}{'Sharpe':>8}{'B&H':>8}{'return':>10}{'B&H ret':>10}"
        f"{'max DD':>9}{'trades':>7}"
    )
    print(f"\nHeld-out symbols over {args.symbol}'s test dates (out of sample, after costs)")
    print(header)
    print("-" * len(header))
    print("\n".join(compare(run_dir, args.symbol, args.held_out)))


if __name__ == "__main__":
    main()
