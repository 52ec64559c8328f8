"""One live session, as run_live_bot.py runs it: choose, check, build, trade, summarise.

The rules a session enforces live here, not in the script:

- The model registry says what is traded (``evotrader.lifecycle.choice``): ``--symbol``
  trades the symbol's paper entry on paper and in the sim, else its champion; real money
  only the champion. ``--checkpoint`` / ``--strategy`` name something else for paper and the
  sim, and the bot records that the flag chose it.
- Preferences are the human's file, tightened by the runner config, then by ``--tighten``;
  nothing may loosen them.
- Brokers come from the ``BROKERS`` registry (``sim``, ``ibkr``); each broker module registers
  its own builder and is imported only when asked for.
- A restarted bot on the same output folder reconciles its journal with the broker; the sim
  rebuilds its replay from the journal (``Broker.resume``).
- ``--strategy ID`` trades a registered strategy instead of a checkpoint, through the same
  runner, risk engine, journal and brokers (``evotrader.live.strategy_policy`` holds which
  strategies it trades and how they decide).
- A halt is an alert (``evotrader.lifecycle.alerts``): a line in ``events.jsonl``, and the
  optional alert command and webhook.
- A portfolio checkpoint (``--symbol`` naming its universe, e.g. ``A0+A1+A2+A3``) and a
  multi-symbol registered strategy are traded by the basket bot
  (``evotrader.live.basket_session``), under the same rules.
- Paper and live bots end each session by writing their daily and weekly reports
  (``evotrader.live.report``); a sim replay does when asked (``reports=True``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import yaml

from evotrader.config import PROJECT_ROOT
from evotrader.core.atomic import write_atomic
from evotrader.core.policy import Policy
from evotrader.core.registry import Registry
from evotrader.data.features import FeaturePipeline
from evotrader.env.spec import EnvSpec
from evotrader.lifecycle.alerts import Alerts
from evotrader.lifecycle.choice import Choice, choose
from evotrader.lifecycle.states import LifecycleError
from evotrader.lifecycle.store import REGISTRY_FILE
from evotrader.live.broker import Broker
from evotrader.live.broker_sync import BrokerSync
from evotrader.live.journal import Journal
from evotrader.live.runner import BarPolicy, LiveRunner, RunnerConfig
from evotrader.live.telemetry import EventLog, RunSummary
from evotrader.risk import KillSwitch, Preferences, RiskEngine, load_preferences
from evotrader.training import guards
from evotrader.training.guards import TradableCheckpoint

if TYPE_CHECKING:  # loaded only when a strategy is traded: SQLAlchemy and the knowledge base
    from evotrader.live.strategy_policy import TradableStrategy

log = logging.getLogger(__name__)


class SetupError(ValueError):
    """The command line, a config file or the checkpoint choice is not usable."""


@dataclass(frozen=True)
class LiveOptions:
    """What a session is asked to do: run_live_bot.py's flags, by their names."""

    symbol: str | None = None
    entry: int | None = None  # a model registry entry, traded if paper or champion
    checkpoint: Path | None = None
    trade_as: str | None = None
    runs_dir: Path = Path("runs")
    broker: str = "ibkr"
    live: bool = False  # real money: the script lets it through only with its confirmation
    preferences: Path = PROJECT_ROOT / "configs/preferences.yaml"
    config: Path = PROJECT_ROOT / "configs/live/default.yaml"
    tighten: Sequence[str] = ()
    out: Path | None = None
    kill_file: Path | None = None
    seed: int = 0
    max_bars: int | None = None
    clear_halt: bool = False
    bars_source: str | None = None  # sim: data source to replay (default: the checkpoint's)
    bars_path: Path | None = None  # sim: csv or parquet file of bars to replay
    start: str | None = None  # sim: first replayed bar (default: the test split's start)
    end: str | None = None  # sim: last replayed bar (default: the test split's end)
    host: str | None = None  # ibkr: None takes IBKR_HOST, then the default
    port: int | None = None
    client_id: int | None = None
    bar_size: str | None = None
    strategy: str | None = None  # a registered strategy's id, traded instead of a checkpoint
    registry: Path | None = None  # its registry (default: the newest under runs_dir holding it)
    allow_unvalidated: bool = False  # trade a strategy that was only screened (never --live)
    model_registry: str | None = None  # default: <runs_dir>/registry.sqlite
    alert_command: Sequence[str] | None = None  # run on a halt, the alert as JSON on stdin
    alert_webhook: str | None = None  # POSTed the alert as JSON on a halt
    reports: bool | None = None  # daily and weekly reports (None: paper and live, not the sim)

    def __post_init__(self) -> None:
        if not (self.symbol or self.checkpoint or self.strategy or self.entry is not None):
            raise SetupError("give a symbol, an entry, a checkpoint or a strategy id")
        if sum(x is not None for x in (self.entry, self.checkpoint, self.strategy)) > 1:
            raise SetupError("--entry, --checkpoint and --strategy each name what to trade: one")
        if self.strategy and (self.checkpoint or self.trade_as):
            raise SetupError(
                "--strategy trades a registered strategy on its own symbols: "
                "drop --checkpoint and --trade-as"
            )
        if self.allow_unvalidated and self.live:
            raise SetupError("--allow-unvalidated never trades real money: drop --live")
        if self.live and self.broker == "sim":
            raise SetupError("--live needs --broker ibkr; the sim never trades real money")


