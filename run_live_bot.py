"""Trade a checkpoint live: `python run_live_bot.py --broker sim --symbol GOOG`.

Loads the champion (`{symbol}_autonomous_final.pth` under --runs-dir) when one exists,
else `--checkpoint PATH` (the sim also falls back to the latest stage checkpoint, as
run_backtest.py does). Risk limits come from the human-owned preferences file, whose
sha256 is logged at start; --tighten and the runner config may only make them stricter.

Brokers: `sim` replays the checkpoint's own bars (its test split by default) offline with
the shared execution model, so its fills and equity match run_backtest.py; `ibkr` trades
through TWS / IB Gateway, paper by default. Real money needs `--live` and
`--i-understand-this-is-real-money`. IBKR connection settings come from the environment
(IBKR_HOST, IBKR_PORT, IBKR_CLIENT_ID, IBKR_ACCOUNT) or the flags; none is ever logged
beyond host, port and client id.

Stop it with the kill switch: create the kill file (default <out>/KILL) or send SIGTERM or
SIGINT; the bot flattens its position and halts. A bot killed outright (kill -9, a crash)
and restarted on the same --out reconciles its journal with the broker; the sim rebuilds
its replay from the journal and carries on after the last bar the bot saw.

Guards: a checkpoint with NaN/inf weights or normalisation statistics is refused; a
--symbol other than the checkpoint's is refused unless --trade-as SYMBOL trades its policy
on that symbol (announced at start); its data reference may only name a registered source
and files inside the data folders. Every expected failure prints one `error:` line.
Exit codes (evotrader.cli.ExitCode): 0 done, 2 bad set-up (arguments, config, preferences),
3 halted (breaker or kill switch), 4 broker (refused, unreachable or connection lost),
5 data, 6 checkpoint, 7 journal (unreadable, or another bot's). --debug shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from evotrader.cli import ExitCode, run_guarded
from evotrader.config import EnvConfig, execution_from
from evotrader.core.atomic import write_atomic
from evotrader.core.checkpoint import Checkpoint, find_champion, find_checkpoint, load_checkpoint
from evotrader.core.policy import Policy
from evotrader.data import data_roots, load_bars
from evotrader.live.broker import Broker
from evotrader.live.journal import Journal, JournalError
from evotrader.live.runner import LiveRunner, RunnerConfig, RunSummary
from evotrader.live.sim_broker import SimBroker
from evotrader.live.telemetry import EventLog
from evotrader.risk import KillSwitch, Preferences, RiskEngine, load_preferences
from evotrader.risk.preferences import PreferencesError
from evotrader.training import guards
from evotrader.training.adaptation import trading_policy

ROOT = Path(__file__).resolve().parent
CONFIRM_FLAG = "--i-understand-this-is-real-money"


class SetupError(ValueError):
    """The command line, a config file or the checkpoint choice is not usable."""


FAILURES = (
    (SetupError, ExitCode.USAGE),
    (PreferencesError, ExitCode.USAGE),
    (JournalError, ExitCode.RUN),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", help="symbol whose champion to trade (the checkpoint's)")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint to trade when no champion")
    parser.add_argument("--trade-as", metavar="SYMBOL", help=guards.TRADE_AS_HELP)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--broker", choices=("ibkr", "sim"), default="ibkr")
    parser.add_argument("--live", action="store_true", help="trade real money (needs confirming)")
    parser.add_argument(CONFIRM_FLAG, dest="confirmed", action="store_true")
    parser.add_argument("--preferences", type=Path, default=ROOT / "configs/preferences.yaml")
    parser.add_argument("--config", type=Path, default=ROOT / "configs/live/default.yaml")
    parser.add_argument(
        "--tighten",
        action="append",
        default=[],
        metavar="LIMIT=VALUE",
        help="make a preference stricter for this run (repeatable); looser values are refused",
    )
    parser.add_argument("--out", type=Path, help="journal, event log and summary folder")
    parser.add_argument("--kill-file", type=Path, help="its existence flattens and halts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-bars", type=int, help="stop after this many live bars")
    parser.add_argument("--clear-halt", action="store_true", help="resume after a breaker")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    sim = parser.add_argument_group("sim broker")
    sim.add_argument("--bars-source", help="data source to replay (default: the checkpoint's)")
    sim.add_argument("--bars-path", type=Path, help="csv or parquet file of bars to replay")
    sim.add_argument("--start", help="first replayed bar (default: the test split's start)")
    sim.add_argument("--end", help="last replayed bar (default: the test split's end)")
    ibkr = parser.add_argument_group("ibkr broker (defaults from IBKR_* environment variables)")
    ibkr.add_argument("--host")
    ibkr.add_argument("--port", type=int, help="7497 TWS paper, 4002 Gateway paper")
    ibkr.add_argument("--client-id", type=int)
    ibkr.add_argument("--bar-size", help='IB bar size, e.g. "1 day", "5 mins"')
    args = parser.parse_args(argv)
    if not args.symbol and not args.checkpoint:
        parser.error("give --symbol or --checkpoint")
    if args.live and not args.confirmed:
        parser.error(f"--live trades real money; add {CONFIRM_FLAG} to confirm")
    if args.live and args.broker == "sim":
        parser.error("--live needs --broker ibkr; the sim never trades real money")
    return args


def choose_checkpoint(args: argparse.Namespace) -> Path:
    """The champion when one exists (exclusively, for paper and live), else --checkpoint;
    the sim may also fall back to the latest stage checkpoint."""
    champion = find_champion(args.runs_dir, args.symbol) if args.symbol else None
    if args.checkpoint:
        if champion and args.broker != "sim" and champion.resolve() != args.checkpoint.resolve():
            raise SetupError(
                f"a champion exists at {champion}; the live bot trades only the champion "
                "(drop --checkpoint, or move the champion away to trade another checkpoint)"
            )
        return args.checkpoint
    if champion:
        return champion
    if args.broker == "sim":
        return find_checkpoint(args.runs_dir, args.symbol)
    raise SetupError(
        f"no champion {args.symbol}_autonomous_final.pth under {args.runs_dir}/; "
        "pass --checkpoint PATH to trade another checkpoint"
    )


def tightenings(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise SetupError(f"--tighten {item!r}: expected LIMIT=VALUE")
        overrides[name.strip()] = yaml.safe_load(raw)
    return overrides


def runner_config(args: argparse.Namespace, symbol: str) -> RunnerConfig:
    try:
        settings = yaml.safe_load(args.config.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SetupError(f"runner config {args.config}: {error}") from error
    if not isinstance(settings, dict):
        raise SetupError(f"runner config {args.config}: expected a mapping")
    if settings.get("lot_size") is None:
        settings["lot_size"] = 0.0 if args.broker == "sim" else 1.0
    settings |= {"max_bars": args.max_bars, "clear_halt": args.clear_halt}
    try:
        return RunnerConfig.from_mapping(symbol, settings, where=f"runner config {args.config}")
    except (TypeError, ValueError) as error:
        raise SetupError(f"runner config {args.config}: {error}") from error


def preferences_for(
    args: argparse.Namespace, config: RunnerConfig
) -> tuple[Preferences, Preferences]:
    """The human's file, and it tightened by the runner config, then by the CLI."""
    human = load_preferences(args.preferences)
    effective = human.tightened(config.risk_overrides)
    return human, effective.tightened(tightenings(args.tighten))


