"""Does evolution find an edge where there is one, and refuse to invent one where there is not?

Runs stage_4_autonomous through the pipeline run_training.py runs (in this process, so the
three runs share one Ray start and its warm workers) on a planted AR(1) signal, on a random
walk and on a random walk with drift (holding long pays there, but no timing beats
buy-and-hold), then reads each run's archive and champion. On the validation split (used for
selection): best fitness per generation, the Deflated Sharpe Ratio of the champion's excess
over buy-and-hold with the number of trials behind it, and the PBO. On the test split
(touched once, out of sample, after costs): the champion's Sharpe next to buy-and-hold and a
random policy, and the verdict on its edge over buy-and-hold. Also how many children the
better half of each generation parented compared with the worse half. Prints a table; --out
writes JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from common import ROOT
from evotrader.backtest.policies import RandomPolicy
from evotrader.cli import configure_logging
from evotrader.config import load_training_config
from evotrader.core.checkpoint import load_checkpoint
from evotrader.training.evaluation import evaluate_on_split
from evotrader.training.guards import TradableCheckpoint
from evotrader.training.pipeline import run_pipeline

CASES = {  # name: (synthetic symbol, further data overrides)
    "AR1": ("AR1", []),  # planted AR(1) signal (coefficient 0.3): an edge to find
    "RANDOM_WALK": ("RANDOM_WALK", []),  # no drift, no signal
    # drift 0.001 a bar at volatility 0.01 (buy-and-hold Sharpe about 1.6 a year), no signal
    "DRIFTING_WALK": ("RANDOM_WALK", ["+data.options.drift=0.001"]),
}
BUDGET = [
    "data=synthetic",
    "data.options.n_bars=3000",
    "stages=[stage_4_autonomous]",
    "stage_4_autonomous.population=8",
    "stage_4_autonomous.generations=3",
    "stage_4_autonomous.hyperparameters={epochs: 2, memory_epochs: 1, policy_epochs: 15}",
]


def train(*overrides: str) -> None:
    """The run ``python run_training.py <overrides>`` trains, in this process (Ray, started
    by the first run, stays up for the next)."""
    run_pipeline(load_training_config(list(overrides)))


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
    figures = {
        key: champion.metrics[key]
        for key in (
            "validation_dsr",
            "validation_trials",
            "test_sharpe",
            "test_buy_hold_sharpe",
            "test_excess_sharpe",
            "test_edge_p_value",
        )
    }
    return figures | {
        "best_fitness_by_generation": best,
        "champion_fitness": champion.metrics["fitness"],
        "children_of_better_half": upper,
        "children_of_worse_half": lower,
        "test_random_sharpe": random_sharpe(champion),
        "pbo": champion.metrics.get("pbo"),  # None when undefined; pbo_note says why
        "pbo_note": champion.extra["pbo"],
        "verdict": champion.extra["verdict"],
    }


def random_sharpe(champion: Any, seeds: int = 5) -> float:
    """Mean test Sharpe of a uniformly random policy on the champion's bars and costs."""
    tradable = TradableCheckpoint.of(champion, "champion")
    bars = tradable.bars()
    test = tradable.test_split(bars)
    sharpes = [
        evaluate_on_split(
            RandomPolicy(len(tradable.spec.positions), seed=seed),
            bars,
            test,
            tradable.pipeline,
            tradable.spec,
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
    configure_logging()
    results = {}
    for case, (symbol, overrides) in CASES.items():
        run_name = f"autonomous-{case}-seed{args.seed}"
        train(
            f"runs_dir={args.runs_dir}",
            f"run_name={run_name}",
            f"seed={args.seed}",
            f"data.symbol={symbol}",
            *overrides,
            *BUDGET,
        )
        results[case] = summarise(args.runs_dir / run_name, symbol)
    print("\nAutonomous stage: planted AR(1), random walk, random walk with drift (after costs)")
    for case, r in results.items():
        best = " -> ".join(f"{value:.2f}" for value in r["best_fitness_by_generation"])
        pad = " " * 14
        print(
            f"{case:<14}validation split (used for selection): best fitness by generation "
            f"{best}; DSR of the excess over buy-and-hold {r['validation_dsr']:.3f} over "
            f"{r['validation_trials']:.0f} trials; {r['pbo_note']}\n"
            f"{pad}test split (touched once), out of sample: Sharpe {r['test_sharpe']:.2f} "
            f"(buy&hold {r['test_buy_hold_sharpe']:.2f}, random {r['test_random_sharpe']:.2f}), "
            f"excess over buy-and-hold {r['test_excess_sharpe']:.2f}\n"
            f"{pad}{r['verdict']}\n"
            f"{pad}children of the better half {r['children_of_better_half']}, of the worse "
            f"half {r['children_of_worse_half']}"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
