"""What run_backtest.py does: a checkpoint or a registered strategy on its test split.

The test split is touched once, after costs, next to buy-and-hold on the same bars; the
report names its split, prints the edge over buy-and-hold with the trials behind the
selection, and writes metrics JSON, an equity/drawdown PNG and an HTML report (with a
breakdown by the Weather Forecaster's regimes). ``engine="nautilus"`` also replays the
decisions through NautilusTrader with IB-like costs and shows both engines side by side.
"""

from __future__ import annotations

import json
import logging
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from evotrader.backtest.engine import BacktestResult
from evotrader.backtest.metrics import format_comparison, periods_per_year
from evotrader.backtest.report import ReportConfig, format_columns, write_report
from evotrader.backtest.significance import (
    describe_test_edge,
    edge_on_test,
    excess_returns,
    verdict,
)
from evotrader.core.atomic import write_atomic
from evotrader.core.checkpoint import PORTFOLIO_KINDS, find_checkpoint, load_checkpoint
from evotrader.training import guards
from evotrader.training.guards import PortfolioCheckpoint, TradableCheckpoint
from evotrader.training.run_folder import settings_note
from evotrader.training.stages import STAGES
from evotrader.training.trials import trials_behind

if TYPE_CHECKING:
    from evotrader.strategies.runs import SpecRun
    from evotrader.training.strategy_stage import RegisteredTest

log = logging.getLogger(__name__)

TEST_TITLE = "Test split (out of sample, after costs)"


@dataclass(frozen=True)
class BacktestRequest:
    """What to backtest: ``strategy`` (a registered strategy's id), else ``checkpoint``, else
    the latest checkpoint of ``symbol`` under ``runs_dir``; ``out`` defaults to beside it."""

    symbol: str | None = None
    checkpoint: Path | None = None
    trade_as: str | None = None
    runs_dir: Path = Path("runs")
    out: Path | None = None
    engine: str = "ours"
    regimes: str = ReportConfig.classifier
    strategy: str | None = None
    registry: Path | None = None


def backtest(request: BacktestRequest) -> list[Path]:
    """Backtest what ``request`` names on its test split; returns the files written."""
    if request.strategy:
        return backtest_strategy(request.strategy, request.registry, request.runs_dir, request.out)
    return backtest_checkpoint(request)


def backtest_checkpoint(request: BacktestRequest) -> list[Path]:
    """The checkpoint's policy on its test split, logged and written as reports."""
    if request.checkpoint is None and request.symbol is None:
        raise ValueError("a backtest needs a checkpoint or a symbol")
    path = request.checkpoint or find_checkpoint(request.runs_dir, str(request.symbol))
    if load_checkpoint(path).kind in PORTFOLIO_KINDS:
        return backtest_portfolio(path, request.out)
    tradable = TradableCheckpoint.load(path)
    checkpoint = tradable.checkpoint
    symbol = guards.traded_symbol(checkpoint, tradable.where, request.symbol, request.trade_as)
    note = guards.mapping_note(checkpoint, symbol)
    if note:
        log.info(note)
    bars = tradable.bars(symbol)
    result = tradable.backtest(bars)
    split = checkpoint.data_range
    log.info(f"checkpoint: {path} ({checkpoint.kind}, {checkpoint.symbol}); traded: {symbol}")
    log.info(
        settings_note(checkpoint.extra.get("run"), _stage(checkpoint.extra), STAGES.names(), path)
    )
    log.info(f"test split: {split['test_start']} -> {split['test_end']} (out of sample)")
    log.info(result.report(TEST_TITLE))
    edge = edge_on_test(excess_returns(result.equity, result.benchmark_equity))
    log.info(describe_test_edge(edge, periods_per_year(result.equity.index)))
    log.info(verdict(edge, trials_behind(checkpoint, path)))
    engines: dict[str, dict[str, float]] = {}
    notes = [note] if note else []
    if request.engine == "nautilus":
        engines, timing = nautilus_comparison(tradable, symbol, result, bars)
        notes += timing
    out = request.out or path.parent
    stem = path.stem if symbol == checkpoint.symbol else f"{path.stem}_as_{symbol}"
    report = write_report(
        result,
        bars,
        checkpoint.data_range,
        out,
        f"{stem}_test",
        title=f"{symbol} {checkpoint.kind}: test split",
        details=report_details(tradable, path),
        engines=engines,
        notes=notes,
        config=ReportConfig(classifier=request.regimes),
    )
    return _written([*save_outputs(result, path, out, stem), report.html, *report.pngs])