@dataclass(frozen=True)
class BrokerSetup:
    """What a broker builder may use: the options, the checked checkpoint (or registered
    strategy) and its settings."""

    options: LiveOptions
    tradable: TradableCheckpoint | TradableStrategy
    config: RunnerConfig
    prefs: Preferences


BrokerBuilder = Callable[[BrokerSetup], Broker]
BROKERS: Registry[BrokerBuilder] = Registry(
    "broker",
    lambda: {"ibkr": "evotrader.live.ib.broker", "sim": "evotrader.live.sim_broker"},
    error=SetupError,
)


def build_broker(setup: BrokerSetup) -> Broker:
    """The broker ``setup.options.broker`` names; an unknown name is a ``SetupError``
    listing the known ones."""
    return BROKERS.get(setup.options.broker)(setup)


def choose_for(options: LiveOptions) -> Choice:
    """What the model registry (or an explicit flag) says this session trades."""
    try:
        return choose(
            options.model_registry or options.runs_dir / REGISTRY_FILE,
            symbol=options.symbol,
            entry_id=options.entry,
            checkpoint=options.checkpoint,
            strategy=options.strategy,
            strategies=options.registry,
            runs_dir=options.runs_dir,
            real_money=options.live,
        )
    except LifecycleError as error:
        raise SetupError(str(error)) from error


