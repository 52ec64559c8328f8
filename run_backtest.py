"""Backtest a trained checkpoint on the test split: `python run_backtest.py --symbol GOOG`.

Loads the most advanced stage checkpoint of the latest run for the symbol (exclusively
`{symbol}_autonomous_final.pth` once it exists) or `--checkpoint PATH`, runs it on the
test split with the backtest engine, after costs, and prints the metrics next to
buy-and-hold. Writes metrics JSON, an equity/drawdown PNG and an HTML report (equity,
drawdown, positions, metrics, trades, and a breakdown by the Weather Forecaster's regimes)
with its PNGs next to the checkpoint. `--engine nautilus` also replays the decisions through
NautilusTrader with IB-like costs and prints both engines' metrics side by side.

Guards: a checkpoint with NaN/inf weights or normalisation statistics is refused; a
`--symbol` other than the checkpoint's is refused unless `--trade-as SYMBOL` runs its policy
on that symbol's bars (announced in the output); its data reference may only name a
registered source and files inside the data folders (see evotrader.data.reference). Every
expected failure prints one `error:` line; exit codes (evotrader.cli.ExitCode): 0 done,
2 bad arguments, 5 data, 6 checkpoint. `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from evotrader.backtest.engine import BacktestResult
from evotrader.backtest.metrics import periods_per_year
from evotrader.backtest.report import ReportConfig, format_columns, write_report
from evotrader.backtest.significance import (
    describe_test_edge,
    edge_on_test,
    excess_returns,
    verdict,
)
from evotrader.cli import ExitCode, fail, run_guarded
from evotrader.config import env_config_from_dict, execution_from
from evotrader.core.atomic import write_atomic
from evotrader.core.checkpoint import Checkpoint, find_checkpoint, load_checkpoint
from evotrader.data import DataError, data_roots
from evotrader.reasoning.market_classifier import available_classifiers
from evotrader.training import guards
from evotrader.training.adaptation import trading_policy
from evotrader.training.evaluation import evaluate_on_split
from evotrader.training.trials import trials_behind

if TYPE_CHECKING:
    from evotrader.strategies.runs import SpecRun

ROOT = Path(__file__).resolve().parent


def checkpoint_bars(
    checkpoint: Checkpoint, symbol: str | None = None, where: str = "checkpoint"
) -> pd.DataFrame:
    """The bars the checkpoint was trained and split on (or ``symbol``'s, from its source)."""
    return guards.checkpoint_bars(checkpoint, where, data_roots(ROOT), symbol)


def backtest_checkpoint(
    checkpoint: Checkpoint, bars: pd.DataFrame | None = None, where: str = "checkpoint"
) -> BacktestResult:
    """Run the checkpoint's policy over its own test split, with its own features and env.

    A MAML checkpoint first adapts on the bars just before the test split, never on it.
    """
    bars = checkpoint_bars(checkpoint, where=where) if bars is None else bars
    split = checkpoint.data_range
    test = bars.loc[split["test_start"] : split["test_end"]]
    if test.empty:
        raise DataError(
            f"no bars in the test split {split['test_start']} -> {split['test_end']}; "
            f"the bars run {bars.index[0]} -> {bars.index[-1]}"
        )
    env, pipeline = guards.trading_setup(checkpoint, where)
    policy = trading_policy(checkpoint, bars, test.index[0])
    return evaluate_on_split(policy, bars, test, pipeline, env)


def save_outputs(
    result: BacktestResult | SpecRun, checkpoint_path: Path, out_dir: Path, stem: str | None = None
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or checkpoint_path.stem
    metrics_path, plot_path = out_dir / f"{stem}_test.json", out_dir / f"{stem}_test.png"
    payload = {
        "split": "test",
        "checkpoint": str(checkpoint_path),
        "strategy": result.metrics,
        "buy_and_hold": result.benchmark,
    }
    write_atomic(metrics_path, json.dumps(payload, indent=2))
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
            tried = len(registry.specs())
    except RegistryError as error:
        fail(str(error))
        return ExitCode.USAGE
    print(f"strategy: {spec_id} ({spec.template} on {'+'.join(spec.universe.symbols)}) in {path}")
    print(f"test split: {windows.test_start} -> {windows.test_end} (out of sample)")
    title = "Test split (out of sample, after costs)"
    print(format_comparison(run.metrics, run.benchmark, title))
    edge = edge_on_test(excess_returns(run.equity, run.benchmark_equity))
    print(describe_test_edge(edge, periods_per_year(run.equity.index)))
    print(verdict(edge, tried))
    for written in save_outputs(run, path.parent / f"strategy_{spec_id}", out or path.parent):
        print(f"wrote {written}")
    return ExitCode.OK


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", help="symbol whose latest checkpoint to load")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint file instead")
    parser.add_argument("--trade-as", metavar="SYMBOL", help=guards.TRADE_AS_HELP)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, help="where to write JSON and PNG (default: beside it)")
    parser.add_argument(
        "--engine",
        choices=("ours", "nautilus"),
        default="ours",
        help="nautilus: also replay the decisions through NautilusTrader and compare",
    )
    parser.add_argument(
        "--regimes", choices=available_classifiers(), default=ReportConfig.classifier
    )
    parser.add_argument("--strategy", help="a registered strategy's id (strategy_search)")
    parser.add_argument("--registry", type=Path, help="its strategies.sqlite (default: newest)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    args = parser.parse_args(argv)
    if not args.strategy and not args.checkpoint and not args.symbol:
        parser.error("give --symbol or --checkpoint")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.strategy:
        work = partial(backtest_strategy, args.strategy, args.registry, args.runs_dir, args.out)
    else:
        work = partial(backtest, args)
    return run_guarded(work, debug=args.debug)


def backtest(args: argparse.Namespace) -> int:
    """The checkpoint's policy on its test split, printed and written as reports."""
    path = args.checkpoint or find_checkpoint(args.runs_dir, args.symbol)
    where = f"checkpoint {path}"
    checkpoint = load_checkpoint(path)
    symbol = guards.traded_symbol(checkpoint, where, args.symbol, args.trade_as)
    note = guards.mapping_note(checkpoint, symbol)
    if note:
        print(note)
    bars = checkpoint_bars(checkpoint, symbol, where)
    result = backtest_checkpoint(checkpoint, bars, where)
    test = checkpoint.data_range
    print(f"checkpoint: {path} ({checkpoint.kind}, {checkpoint.symbol}); traded: {symbol}")
    print(f"test split: {test['test_start']} -> {test['test_end']} (out of sample)")
    print(result.report("Test split (out of sample, after costs)"))
    edge = edge_on_test(excess_returns(result.equity, result.benchmark_equity))
    print(describe_test_edge(edge, periods_per_year(result.equity.index)))
    print(verdict(edge, trials_behind(checkpoint, path)))
    engines: dict[str, dict[str, float]] = {}
    notes = [note] if note else []
    if args.engine == "nautilus":
        engines, timing = nautilus_comparison(checkpoint, symbol, result, bars)
        notes += timing
    out = args.out or path.parent
    stem = path.stem if symbol == checkpoint.symbol else f"{path.stem}_as_{symbol}"
    report = write_report(
        result,
        bars,
        checkpoint.data_range,
        out,
        f"{stem}_test",
        title=f"{symbol} {checkpoint.kind}: test split",
        details=report_details(checkpoint, path),
        engines=engines,
        notes=notes,
        config=ReportConfig(classifier=args.regimes),
    )
    for written in [*save_outputs(result, path, out, stem), report.html, *report.pngs]:
        print(f"wrote {written}")
    return ExitCode.OK


def nautilus_comparison(
    checkpoint: Checkpoint, symbol: str, result: BacktestResult, bars: pd.DataFrame
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Replay the test decisions in NautilusTrader and print the engines side by side;
    returns the columns the report adds (ours as backtested is its strategy) and the note
    on fill timing."""
    # imported here: NautilusTrader loads only when asked for
    from evotrader.backtest.nautilus_replay import FILL_TIMING_NOTE, compare_engines

    env = env_config_from_dict(checkpoint.env)
    runs = compare_engines(
        result,
        bars,
        symbol,
        execution_from(env.execution),
        initial_cash=env.initial_cash,
        periods_per_year=periods_per_year(result.equity.index),  # of the reported period
    )
    columns = {name: run.metrics for name, run in runs.items()}
    title = "Engines on the same decisions (test split, out of sample, after costs)"
    print(format_columns(columns | {"buy & hold": result.benchmark}, title))
    print(textwrap.fill(FILL_TIMING_NOTE, width=90))
    return {name: metrics for name, metrics in list(columns.items())[1:]}, [FILL_TIMING_NOTE]


def report_details(checkpoint: Checkpoint, path: Path) -> dict[str, str]:
    execution = env_config_from_dict(checkpoint.env).execution
    split = checkpoint.data_range
    return {
        "checkpoint": f"{path} ({checkpoint.kind})",
        "test split": f"{split['test_start']} -> {split['test_end']}",
        "costs": f"commission {execution.commission_bps:g} bp, half-spread "
        f"{execution.half_spread_bps:g} bp, slippage {execution.slippage_bps:g} bp, impact "
        f"{execution.impact_coef:g}; fills at the {execution.fill.replace('_', ' ')}",
    }


if __name__ == "__main__":
    sys.exit(main())
