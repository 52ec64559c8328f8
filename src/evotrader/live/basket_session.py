"""A basket session: run_live_bot.py trading a universe, one account of several symbols.

``evotrader.live.session`` hands over here once the choice is a portfolio checkpoint
(``PORTFOLIO_KINDS``: ``--checkpoint``, ``--entry``, or ``--symbol`` naming the universe,
e.g. ``A0+A1+A2+A3``, the name its registry entries carry) or a multi-symbol registered
strategy (``--strategy ID``: cross-sectional, pairs, several one-leg books). Each is
described once as a ``Basket``; the same preferences, runner config, journal, event log,
alerts and output folder rules apply to both; the runner is ``BasketRunner`` and the sim
broker ``BasketSimBroker`` over the basket's symbols, from its test split's start to its
end (``--start``/``--end`` move them), filled as run_backtest.py's portfolio engine fills.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from evotrader.backtest.portfolio import WeightsPolicy
from evotrader.core.checkpoint import PORTFOLIO_KINDS, CheckpointError, load_checkpoint
from evotrader.core.trading import Instrument
from evotrader.env.execution import ExecutionModel
from evotrader.lifecycle.choice import Choice
from evotrader.live import session
from evotrader.live.basket_runner import BasketRunner, basket_instruments
from evotrader.live.basket_sim import BasketSimBroker
from evotrader.live.broker import Broker
from evotrader.live.journal import Journal
from evotrader.live.session import LiveOptions, SetupError
from evotrader.live.telemetry import RunSummary
from evotrader.risk import Preferences, RiskEngine
from evotrader.training.guards import PortfolioCheckpoint

if TYPE_CHECKING:  # loaded only when a strategy is traded: SQLAlchemy and the knowledge base
    from evotrader.live.strategy_policy import TradableStrategy

log = logging.getLogger(__name__)

Bars = Mapping[str, pd.DataFrame]


@dataclass(frozen=True)
class Basket:
    """What a basket session trades, whichever kind: its name and symbols, how the sim
    replays it (its bars up to an end, whether they are close-only, its test split, costs
    and cash), how its policy is built from every symbol's history before the first live
    bar, and what the event log, journal and summary record of it."""

    name: str
    symbols: list[str]
    where: str  # what it is, for errors: "checkpoint PATH", "strategy ID in REGISTRY"
    source: str  # where its bars come from
    load: Callable[[str | pd.Timestamp], tuple[Bars, bool]]  # bars up to an end, close-only
    test_start: str | pd.Timestamp
    test_end: str | pd.Timestamp
    execution: ExecutionModel
    cash: float
    needed_bars: int  # bars the runner must hold before the first decision
    history_bars: int | None  # history the policy reads first (None: the runner config's)
    # the policy from every symbol's history and the first bar its journal traded (None: fresh)
    make_policy: Callable[[dict[str, pd.DataFrame], pd.Timestamp | None], WeightsPolicy]
    event: str  # the event recording it: "checkpoint" or "strategy"
    detail: dict[str, Any]
    notes: tuple[str, ...]
    summary: dict[str, Any]  # what summary.json records of it


def is_basket(path: Path) -> bool:
    """Whether the checkpoint at ``path`` trades a universe (a missing or damaged file is
    the single-symbol loader's to report)."""
    try:
        return load_checkpoint(path).kind in PORTFOLIO_KINDS
    except CheckpointError:
        return False


def checkpoint_basket(path: Path) -> Basket:
    """A portfolio checkpoint as a basket: its universe, env costs and cash; a
    ``portfolio_maml`` one adapts on the broker's history before this session's first live
    bar."""
    tradable = PortfolioCheckpoint.load(path)
    kind, name = tradable.checkpoint.kind, tradable.checkpoint.symbol
    split = tradable.checkpoint.data_range

    def load(end: str | pd.Timestamp) -> tuple[Bars, bool]:
        universe = tradable.universe.load().between(None, end)
        return universe.bars, universe.close_only

    def make_policy(history: dict[str, pd.DataFrame], _: pd.Timestamp | None) -> WeightsPolicy:
        first_live = max(frame.index[-1] for frame in history.values()) + pd.Timedelta(1, "ns")
        return tradable.policy(first_live, history)

    return Basket(
        name=name,
        symbols=list(tradable.universe.symbols),
        where=f"checkpoint {path}",
        source=tradable.universe.source,
        load=load,
        test_start=split["test_start"],
        test_end=split["test_end"],
        execution=tradable.spec.execution,
        cash=tradable.spec.initial_cash,
        needed_bars=tradable.pipeline.warmup + tradable.spec.window + 1,
        history_bars=None,
        make_policy=make_policy,
        event="checkpoint",
        detail={"path": str(path), "kind": kind, "symbol": name, "traded": name},
        notes=(f"checkpoint: {path} ({kind}, basket {name})",),
        summary={"checkpoint": str(path)},
    )


def strategy_basket(strategy: TradableStrategy) -> Basket:
    """A multi-symbol registered strategy as a basket: its universe from its search's
    source, the search's test split, costs and cash; it decides the weights of its one-account
    backtest (``BasketStrategyPolicy``), reading every symbol's bars from the start of the
    data (``STRATEGY_HISTORY_BARS`` at most)."""
    from evotrader.live.strategy_policy import STRATEGY_HISTORY_BARS

    return Basket(
        name=strategy.symbol,
        symbols=strategy.symbols,
        where=strategy.where,
        source=strategy.spec.universe.source,
        load=lambda end: (strategy.basket_bars(end), False),
        test_start=strategy.windows.test_start,
        test_end=strategy.windows.test_end,
        execution=strategy.execution,
        cash=strategy.cash,
        needed_bars=2,
        history_bars=STRATEGY_HISTORY_BARS,
        make_policy=strategy.basket_policy,
        event="strategy",
        detail=strategy.describe(),
        notes=strategy.notes(),
        summary={"strategy": strategy.spec_id},
    )


def sim_broker(basket: Basket, options: LiveOptions, prefs: Preferences) -> Broker:
    """The basket's symbols replayed from its test split's start (or ``--start``) to its end
    (or ``--end``), with its costs and cash."""
    if options.bars_source or options.bars_path:
        raise SetupError(
            "--bars-source and --bars-path name one symbol's bars; a basket replays its "
            f"own universe ({basket.source})"
        )
    start, end = options.start or basket.test_start, options.end or basket.test_end
    try:
        bars, close_only = basket.load(end)
        return BasketSimBroker(
            bars,
            start=start,
            execution=basket.execution,
            initial_cash=basket.cash,
            hours=prefs.trading_hours,
            close_only=close_only,
        )
    except ValueError as error:  # DataError too: bars too short, a start past the end
        raise SetupError(f"sim replay of {basket.name}: {error}") from error


def build_broker(basket: Basket, options: LiveOptions, prefs: Preferences) -> Broker:
    if options.broker == "sim":
        return sim_broker(basket, options, prefs)
    if options.broker == "ibkr":
        from evotrader.live.ib.broker import ibkr_broker  # ib_async loads only when asked for

        return ibkr_broker(options, prefs)
    raise SetupError(f"--broker {options.broker}: a basket trades through sim or ibkr")


def run_basket(options: LiveOptions, choice: Choice, basket: Basket) -> RunSummary:
    """The basket session: what ``session.run`` does for one symbol, for a universe."""
    name, symbols = basket.name, basket.symbols
    if options.symbol and options.symbol != name:
        raise SetupError(f"--symbol {options.symbol}: {basket.where} trades the basket {name}")
    if options.trade_as:
        raise SetupError(f"--trade-as maps one symbol; {basket.where} trades the basket {name}")
    config = session.runner_config(options, name)
    human, prefs = session.preferences_for(options, config)
    broker = build_broker(basket, options, prefs)
    out = session.output_dir(options, name)
    journal, events, alerts = session.open_bot_files(options, out)
    try:
        first, *notes = basket.notes
        log.info(f"{first}; out: {out}")
        for note in [*notes, *filter(None, [choice.note()])]:
            log.info(note)
        if (seen := broker.resume(journal)) is not None:
            log.info(f"resuming the replay after {seen}, the last bar in {journal.path}")
        events.emit(basket.event, **basket.detail, **choice.record())
        with journal.transaction():
            journal.set_state("choice", choice.record())
            if basket.event == "strategy":
                journal.set_state("strategy", basket.detail)
        session.record_preferences(events, options, human, prefs)
        instruments = basket_instruments(config, symbols)
        history = basket.history_bars or config.history_bars
        first_bar = first_traded_bar(journal)
        summary = session.run_bot(
            options,
            out,
            alerts,
            choice,
            name,
            lambda kill: BasketRunner(
                broker,
                basket.make_policy(basket_history(broker, instruments, history), first_bar),
                instruments,
                RiskEngine(prefs),
                journal,
                config,
                needed_bars=basket.needed_bars,
                execution=basket.execution,
                close_only=isinstance(broker, BasketSimBroker) and broker.close_only,
                kill_switch=kill,
                events=events,
                real_money=options.live,
            ),
        )
    finally:
        session.close_bot(journal, events, broker)
    extra = basket.summary | {"symbols": symbols, "choice": choice.record()}
    session.finish_session(options, out, summary, extra, prefs)
    return summary


def first_traded_bar(journal: Journal) -> pd.Timestamp | None:
    """The first bar the bot behind ``journal`` decided on (None for a fresh journal): a
    restarted strategy resolves its books on the bars before it, as it did when it began."""
    decisions = journal.decisions()
    return pd.Timestamp(decisions[0]["bar"]) if decisions else None


def basket_history(
    broker: Broker, instruments: list[Instrument], bars: int
) -> dict[str, pd.DataFrame]:
    """Every symbol's last ``bars`` bars before the first live bar, from the broker: the
    history a policy adapts on or decides from, never a live bar."""
    broker.connect()
    history = {i.symbol: broker.history(broker.qualify(i), bars) for i in instruments}
    if empty := [symbol for symbol, frame in history.items() if frame.empty]:
        raise SetupError(f"broker: no history bars for {empty}; the basket needs every symbol's")
    return history