def runner_config(options: LiveOptions, symbol: str) -> RunnerConfig:
    """The runner config file, with the run's own settings (max bars, clear halt) on top;
    lot size defaults to fractional units in the sim and whole shares elsewhere."""
    try:
        settings = yaml.safe_load(options.config.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SetupError(f"runner config {options.config}: {error}") from error
    if not isinstance(settings, dict):
        raise SetupError(f"runner config {options.config}: expected a mapping")
    if settings.get("lot_size") is None:
        settings["lot_size"] = 0.0 if options.broker == "sim" else 1.0
    settings |= {"max_bars": options.max_bars, "clear_halt": options.clear_halt}
    try:
        return RunnerConfig.from_mapping(symbol, settings, where=f"runner config {options.config}")
    except (TypeError, ValueError) as error:
        raise SetupError(f"runner config {options.config}: {error}") from error


def tightenings(items: Sequence[str]) -> dict[str, Any]:
    """``LIMIT=VALUE`` items as preference overrides (values parsed as YAML)."""
    overrides = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise SetupError(f"--tighten {item!r}: expected LIMIT=VALUE")
        overrides[name.strip()] = yaml.safe_load(raw)
    return overrides


def preferences_for(options: LiveOptions, config: RunnerConfig) -> tuple[Preferences, Preferences]:
    """The human's file, and it tightened by the runner config, then by ``--tighten``."""
    human = load_preferences(options.preferences)
    effective = human.tightened(config.risk_overrides)
    return human, effective.tightened(tightenings(options.tighten))


def live_policy(tradable: TradableCheckpoint, broker: Broker, config: RunnerConfig) -> Policy:
    """The policy exactly as run_backtest.py trades it: a MAML checkpoint first adapts on
    the bars just before the first live bar, never on live ones; others trade as saved."""
    broker.connect()
    history = broker.history(broker.qualify(config.instrument), config.history_bars)
    return tradable.policy(history, history.index[-1] + pd.Timedelta(1, "ns"))


def output_dir(options: LiveOptions, symbol: str) -> Path:
    """Paper and live keep one folder per bot, so a restart finds its journal; each sim
    replay is a fresh account and gets a fresh folder."""
    if options.out:
        return options.out
    if options.broker == "sim":
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        return Path("runs/live") / f"{symbol}-sim-{stamp}"
    kind = "live" if options.live else "paper"
    return Path("runs/live") / f"{symbol}-{options.broker}-{kind}"


def write_summary(path: Path, summary: RunSummary, extra: dict[str, Any]) -> None:
    """Atomically: temp file in the same folder, fsync, rename."""
    payload = summary.counts() | {
        "equity": {str(k): v for k, v in summary.equity.items()},
        "expected": {str(k): v for k, v in summary.expected.items()},
    }
    write_atomic(path, json.dumps(payload | extra, indent=1))


def run(options: LiveOptions) -> RunSummary:
    """The whole session, seeded, on one torch thread: one observation per bar gains
    nothing from more threads, only contention."""
    torch.manual_seed(options.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(options)
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Trading:
    """What a session trades, whichever kind: the symbol, how to build its policy once the
    broker is connected, the runner's pipeline and env, and what to record of it."""

    tradable: TradableCheckpoint | TradableStrategy
    symbol: str
    pipeline: FeaturePipeline | None
    env: EnvSpec
    make_policy: Callable[[Broker, RunnerConfig], Policy | BarPolicy]
    event: str  # the event recording it: "checkpoint" or "strategy"
    detail: dict[str, Any]
    notes: tuple[str, ...] = ()


def checkpoint_trading(options: LiveOptions, choice: Choice) -> Trading:
    """The chosen checkpoint, traded as run_backtest.py trades it."""
    assert choice.checkpoint is not None
    path = choice.checkpoint
    tradable = TradableCheckpoint.load(path)
    checkpoint = tradable.checkpoint
    symbol = guards.traded_symbol(checkpoint, tradable.where, options.symbol, options.trade_as)
    note = guards.mapping_note(checkpoint, symbol)
    detail = {"path": str(path), "kind": checkpoint.kind, "symbol": checkpoint.symbol}
    return Trading(
        tradable,
        symbol,
        tradable.pipeline,
        tradable.spec,
        lambda broker, config: live_policy(tradable, broker, config),
        "checkpoint",
        detail | {"traded": symbol},
        (f"checkpoint: {path} ({checkpoint.kind}, {checkpoint.symbol})", *([note] if note else [])),
    )


def chosen_strategy(options: LiveOptions, choice: Choice) -> TradableStrategy:
    """The chosen registered strategy, if the validation and promotion gates let it trade."""
    from evotrader.live.strategy_policy import TradableStrategy

    assert choice.strategy is not None
    return TradableStrategy.load(
        choice.strategy,
        choice.strategies,
        options.runs_dir,
        allow_unvalidated=options.allow_unvalidated,
        real_money=options.live,
    )


def strategy_trading(options: LiveOptions, strategy: TradableStrategy) -> Trading:
    """A single-instrument registered strategy, traded as run_backtest.py trades it."""
    from evotrader.live.strategy_policy import STRATEGY_HISTORY_BARS

    if options.symbol and options.symbol != strategy.symbol:
        raise SetupError(f"--symbol {options.symbol}: {strategy.where} trades {strategy.symbol}")

    def make_policy(broker: Broker, config: RunnerConfig) -> BarPolicy:
        broker.connect()
        history = broker.history(broker.qualify(config.instrument), STRATEGY_HISTORY_BARS)
        return strategy.policy(history)

    return Trading(
        strategy,
        strategy.symbol,
        None,
        strategy.env,
        make_policy,
        "strategy",
        strategy.describe(),
        strategy.notes(),
    )


def _run(options: LiveOptions) -> RunSummary:
    from evotrader.live import basket_session  # a universe: the basket bot trades it

    choice = choose_for(options)
    if choice.strategy:
        strategy = chosen_strategy(options, choice)
        if strategy.is_basket:
            basket = basket_session.strategy_basket(strategy)
            return basket_session.run_basket(options, choice, basket)
        trading = strategy_trading(options, strategy)
    else:
        assert choice.checkpoint is not None
        if basket_session.is_basket(choice.checkpoint):
            basket = basket_session.checkpoint_basket(choice.checkpoint)
            return basket_session.run_basket(options, choice, basket)
        trading = checkpoint_trading(options, choice)
    symbol = trading.symbol
    config = runner_config(options, symbol)
    human, prefs = preferences_for(options, config)
    broker = build_broker(BrokerSetup(options, trading.tradable, config, prefs))
    out = output_dir(options, symbol)
    journal, events, alerts = open_bot_files(options, out)
    try:
        first, *notes = trading.notes
        log.info(f"{first}; out: {out}")
        for note in [*notes, *filter(None, [choice.note()])]:
            log.info(note)
        if (seen := broker.resume(journal)) is not None:
            log.info(f"resuming the replay after {seen}, the last bar in {journal.path}")
        policy = trading.make_policy(broker, config)
        events.emit(trading.event, **trading.detail, **choice.record())
        with journal.transaction():
            journal.set_state("choice", choice.record())
            if trading.event == "strategy":
                journal.set_state("strategy", trading.detail)
        record_preferences(events, options, human, prefs)
        summary = run_bot(
            options,
            out,
            alerts,
            choice,
            symbol,
            lambda kill: LiveRunner(
                broker,
                policy,
                trading.pipeline,
                trading.env,
                RiskEngine(prefs),
                journal,
                config,
                kill_switch=kill,
                events=events,
                real_money=options.live,
            ),
        )
    finally:
        close_bot(journal, events, broker)
    traded = (
        {"strategy": trading.detail["strategy"]}
        if trading.event == "strategy"
        else {"checkpoint": trading.detail["path"]}
    )
    finish_session(options, out, summary, traded | {"choice": choice.record()}, prefs)
    return summary


def open_bot_files(options: LiveOptions, out: Path) -> tuple[Journal, EventLog, Alerts]:
    """The bot's journal and event log in ``out`` and its alerts; alert settings that
    cannot work are a SetupError."""
    journal = Journal(out / "journal.sqlite")
    events = EventLog(out / "events.jsonl")
    try:
        alerts = Alerts(events, options.alert_command, options.alert_webhook)
    except LifecycleError as error:
        raise SetupError(str(error)) from error
    return journal, events, alerts


def run_bot(
    options: LiveOptions,
    out: Path,
    alerts: Alerts,
    choice: Choice,
    symbol: str,
    make_runner: Callable[[KillSwitch], BrokerSync],
) -> RunSummary:
    """Build the runner with the bot's kill switch (the KILL file in ``out`` unless
    ``--kill-file`` names another), run it while the switch watches, alert on a halt."""
    kill = KillSwitch(options.kill_file or out / "KILL")
    try:
        runner = make_runner(kill)
    except ValueError as error:  # history_bars too short for this checkpoint
        raise SetupError(f"runner config {options.config}: {error}") from error
    with kill:
        summary = runner.run()
    if summary.halt is not None:
        alerts.halt(summary.halt.to_dict(), bot=str(out), symbol=symbol, **choice.record())
    return summary


def record_preferences(
    events: EventLog, options: LiveOptions, human: Preferences, prefs: Preferences
) -> None:
    """Report the preferences file and the effective (tightened) preferences."""
    events.emit(
        "preferences",
        file=str(options.preferences),
        file_sha256=human.sha256,
        effective_sha256=prefs.sha256,
        tightened=human.sha256 != prefs.sha256,
    )
    log.info(f"preferences: {options.preferences} sha256 {human.sha256}")


def close_bot(journal: Journal, events: EventLog, broker: Broker) -> None:
    """Close the journal and the event log, disconnect the broker."""
    journal.close()
    events.close()
    if broker.is_connected():
        broker.disconnect()


def finish_session(
    options: LiveOptions,
    out: Path,
    summary: RunSummary,
    extra: dict[str, Any],
    prefs: Preferences,
) -> None:
    """Write the run's summary.json (``extra``, the preferences' hash and the seed with
    it), log its counts and, when asked (by default away from sim), the bot's reports."""
    extra = extra | {"preferences_sha256": prefs.sha256, "seed": options.seed}
    write_summary(out / "summary.json", summary, extra)
    final = summary.equity_series.iloc[-1] if summary.equity else float("nan")
    log.info(
        f"{summary.bars} bars, {summary.decisions} decisions, {summary.orders} orders "
        f"({summary.rejected} refused by risk), {summary.fills} fills, {summary.errors} errors; "
        f"final equity {final:,.2f}"
    )
    log.info(f"journal {out / 'journal.sqlite'}, events {out / 'events.jsonl'}")
    if options.reports if options.reports is not None else options.broker != "sim":
        write_bot_reports(out)


def write_bot_reports(out: Path) -> None:
    """The bot's daily and weekly reports; one that cannot be written costs a warning line,
    never the finished session."""
    from evotrader.live.report import BotFolderError, write_reports  # matplotlib

    try:
        written = write_reports(out)
    except BotFolderError as error:
        log.warning(f"reports not written: {error}")
        return
    log.info(f"reports: {len(written)} files in {out / 'reports'}")