def backtest_portfolio(path: Path, out: Path | None) -> list[Path]:
    """A portfolio checkpoint on its test split next to equal weight, buy-and-hold of the
    universe and the classic optimisers (re-fitted walk-forward on past returns only), all
    through the same engine and costs; the edge is judged against equal weight."""
    from evotrader.backtest.baselines import EQUAL_WEIGHT, compare_with_baselines
    from evotrader.backtest.portfolio_report import write_portfolio_report

    tradable = PortfolioCheckpoint.load(path)
    checkpoint, split = tradable.checkpoint, tradable.checkpoint.data_range
    universe = tradable.universe.load().between(None, split["test_end"])
    log.info(f"checkpoint: {path} ({checkpoint.kind}, {checkpoint.symbol})")
    log.info(f"test split: {split['test_start']} -> {split['test_end']} (out of sample)")
    if universe.close_only:
        log.info(universe.note)
    comparison = compare_with_baselines(
        tradable.policy(),
        universe.bars,
        tradable.settings(),
        split="test",
        start=tradable.test_start,
        close_only=universe.close_only,
    )
    log.info(comparison.text())
    edge = comparison.edge(EQUAL_WEIGHT)
    ppy = periods_per_year(comparison.results[comparison.policy].equity.index)
    log.info(describe_test_edge(edge, ppy, EQUAL_WEIGHT))
    log.info(verdict(edge, trials_behind(checkpoint, path), EQUAL_WEIGHT))
    target = out or path.parent
    metrics = target / f"{path.stem}_test.json"
    payload = {"split": "test", "checkpoint": str(path), "runs": comparison.table.to_dict()}
    target.mkdir(parents=True, exist_ok=True)
    write_atomic(metrics, json.dumps(payload, indent=2, default=float))
    report = write_portfolio_report(
        comparison, target, f"{path.stem}_test", title=f"{checkpoint.symbol}: test split"
    )
    return _written([metrics, report.html, *report.pngs])


def backtest_strategy(
    spec_id: str, registry_path: Path | None, runs_dir: Path, out: Path | None
) -> list[Path]:
    """A registered strategy on its search's test split with our engine, after costs."""
    # imported here: NautilusTrader and SQLAlchemy load only when a strategy is asked for
    from evotrader.strategies.registry import Registry
    from evotrader.training.strategy_stage import find_registry, registered_test

    path = registry_path or find_registry(runs_dir, spec_id)
    with Registry(path) as registry:
        test = registered_test(registry, spec_id)
        tried = len(registry.specs())
    spec, windows, run = test.spec, test.windows, test.run()
    log.info(
        f"strategy: {spec_id} ({spec.template} on {'+'.join(spec.universe.symbols)}) in {path}"
    )
    log.info(f"test split: {windows.test_start} -> {windows.test_end} (out of sample)")
    log.info(format_comparison(run.metrics, run.benchmark, TEST_TITLE))
    edge = edge_on_test(excess_returns(run.equity, run.benchmark_equity))
    log.info(describe_test_edge(edge, periods_per_year(run.equity.index)))
    log.info(verdict(edge, tried))
    written = save_outputs(run, path.parent / f"strategy_{spec_id}", out or path.parent)
    if len(spec.universe.symbols) > 1:
        written += strategy_as_portfolio(test, tried, out or path.parent, f"strategy_{spec_id}")
    return _written(written)