def sim_broker(
    args: argparse.Namespace,
    checkpoint: Checkpoint,
    where: str,
    env: EnvConfig,
    config: RunnerConfig,
    prefs: Preferences,
) -> SimBroker:
    """Replay the traded symbol's bars from the checkpoint's source (or --bars-source, or
    the --bars-path file) from its test split's start."""
    data = checkpoint.extra.get("data", {})
    if args.bars_path:  # the user's own file, named on the command line
        kind = "parquet" if args.bars_path.suffix == ".parquet" else "csv"
        bars = load_bars(kind, config.symbol, path=args.bars_path)
    elif args.bars_source and args.bars_source != data.get("source"):
        bars = load_bars(args.bars_source, config.symbol)
    elif data:
        bars = guards.checkpoint_bars(checkpoint, where, data_roots(ROOT), config.symbol)
    else:
        raise SetupError(f"{where} does not say where its bars came from; pass --bars-source")
    start = args.start or checkpoint.data_range.get("test_start")
    end = args.end or checkpoint.data_range.get("test_end")
    bars = bars.loc[:end] if end else bars
    try:
        return SimBroker(
            bars,
            config.instrument,
            start=start,
            execution=execution_from(env.execution),
            initial_cash=env.initial_cash,
            hours=prefs.trading_hours,
        )
    except ValueError as error:  # bars too short for the replay, a start past the end
        raise SetupError(f"sim replay of {config.symbol}: {error}") from error


