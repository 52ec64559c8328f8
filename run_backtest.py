"""Backtest a trained checkpoint on the test split: `python run_backtest.py --symbol GOOG`.

Loads the most advanced stage checkpoint of the latest run for the symbol (exclusively
`{symbol}_autonomous_final.pth` once it exists) or `--checkpoint PATH`, runs it on the
test split with the backtest engine, after costs, and prints the metrics next to
buy-and-hold. Writes metrics JSON and an equity/drawdown PNG next to the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from evotrader.backtest.engine import BacktestResult
from evotrader.config import env_config_from_dict
from evotrader.data import FeaturePipeline, load_bars
from evotrader.training.adaptation import trading_policy
from evotrader.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    find_checkpoint,
    load_checkpoint,
)
from evotrader.training.evaluation import evaluate_on_split


def backtest_checkpoint(checkpoint: Checkpoint) -> BacktestResult:
    """Run the checkpoint's policy over its own test split, with its own features and env.

    A MAML checkpoint first adapts on the bars just before the test split, never on it.
    """
    data = checkpoint.extra["data"]
    bars = load_bars(data["source"], data["symbol"], **data["options"])
    test = bars.loc[checkpoint.data_range["test_start"] : checkpoint.data_range["test_end"]]
    env = env_config_from_dict(checkpoint.env)
    pipeline = FeaturePipeline.from_state(checkpoint.feature_pipeline)
    policy = trading_policy(checkpoint, bars, test.index[0])
    return evaluate_on_split(policy, bars, test, pipeline, env)


def save_outputs(result: BacktestResult, checkpoint_path: Path, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = checkpoint_path.stem
    metrics_path, plot_path = out_dir / f"{stem}_test.json", out_dir / f"{stem}_test.png"
    payload = {
        "split": "test",
        "checkpoint": str(checkpoint_path),
        "strategy": result.metrics,
        "buy_and_hold": result.benchmark,
    }
    metrics_path.write_text(json.dumps(payload, indent=2))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.plot(result.equity, label="strategy")
    top.plot(result.benchmark_equity, label="buy & hold")
    top.set_ylabel("equity")
    top.legend()
    for series, label in ((result.equity, "strategy"), (result.benchmark_equity, "buy & hold")):
        bottom.plot(series / series.cummax() - 1.0, label=label)
    bottom.set_ylabel("drawdown")
    figure.suptitle(f"{stem}: test split, after costs")
    figure.tight_layout()
    figure.savefig(plot_path, dpi=100)
    plt.close(figure)
    return [metrics_path, plot_path]


def backtest_strategy(
    spec_id: str, registry_path: Path | None, runs_dir: Path, out: Path | None
) -> int:
    """A registered strategy on its search's test split with our engine, after costs."""
    # imported here: NautilusTrader and SQLAlchemy load only when a strategy is asked for
    from evotrader.backtest.metrics import format_comparison
    from evotrader.strategies.registry import Registry, RegistryError
    from evotrader.training.strategy_stage import backtest_registered, find_registry

    try:
        path = registry_path or find_registry(runs_dir, spec_id)
        with Registry(path) as registry:
            spec, run, windows = backtest_registered(registry, spec_id)
    except (FileNotFoundError, RegistryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"strategy: {spec_id} ({spec.template} on {'+'.join(spec.universe.symbols)}) in {path}")
    print(f"test split: {windows.test_start} -> {windows.test_end} (out of sample)")
    title = "Test split (out of sample, after costs)"
    print(format_comparison(run.metrics, run.benchmark, title))
    for written in save_outputs(run, path.parent / f"strategy_{spec_id}", out or path.parent):
        print(f"wrote {written}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", help="symbol whose latest checkpoint to load")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint file instead")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, help="where to write JSON and PNG (default: beside it)")
    parser.add_argument("--strategy", help="a registered strategy's id (strategy_search)")
    parser.add_argument("--registry", type=Path, help="its strategies.sqlite (default: newest)")
    args = parser.parse_args(argv)
    if args.strategy:
        return backtest_strategy(args.strategy, args.registry, args.runs_dir, args.out)
    if not args.checkpoint and not args.symbol:
        parser.error("give --symbol or --checkpoint")
    try:
        path = args.checkpoint or find_checkpoint(args.runs_dir, args.symbol)
        checkpoint = load_checkpoint(path)
        result = backtest_checkpoint(checkpoint)
    except (FileNotFoundError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    test = checkpoint.data_range
    print(f"checkpoint: {path} ({checkpoint.kind}, {checkpoint.symbol})")
    print(f"test split: {test['test_start']} -> {test['test_end']} (out of sample)")
    print(result.report("Test split (out of sample, after costs)"))
    for written in save_outputs(result, path, args.out or path.parent):
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
