"""Does evolution find an edge where there is one, and refuse to invent one where there is not?

Runs stage_4_autonomous through run_training.py on a planted AR(1) signal and on a random
walk, then reads each run's archive and champion: best validation fitness per generation,
the champion's test Sharpe next to buy-and-hold and a random policy (after costs, out of
sample), its Deflated Sharpe Ratio and PBO, and how many children the better half of each
generation parented compared with the worse half. Prints a table; --out writes JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from evotrader.backtest.engine import run_backtest
from evotrader.backtest.policies import RandomPolicy
from evotrader.config import env_config_from_dict, execution_from
from evotrader.data import FeaturePipeline, load_bars
from evotrader.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BUDGET = [
    "data=synthetic",
    "data.options.n_bars=3000",
    "stages=[stage_4_autonomous]",
    "stage_4_autonomous.population=8",
    "stage_4_autonomous.generations=4",
    "stage_4_autonomous.hyperparameters={epochs: 3, memory_epochs: 1, policy_epochs: 15}",
]


def summarise(run_dir: Path, symbol: str) -> dict[str, Any]:
    archive = json.loads((run_dir / "stage_4_autonomous" / "archive.json").read_text())
    members = archive["members"]
    generations = sorted({m["generation"] for m in members})
    best = [max(m["fitness"] for m in members if m["generation"] == g) for g in generations]
    upper = lower = 0
    for g in generations[:-1]:
        ranked = sorted(
            (m for m in members if m["generation"] == g), key=lambda m: (-m["fitness"], m["id"])
        )
        top = {m["id"] for m in ranked[: len(ranked) // 2]}
        children = [m for m in members if m["generation"] == g + 1 and m["origin"] != "elite"]
        for child in children:
            for parent in child["parents"]:
                upper, lower = (upper + 1, lower) if parent in top else (upper, lower + 1)
    champion = load_checkpoint(run_dir / f"{symbol}_autonomous_final.pth")
    return {
        "best_fitness_by_generation": best,
        "children_of_better_half": upper,
        "children_of_worse_half": lower,
        "test_sharpe": champion.metrics["test_sharpe"],
        "test_buy_hold_sharpe": champion.metrics["test_buy_hold_sharpe"],
        "test_random_sharpe": random_sharpe(champion),
        "dsr": champion.metrics["dsr"],
        "pbo": champion.metrics["pbo"],
    }


def random_sharpe(champion: Any, seeds: int = 5) -> float:
    """Mean test Sharpe of a uniformly random policy on the champion's bars and costs."""
    data = champion.extra["data"]
    bars = load_bars(data["source"], data["symbol"], **data["options"])
    test = champion.data_range
    env = env_config_from_dict(champion.env)
    sharpes = [
        run_backtest(
            RandomPolicy(len(env.positions), seed=seed),
            bars.loc[: test["test_end"]],
            start=test["test_start"],
            pipeline=FeaturePipeline.from_state(champion.feature_pipeline),
            window=env.window,
            positions=env.positions,
            execution=execution_from(env.execution),
        ).metrics["sharpe"]
        for seed in range(seeds)
    ]
    return float(np.mean(sharpes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = {}
    for symbol in ("AR1", "RANDOM_WALK"):
        run_name = f"autonomous-{symbol}-seed{args.seed}"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "run_training.py"),
                f"runs_dir={args.runs_dir}",
                f"run_name={run_name}",
                f"seed={args.seed}",
                f"data.symbol={symbol}",
                *BUDGET,
            ],
            cwd=ROOT,
            check=True,
        )
        results[symbol] = summarise(args.runs_dir / run_name, symbol)
    print("\nAutonomous stage, AR(1) vs random walk (test split: out of sample, after costs)")
    for symbol, r in results.items():
        best = " -> ".join(f"{value:.2f}" for value in r["best_fitness_by_generation"])
        print(
            f"{symbol:<12} best fitness by generation {best}\n{'':<12} test Sharpe "
            f"{r['test_sharpe']:.2f} (buy&hold {r['test_buy_hold_sharpe']:.2f}, random "
            f"{r['test_random_sharpe']:.2f})  DSR {r['dsr']:.3f}  PBO {r['pbo']:.2f}  children "
            f"of the better half {r['children_of_better_half']}, of the worse half "
            f"{r['children_of_worse_half']}"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
