"""Trade what the model registry promoted: `python run_live_bot.py --broker sim --symbol GOOG`.

The model registry (runs/registry.sqlite) says what is traded: `--symbol` trades the symbol's
paper entry on paper and in the sim, else its champion; real money only the champion;
`--entry ID` one paper or champion entry. `--checkpoint PATH` or `--strategy ID` names
something else for paper and the sim, recorded as chosen by the flag
(evotrader.lifecycle.choice). Risk limits come from the human-owned preferences file, which
--tighten and the runner config may only make stricter (evotrader.live.session).
Brokers: `sim` replays the checkpoint's own bars offline, filling them as run_backtest.py
does; `ibkr` trades through TWS / IB Gateway, paper unless `--live` and
`--i-understand-this-is-real-money`; its settings come from IBKR_HOST, IBKR_PORT,
IBKR_CLIENT_ID, IBKR_ACCOUNT or the flags. The kill file (default <out>/KILL), SIGTERM or
SIGINT flattens and halts; a bot restarted on the same --out reconciles with the broker.
A portfolio checkpoint (`--checkpoint`, `--entry`, or `--symbol A0+A1+A2+A3`, its universe's
name) is traded as a basket (evotrader.live.basket_session); its sim equals run_backtest.py too.
`--strategy ID` trades a registered strategy (validated; see evotrader.live.strategy_policy)
instead of a checkpoint; the sim replays its search's test split, as run_backtest.py does; a
multi-symbol strategy trades as a basket, as run_backtest.py's one-account run trades it.
A halt is an alert: a line in events.jsonl, plus --alert-command and --alert-webhook.
Exit codes (evotrader.cli.ExitCode): 0 done, 2 bad set-up, 3 halted, 4 broker, 5 data,
6 checkpoint, 7 journal (unreadable, or another bot's). --debug shows tracebacks. The libraries
the work needs (torch, pandas, SQLAlchemy, ...) load after the arguments are parsed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from evotrader.cli import TRADE_AS_HELP, ExitCode, Failures, check_choice, run_guarded

if TYPE_CHECKING:
    from evotrader.live.telemetry import RunSummary

CONFIRM_FLAG = "--i-understand-this-is-real-money"
TIGHTEN_HELP = "make a preference stricter for this run (repeatable); looser ones are refused"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--symbol", help="trade its registry entry: paper (paper, sim), else champion")
    add("--entry", type=int, help="trade this model registry entry (paper or champion)")
    add("--checkpoint", type=Path, help="trade this file (paper and sim; recorded as chosen)")
    add("--trade-as", metavar="SYMBOL", help=TRADE_AS_HELP)
    add("--runs-dir", type=Path, help="where runs and the model registry are (runs)")
    add("--model-registry", help="path or SQLAlchemy URL (default: <runs-dir>/registry.sqlite)")
    add("--strategy", metavar="ID", help="trade a registered strategy instead of a checkpoint")
    add("--registry", type=Path, help="its strategies.sqlite (default: newest under --runs-dir)")
    add("--allow-unvalidated", action="store_true", help="trade a strategy that only screened")
    add("--broker", help="sim or ibkr (default: ibkr)")
    add("--live", action="store_true", help="trade real money (needs confirming)")
    add(CONFIRM_FLAG, dest="confirmed", action="store_true")
    add("--preferences", type=Path, help="default: configs/preferences.yaml")
    add("--config", type=Path, help="runner settings; default: configs/live/default.yaml")
    add("--tighten", action="append", metavar="LIMIT=VALUE", help=TIGHTEN_HELP)
    add("--out", type=Path, help="journal, event log and summary folder")
    add("--kill-file", type=Path, help="its existence flattens and halts")
    add("--alert-command", type=shlex.split, help="run on a halt, the alert as JSON on stdin")
    add("--alert-webhook", help="POST the alert as JSON to this URL on a halt")
    add("--reports", action=argparse.BooleanOptionalAction, help="daily/weekly (not in sim)")
    add("--seed", type=int)
    add("--max-bars", type=int, help="stop after this many live bars")
    add("--clear-halt", action="store_true", help="resume after a breaker")
    add("--debug", action="store_true", help="show the traceback of a failure")
    sim = parser.add_argument_group("sim broker").add_argument
    sim("--bars-source", help="data source to replay (default: the checkpoint's)")
    sim("--bars-path", type=Path, help="csv or parquet file of bars to replay")
    sim("--start", help="first replayed bar (default: the test split's start)")
    sim("--end", help="last replayed bar (default: the test split's end)")
    ibkr = parser.add_argument_group("ibkr broker (defaults from IBKR_* variables)").add_argument
    ibkr("--host")
    ibkr("--port", type=int, help="7497 TWS paper, 4002 Gateway paper")
    ibkr("--client-id", type=int)
    ibkr("--bar-size", help='IB bar size, e.g. "1 day", "5 mins"')
    args = vars(parser.parse_args(argv))
    debug, confirmed = args.pop("debug"), args.pop("confirmed")
    if not any(args[name] is not None for name in ("symbol", "entry", "checkpoint", "strategy")):
        parser.error("give --symbol, --entry, --checkpoint or --strategy")
    if args["live"] and not confirmed:
        parser.error(f"--live trades real money; add {CONFIRM_FLAG} to confirm")
    if args["live"] and args["broker"] == "sim":
        parser.error("--live needs --broker ibkr; the sim never trades real money")
    from evotrader.live import session
    from evotrader.live.journal import JournalError
    from evotrader.risk.preferences import PreferencesError

    check_choice(parser, "--broker", args["broker"], session.BROKERS.names())
    options = session.LiveOptions(**{k: v for k, v in args.items() if v is not None})
    failures: Failures = (
        (session.SetupError, ExitCode.USAGE),
        (PreferencesError, ExitCode.USAGE),
        (JournalError, ExitCode.RUN),
    )
    return run_guarded(lambda: exit_code(session.run(options)), debug=debug, failures=failures)


def exit_code(summary: RunSummary) -> ExitCode:
    if summary.halt is not None:
        return ExitCode.HALTED
    return ExitCode.BROKER if summary.connection_lost else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
