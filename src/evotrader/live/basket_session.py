"""A basket session: run_live_bot.py trading a portfolio checkpoint (``PORTFOLIO_KINDS``).

``evotrader.live.session`` hands over here once the choice (``--checkpoint``, ``--entry``,
or ``--symbol`` naming the universe, e.g. ``A0+A1+A2+A3``, the name its registry entries
carry) is a portfolio checkpoint. The same preferences, runner config, journal, event log,
alerts and output folder rules apply; the runner is ``BasketRunner`` and the sim broker
``BasketSimBroker`` over the checkpoint's universe, from its test split's start to its end
(``--start``/``--end`` move them), filled as run_backtest.py's portfolio engine fills.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from evotrader.core.checkpoint import PORTFOLIO_KINDS, CheckpointError, load_checkpoint
from evotrader.core.trading import Instrument
from evotrader.lifecycle.choice import Choice
from evotrader.live import session
from evotrader.live.basket_runner import BasketRunner, basket_instruments
from evotrader.live.basket_sim import BasketSimBroker
from evotrader.live.broker import Broker
from evotrader.live.session import LiveOptions, SetupError
from evotrader.live.telemetry import RunSummary
from evotrader.risk import Preferences, RiskEngine
from evotrader.training.guards import PortfolioCheckpoint, PortfolioPolicy

log = logging.getLogger(__name__)


def is_basket(path: Path) -> bool:
    """Whether the checkpoint at ``path`` trades a universe (a missing or damaged file is
    the single-symbol loader's to report)."""
    try:
        return load_checkpoint(path).kind in PORTFOLIO_KINDS
    except CheckpointError:
        return False


def sim_broker(tradable: PortfolioCheckpoint, options: LiveOptions, prefs: Preferences) -> Broker:
    """The checkpoint's universe replayed from its test split's start (or ``--start``) to
    its end (or ``--end``), with its env's execution costs and cash."""
    if options.bars_source or options.bars_path:
        raise SetupError(
            "--bars-source and --bars-path name one symbol's bars; a basket replays its "
            f"checkpoint's universe ({tradable.universe.source})"
        )
    split = tradable.checkpoint.data_range
    start, end = options.start or split["test_start"], options.end or split["test_end"]
    try:
        universe = tradable.universe.load().between(None, end)
        return BasketSimBroker(
            universe.bars,
            start=start,
            execution=tradable.spec.execution,
            initial_cash=tradable.spec.initial_cash,
            hours=prefs.trading_hours,
            close_only=universe.close_only,
        )
    except ValueError as error:  # DataError too: bars too short, a start past the end
        raise SetupError(f"sim replay of {tradable.checkpoint.symbol}: {error}") from error


def build_broker(tradable: PortfolioCheckpoint, options: LiveOptions, prefs: Preferences) -> Broker:
    if options.broker == "sim":
        return sim_broker(tradable, options, prefs)
    if options.broker == "ibkr":
        from evotrader.live.ib.broker import ibkr_broker  # ib_async loads only when asked for

        return ibkr_broker(options, prefs)
    raise SetupError(f"--broker {options.broker}: a basket trades through sim or ibkr")


def run_basket(options: LiveOptions, choice: Choice) -> RunSummary:
    """The basket session: what ``session.run`` does for one symbol, for a universe."""
    assert choice.checkpoint is not None
    path = choice.checkpoint
    tradable = PortfolioCheckpoint.load(path)
    name, symbols = tradable.checkpoint.symbol, list(tradable.universe.symbols)
    if options.symbol and options.symbol != name:
        raise SetupError(f"--symbol {options.symbol}: checkpoint {path} trades the basket {name}")
    if options.trade_as:
        raise SetupError(f"--trade-as maps one symbol; checkpoint {path} trades the basket {name}")
    config = session.runner_config(options, name)
    human, prefs = session.preferences_for(options, config)
    broker = build_broker(tradable, options, prefs)
    out = session.output_dir(options, name)
    journal, events, alerts = session.open_bot_files(options, out)
    try:
        log.info(f"checkpoint: {path} ({tradable.checkpoint.kind}, basket {name}); out: {out}")
        if note := choice.note():
            log.info(note)
        if (seen := broker.resume(journal)) is not None:
            log.info(f"resuming the replay after {seen}, the last bar in {journal.path}")
        detail = {"path": str(path), "kind": tradable.checkpoint.kind, "symbol": name}
        events.emit("checkpoint", **detail, traded=name, **choice.record())
        with journal.transaction():
            journal.set_state("choice", choice.record())
        session.record_preferences(events, options, human, prefs)
        needed = tradable.pipeline.warmup + tradable.spec.window + 1
        instruments = basket_instruments(config, symbols)
        summary = session.run_bot(
            options,
            out,
            alerts,
            choice,
            name,
            lambda kill: BasketRunner(
                broker,
                basket_policy(tradable, broker, instruments, config.history_bars),
                instruments,
                RiskEngine(prefs),
                journal,
                config,
                needed_bars=needed,
                execution=tradable.spec.execution,
                close_only=isinstance(broker, BasketSimBroker) and broker.close_only,
                kill_switch=kill,
                events=events,
                real_money=options.live,
            ),
        )
    finally:
        session.close_bot(journal, events, broker)
    extra: dict[str, Any] = {"checkpoint": str(path), "symbols": symbols}
    session.finish_session(options, out, summary, extra | {"choice": choice.record()}, prefs)
    return summary


def basket_policy(
    tradable: PortfolioCheckpoint, broker: Broker, instruments: list[Instrument], bars: int
) -> PortfolioPolicy:
    """The policy exactly as run_backtest.py trades it: a ``portfolio_maml`` checkpoint
    first adapts on every symbol's ``bars`` just before the first live bar (the broker's
    history), never on live ones; others trade as saved."""
    broker.connect()
    history = {i.symbol: broker.history(broker.qualify(i), bars) for i in instruments}
    if empty := [symbol for symbol, frame in history.items() if frame.empty]:
        raise SetupError(f"broker: no history bars for {empty}; the basket needs every symbol's")
    first_live = max(frame.index[-1] for frame in history.values()) + pd.Timedelta(1, "ns")
    return tradable.policy(first_live, history)
