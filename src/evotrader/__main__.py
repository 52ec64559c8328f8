"""``python -m evotrader registry ...``: the operator's view of the model registry.

argparse and one call (``evotrader.lifecycle.commands.execute``) through ``cli.run_guarded``,
so a refused request ends in one ``error:`` line and the usual exit codes: 2 for a request
the lifecycle refuses (an unknown entry, a transition not allowed, a promotion without a
passing comparison, a bot folder that is not the entry's paper bot), 5 bad bars, 6 a
checkpoint that cannot be read, 7 a database that is not a model registry of this version.
``python -m evotrader report BOT_DIR`` writes a bot's daily and weekly reports
(``evotrader.live.report``) and prints their paths; a folder that is not a bot's exits 2.
The heavy modules (SQLAlchemy, the backtest, matplotlib) load after the arguments parse.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from evotrader.cli import ExitCode, run_guarded
from evotrader.lifecycle.states import CANDIDATE, CHAMPION, PAPER, RETIRED

DEFAULT_REGISTRY = "runs/registry.sqlite"  # <runs_dir>/lifecycle.store.REGISTRY_FILE


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m evotrader")
    tools = main.add_subparsers(dest="tool", required=True)
    report = tools.add_parser("report", help="daily and weekly reports of a bot's folder")
    report.add_argument("bot_dir", type=Path, help="the bot's --out folder")
    report.add_argument("--period", choices=("daily", "weekly", "both"), default="both")
    report.add_argument("--rewrite", action="store_true", help="redraw closed periods' reports")
    report.add_argument("--debug", action="store_true", help="show tracebacks")
    registry = tools.add_parser("registry", help="the model registry and champion lifecycle")
    registry.add_argument(
        "--registry",
        default=DEFAULT_REGISTRY,
        help=f"database path or SQLAlchemy URL (default: {DEFAULT_REGISTRY})",
    )
    registry.add_argument("--debug", action="store_true", help="show tracebacks")
    actions = registry.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every entry, its state and figures")
    listing.add_argument("--symbol")
    actions.add_parser("show", help="one entry's whole record").add_argument("entry", type=int)
    promote = actions.add_parser("promote", help="one step up: candidate->paper->champion")
    promote.add_argument("entry", type=int)
    promote.add_argument("--to", required=True, choices=(PAPER, CHAMPION))
    promote.add_argument("--why", default="", help="the reason, recorded with the change")
    demote = actions.add_parser("demote", help="one step down: paper->candidate, ->retired")
    demote.add_argument("entry", type=int)
    demote.add_argument("--why", required=True, help="the reason, recorded with the change")
    demote.add_argument("--to", choices=(CANDIDATE, RETIRED), help="default: one step down")
    history = actions.add_parser("history", help="every state change (of one entry)")
    history.add_argument("entry", type=int, nargs="?")
    record = actions.add_parser(
        "record", help="record a checkpoint, or a search's validated strategies, as candidates"
    )
    record.add_argument("path", type=Path, help="a .pth checkpoint or a strategies.sqlite")
    record.add_argument("--strategy", metavar="ID", help="only this strategy of the search")
    compare = actions.add_parser(
        "compare", help="challenger vs champion on bars after both test splits"
    )
    compare.add_argument("entry", type=int)
    compare.add_argument("--against", type=int, help="default: the symbol's champion")
    compare.add_argument("--start", help="the holdout's first bar (after both test splits)")
    watch = actions.add_parser(
        "monitor", help="judge a paper entry on its bot's days; promote, keep watching, demote"
    )
    watch.add_argument("entry", type=int)
    watch.add_argument("--bot-dir", type=Path, required=True, help="the paper bot's --out")
    watch.add_argument("--days", type=int, help="trading days before a verdict (default 20)")
    watch.add_argument("--z", type=float, help="band half-width in sigmas (default 2)")
    watch.add_argument(
        "--breach-action", choices=("flag", "demote"), help="before the verdict (default flag)"
    )
    watch.add_argument("--alert-command", help="run on an alert (split like a shell, no shell)")
    watch.add_argument("--webhook", help="POST each alert as JSON to this URL")
    return main


def _monitor_settings(args: argparse.Namespace) -> dict[str, object] | None:
    if args.action != "monitor":
        return None
    given = {"days": args.days, "z": args.z, "breach_action": args.breach_action}
    return {name: value for name, value in given.items() if value is not None}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.tool == "report":
        return _report(args)
    from sqlalchemy.exc import SQLAlchemyError

    from evotrader.lifecycle.commands import Command, execute
    from evotrader.lifecycle.states import LifecycleError
    from evotrader.lifecycle.store import RegistryStateError

    command = Command(
        action=args.action,
        registry=args.registry,
        entry=getattr(args, "entry", None),
        to=getattr(args, "to", None),
        why=getattr(args, "why", ""),
        path=getattr(args, "path", None),
        strategy=getattr(args, "strategy", None),
        against=getattr(args, "against", None),
        symbol=getattr(args, "symbol", None),
        start=getattr(args, "start", None),
        bot_dir=getattr(args, "bot_dir", None),
        settings=_monitor_settings(args),
        alert_command=tuple(shlex.split(args.alert_command))
        if getattr(args, "alert_command", None)
        else None,
        webhook=getattr(args, "webhook", None),
    )

    def work() -> int:
        print(execute(command))
        return ExitCode.OK

    return run_guarded(
        work,
        debug=args.debug,
        failures=(
            ((RegistryStateError, SQLAlchemyError), ExitCode.RUN),
            (LifecycleError, ExitCode.USAGE),
        ),
    )


def _report(args: argparse.Namespace) -> int:
    from evotrader.live.report import PERIODS, BotFolderError, write_reports

    periods = PERIODS if args.period == "both" else (args.period,)

    def work() -> int:
        written = write_reports(args.bot_dir, periods, rewrite=args.rewrite)
        print("\n".join(str(path) for path in written))
        return ExitCode.OK

    return run_guarded(work, debug=args.debug, failures=((BotFolderError, ExitCode.USAGE),))


if __name__ == "__main__":
    sys.exit(main())