def ibkr_broker(args: argparse.Namespace, prefs: Preferences) -> Broker:
    """IBKRBroker on the preferences' trading hours (when daily bars close). One connect
    attempt per call: the runner reconnects with its own backoff, and nested retries would
    multiply the waits. A bot that cannot reach TWS at start exits at once (code 4).
    ib_async logs stay at WARNING so its INFO lines never print account ids."""
    from evotrader.live.ibkr_broker import IBKRBroker, IBKRConfig

    for name in ("ib_async", "ib_insync"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        config = IBKRConfig.from_env(
            live=args.live,
            host=args.host,
            port=args.port,
            client_id=args.client_id,
            bar_size=args.bar_size,
            max_connect_attempts=1,
        )
    except ValueError as error:
        raise SetupError(str(error)) from error
    return IBKRBroker(config, hours=prefs.trading_hours)


def live_policy(checkpoint: Checkpoint, broker: Broker, config: RunnerConfig) -> Policy:
    """The policy exactly as run_backtest.py trades it: a MAML checkpoint first adapts on
    the bars just before the first live bar, never on live ones; others trade as saved."""
    broker.connect()
    history = broker.history(broker.qualify(config.instrument), config.history_bars)
    return trading_policy(checkpoint, history, history.index[-1] + pd.Timedelta(1, "ns"))


def output_dir(args: argparse.Namespace, symbol: str) -> Path:
    """Paper and live keep one folder per bot, so a restart finds its journal; each sim
    replay is a fresh account and gets a fresh folder."""
    if args.out:
        return args.out
    if args.broker == "sim":
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        return Path("runs/live") / f"{symbol}-sim-{stamp}"
    return Path("runs/live") / f"{symbol}-{args.broker}-{'live' if args.live else 'paper'}"


def write_summary(path: Path, summary: RunSummary, extra: dict[str, Any]) -> None:
    """Atomically: temp file in the same folder, fsync, rename."""
    payload = {
        "stopped": summary.stopped,
        "halt": summary.halt.to_dict() if summary.halt else None,
        "bars": summary.bars,
        "decisions": summary.decisions,
        "orders": summary.orders,
        "rejected": summary.rejected,
        "fills": summary.fills,
        "errors": summary.errors,
        "equity": {str(k): v for k, v in summary.equity.items()},
        "expected": {str(k): v for k, v in summary.expected.items()},
    } | extra
    write_atomic(path, json.dumps(payload, indent=1))


def exit_code(summary: RunSummary) -> ExitCode:
    if summary.halt is not None:
        return ExitCode.HALTED
    return ExitCode.BROKER if summary.stopped.startswith("connection lost") else ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one observation per bar: more threads only add contention
    try:
        return run_guarded(partial(_trade, args), debug=args.debug, failures=FAILURES)
    finally:
        torch.set_num_threads(threads)


def _trade(args: argparse.Namespace) -> int:
    path = choose_checkpoint(args)
    where = f"checkpoint {path}"
    checkpoint = load_checkpoint(path)
    symbol = guards.traded_symbol(checkpoint, where, args.symbol, args.trade_as)
    config = runner_config(args, symbol)
    human, prefs = preferences_for(args, config)
    env, pipeline = guards.trading_setup(checkpoint, where)
    broker = (
        sim_broker(args, checkpoint, where, env, config, prefs)
        if args.broker == "sim"
        else ibkr_broker(args, prefs)
    )
    out = output_dir(args, symbol)
    journal = Journal(out / "journal.sqlite")
    events = EventLog(out / "events.jsonl")
    try:
        note = guards.mapping_note(checkpoint, symbol)
        print(f"checkpoint: {path} ({checkpoint.kind}, {checkpoint.symbol}); out: {out}")
        if note:
            print(note)
        if isinstance(broker, SimBroker) and (seen := broker.resume(journal)) is not None:
            print(f"resuming the replay after {seen}, the last bar in {journal.path}")
        policy = live_policy(checkpoint, broker, config)
        events.emit(
            "checkpoint",
            path=str(path),
            kind=checkpoint.kind,
            symbol=checkpoint.symbol,
            traded=symbol,
        )
        events.emit(
            "preferences",
            file=str(args.preferences),
            file_sha256=human.sha256,
            effective_sha256=prefs.sha256,
            tightened=human.sha256 != prefs.sha256,
        )
        print(f"preferences: {args.preferences} sha256 {human.sha256}")
        kill = KillSwitch(args.kill_file or out / "KILL")
        try:
            runner = LiveRunner(
                broker,
                policy,
                pipeline,
                env,
                RiskEngine(prefs),
                journal,
                config,
                kill_switch=kill,
                events=events,
                real_money=args.live,
            )
        except ValueError as error:  # history_bars too short for this checkpoint
            raise SetupError(f"runner config {args.config}: {error}") from error
        with kill:
            summary = runner.run()
    finally:
        journal.close()
        events.close()
        if broker.is_connected():
            broker.disconnect()
    write_summary(
        out / "summary.json",
        summary,
        {"checkpoint": str(path), "preferences_sha256": prefs.sha256, "seed": args.seed},
    )
    print(
        f"{summary.bars} bars, {summary.decisions} decisions, {summary.orders} orders "
        f"({summary.rejected} refused by risk), {summary.fills} fills, {summary.errors} errors; "
        f"final equity {summary.equity_series.iloc[-1] if summary.equity else float('nan'):,.2f}"
    )
    print(f"journal {out / 'journal.sqlite'}, events {out / 'events.jsonl'}")
    return exit_code(summary)


if __name__ == "__main__":
    sys.exit(main())