def strategy_as_portfolio(test: RegisteredTest, tried: int, out: Path, stem: str) -> list[Path]:
    """A multi-symbol strategy as one account in the portfolio engine, next to equal weight
    and buy-and-hold of its universe with the same costs; the edge is judged against equal
    weight, as a portfolio checkpoint's is."""
    from evotrader.backtest.baselines import EQUAL_WEIGHT
    from evotrader.backtest.portfolio_report import write_portfolio_report
    from evotrader.strategies.portfolio_bridge import compare_as_portfolio

    comparison = compare_as_portfolio(
        test.spec,
        test.bars,
        start=test.windows.test_start,
        parameters=test.parameters,
        execution=test.execution,
        cash=test.cash,
    )
    log.info("The strategy as one account in the portfolio engine (test split, after costs):")
    log.info(comparison.text())
    edge = comparison.edge(EQUAL_WEIGHT)
    ppy = periods_per_year(comparison.results[comparison.policy].equity.index)
    log.info(describe_test_edge(edge, ppy, EQUAL_WEIGHT))
    log.info(verdict(edge, tried, EQUAL_WEIGHT))
    report = write_portfolio_report(
        comparison, out, f"{stem}_test", title=f"{stem}: test split, one account"
    )
    return [report.html, *report.pngs]


def save_outputs(
    result: BacktestResult | SpecRun, source: Path, out_dir: Path, stem: str | None = None
) -> list[Path]:
    """Metrics JSON and an equity/drawdown PNG of a test-split run of ``source``."""
    import matplotlib.pyplot as plt  # backtest.report, imported above, chose the Agg backend

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or source.stem
    metrics_path, plot_path = out_dir / f"{stem}_test.json", out_dir / f"{stem}_test.png"
    payload = {
        "split": "test",
        "checkpoint": str(source),
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


def nautilus_comparison(
    tradable: TradableCheckpoint, symbol: str, result: BacktestResult, bars: pd.DataFrame
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Replay the test decisions in NautilusTrader and log the engines side by side;
    returns the columns the report adds (ours as backtested is its strategy) and the note
    on fill timing."""
    # imported here: NautilusTrader loads only when asked for
    from evotrader.backtest.nautilus_replay import FILL_TIMING_NOTE, compare_engines

    runs = compare_engines(
        result,
        bars,
        symbol,
        tradable.spec.execution,
        initial_cash=tradable.spec.initial_cash,
        periods_per_year=periods_per_year(result.equity.index),  # of the reported period
    )
    columns = {name: run.metrics for name, run in runs.items()}
    title = "Engines on the same decisions (test split, out of sample, after costs)"
    log.info(format_columns(columns | {"buy & hold": result.benchmark}, title))
    log.info(textwrap.fill(FILL_TIMING_NOTE, width=90))
    return {name: metrics for name, metrics in list(columns.items())[1:]}, [FILL_TIMING_NOTE]


def report_details(tradable: TradableCheckpoint, path: Path) -> dict[str, str]:
    execution = tradable.spec.execution
    split = tradable.checkpoint.data_range
    return {
        "checkpoint": f"{path} ({tradable.checkpoint.kind})",
        "test split": f"{split['test_start']} -> {split['test_end']}",
        "costs": f"commission {execution.commission_bps:g} bp, half-spread "
        f"{execution.half_spread_bps:g} bp, slippage {execution.slippage_bps:g} bp, impact "
        f"{execution.impact_coef:g}; fills at the {execution.fill.replace('_', ' ')}",
    }


def _stage(extra: dict[str, object]) -> str:
    return str(extra.get("stage", ""))


def _written(paths: list[Path]) -> list[Path]:
    for path in paths:
        log.info(f"wrote {path}")
    return paths
