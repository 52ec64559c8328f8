"""Backtest a trained checkpoint on the test split: `python run_backtest.py --symbol GOOG`.

Loads the most advanced stage checkpoint of the latest run for the symbol (exclusively
`{symbol}_autonomous_final.pth` once it exists) or `--checkpoint PATH`, runs it on the
test split with the backtest engine, after costs, and prints the metrics next to
buy-and-hold, the edge over it and the trials behind the selection. Writes metrics JSON, an
equity/drawdown PNG and an HTML report beside the checkpoint. `--engine nautilus` also
replays the decisions through NautilusTrader with IB-like costs; `--strategy ID` backtests a
registered strategy instead (evotrader.training.backtesting does the work).

Guards: a checkpoint with NaN/inf weights or normalisation statistics is refused; a
`--symbol` other than the checkpoint's is refused unless `--trade-as SYMBOL` runs its policy
on that symbol's bars (announced in the output); its data reference may only name a
registered source and files inside the data folders (see evotrader.data.reference). Every
expected failure prints one `error:` line; exit codes (evotrader.cli.ExitCode): 0 done,
2 bad arguments, 5 data, 6 checkpoint. `--debug` shows the traceback. The libraries the work
needs (torch, pandas, SQLAlchemy, ...) load after the arguments are parsed, so `--help` is quick.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evotrader.cli import TRADE_AS_HELP, ExitCode, check_choice, run_guarded

REGIMES_HELP = "regime classifier of the report's breakdown, e.g. rules or hmm (default: rules)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", help="symbol whose latest checkpoint to load")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint file instead")
    parser.add_argument("--trade-as", metavar="SYMBOL", help=TRADE_AS_HELP)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, help="where to write JSON and PNG (default: beside it)")
    parser.add_argument(
        "--engine",
        choices=("ours", "nautilus"),
        default="ours",
        help="nautilus: also replay the decisions through NautilusTrader and compare",
    )
    parser.add_argument("--regimes", help=REGIMES_HELP)
    parser.add_argument("--strategy", help="a registered strategy's id (strategy_search)")
    parser.add_argument("--registry", type=Path, help="its strategies.sqlite (default: newest)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    args = parser.parse_args(argv)
    if not args.strategy and not args.checkpoint and not args.symbol:
        parser.error("give --symbol or --checkpoint")
    from evotrader.reasoning.market_classifier import available_classifiers
    from evotrader.strategies.registry import RegistryError
    from evotrader.training.backtesting import BacktestRequest, backtest

    check_choice(parser, "--regimes", args.regimes, available_classifiers())
    request = BacktestRequest(
        symbol=args.symbol,
        checkpoint=args.checkpoint,
        trade_as=args.trade_as,
        runs_dir=args.runs_dir,
        out=args.out,
        engine=args.engine,
        regimes=args.regimes or BacktestRequest.regimes,
        strategy=args.strategy,
        registry=args.registry,
    )

    def work() -> int:
        backtest(request)
        return ExitCode.OK

    return run_guarded(work, debug=args.debug, failures=((RegistryError, ExitCode.USAGE),))


if __name__ == "__main__":
    sys.exit(main())
