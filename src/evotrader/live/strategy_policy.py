"""A registered strategy traded by the live bot: its spec, decided bar by bar.

``run_live_bot.py --strategy ID`` trades a ``StrategySpec`` from a strategy search's
registry through the same runner, risk engine, journal and brokers as a checkpoint. Its
decision at each closed bar is the one ``run_backtest.py --strategy ID`` trades: the same
``spec_targets`` (template signal, sizing, shorting rule, exits) with the registered
parameters, run on the bars up to and including that bar only, so a later bar can never
change an earlier decision. The policy keeps its own history from the start of the data
(``STRATEGY_HISTORY_BARS`` at most), because path-dependent rules (hysteresis, exits)
depend on where their history starts; the sim replays the search's test split with the
search's costs and cash, so the bot's fills and equity equal the backtest's.

A multi-symbol spec (cross-sectional, pairs, several one-leg books) trades as a basket
(``evotrader.live.basket_session``): ``BasketStrategyPolicy`` decides the weights
``run_backtest.py --strategy`` trades it to as one account in the portfolio engine
(``portfolio_bridge``: each leg's target over the number of legs, held while unchanged),
from every symbol's bars up to that close, its books resolved once on the bars before the
first traded bar (the journal's first decision after a restart), as the backtest resolves
them on the bars before its test split; like every decision, on ``STRATEGY_HISTORY_BARS`` at
most.

Which strategies it trades: one that passed validation (``--allow-unvalidated`` lets the
bot trade one that was only screened, never with real money); real money only a
live-ready one (it passed the audit too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evotrader.backtest.portfolio import History
from evotrader.env.execution import ExecutionModel
from evotrader.env.spec import EnvSpec
from evotrader.live.broker_sync import PolicyError
from evotrader.live.session import SetupError
from evotrader.live.window import COLUMNS
from evotrader.strategies.backtest_bridge import run_engine
from evotrader.strategies.portfolio_bridge import changed_only, latest_weights
from evotrader.strategies.registry import RegistryError, read_registered
from evotrader.strategies.signals import spec_targets
from evotrader.strategies.spec import StrategySpec
from evotrader.strategies.universe import Book, resolve_books
from evotrader.training.strategy_stage import Windows, find_registry, load_symbol, universe_bars

log = logging.getLogger(__name__)

STRATEGY_HISTORY_BARS = 5000  # about 20 years of daily bars: the history a decision reads
MULTI_LEG = "a multi-symbol strategy trades as a basket, not bar by bar on one symbol"
QUARTERS = 4  # template targets are multiples of 1/4 in [-1, 1] (templates/_indicators.py)


def extended(known: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """``known`` bars followed by those of ``bars`` after its last one (the bar just
    closed, or a back-fill after a reconnect), as float OHLCV."""
    if len(known):
        bars = bars.loc[bars.index > known.index[-1]]
    return pd.concat([known, bars[COLUMNS].astype("float64")]) if len(bars) else known


def positions_of(spec: StrategySpec) -> tuple[float, ...]:
    """Every target the spec can decide: quarter steps of its position size, shorts too
    when it may short (``spec_targets`` computes each the same way, so they match exactly)."""
    low = -QUARTERS if spec.risk.allow_short else 0
    return tuple(step / QUARTERS * spec.risk.position_size for step in range(low, QUARTERS + 1))


class StrategyPolicy:
    """A single-instrument spec deciding at each closed bar from the bars up to it.

    ``history`` seeds the bars the decisions read; each ``decide`` adds the runner's newer
    bars (the bar just closed, or a back-fill after a reconnect) and returns the index of
    ``spec_targets``'s target at the newest bar in ``positions``.
    """

    def __init__(
        self,
        spec: StrategySpec,
        parameters: dict[str, int | float],
        history: pd.DataFrame,
    ) -> None:
        if spec.info.legs != 1 or len(spec.universe.symbols) != 1:
            raise SetupError(f"strategy {spec.spec_id}: {MULTI_LEG}")
        self.spec, self.parameters = spec, dict(parameters)
        self.positions = positions_of(spec)
        self.bars = history[COLUMNS].astype("float64")

    def decide(self, bars: pd.DataFrame) -> int:
        self.bars = extended(self.bars, bars)
        target = self.target(self.bars)
        try:
            return self.positions.index(target)
        except ValueError:
            raise PolicyError(
                f"strategy {self.spec.spec_id} decided {target!r}, not one of {self.positions}"
            ) from None

    def target(self, bars: pd.DataFrame) -> float:
        """The spec's target at the last of ``bars``, from those bars only."""
        return float(spec_targets(self.spec, (bars,), self.parameters)[-1, 0])


class BasketStrategyPolicy:
    """A multi-symbol spec's weights policy for the basket bot: at each close, the weights
    of its ``books`` (``latest_weights``, from every symbol's bars up to that close since
    the start of ``history``), traded where they changed and held (None) where not, as
    ``portfolio_bridge.weights_policy`` trades the backtest's."""

    def __init__(
        self,
        spec: StrategySpec,
        parameters: dict[str, int | float],
        history: dict[str, pd.DataFrame],
        books: list[Book],
    ) -> None:
        self.spec, self.parameters, self.books = spec, dict(parameters), books
        self.bars = {s: history[s][COLUMNS].astype("float64") for s in spec.universe.symbols}
        self._decide = changed_only(self.weights)

    def __call__(self, history: History) -> np.ndarray | None:
        if history.bars is None:
            raise PolicyError(f"strategy {self.spec.spec_id}: its templates need OHLCV bars")
        for symbol, known in self.bars.items():
            self.bars[symbol] = extended(known, history.bars[symbol])
        return self._decide(history)

    def weights(self, history: History) -> np.ndarray:
        """The spec's weights at ``history``'s close, in the universe's order."""
        behind = {s: f.index[-1] for s, f in self.bars.items() if f.index[-1] != history.timestamp}
        if behind:
            raise PolicyError(
                f"strategy {self.spec.spec_id}: deciding at {history.timestamp}, but the last "
                f"bars of {behind} differ"
            )
        return latest_weights(self.spec, self.bars, self.books, self.parameters)


@dataclass(frozen=True)
class StrategyBacktest:
    """A strategy's backtest as the paper monitor reads a checkpoint's ``BacktestResult``:
    equity and buy-and-hold marked at each close, and its fills (price, units, cost by fill
    day; empty: the strategy engine reports costs per run, not per fill)."""

    equity: pd.Series
    benchmark_equity: pd.Series
    fills: pd.DataFrame


@dataclass(frozen=True)
class TradableStrategy:
    """A registered spec with what trading it needs: the parameters its verdict settled
    on, and its search's windows, data, costs and cash (as ``backtest_registered`` reads
    them)."""

    spec: StrategySpec
    parameters: dict[str, int | float]
    registry: Path
    windows: Windows
    data: dict[str, Any]
    execution: ExecutionModel
    cash: float
    validated: bool
    live_ready: bool

    @property
    def spec_id(self) -> str:
        return self.spec.spec_id

    @property
    def symbols(self) -> list[str]:
        return list(self.spec.universe.symbols)

    @property
    def is_basket(self) -> bool:
        """Whether it trades several symbols: the basket bot trades it."""
        return len(self.symbols) > 1

    @property
    def symbol(self) -> str:
        """The symbol it trades; a basket's name (``A+B+C``) when it trades several."""
        return "+".join(self.symbols)

    @property
    def where(self) -> str:
        return f"strategy {self.spec_id} in {self.registry}"

    @property
    def env(self) -> EnvSpec:
        """What the runner needs of an env: the spec's targets, the search's costs and cash."""
        return EnvSpec(
            window=1,
            positions=positions_of(self.spec),
            initial_cash=self.cash,
            agent_state=False,
            execution=self.execution,
        )

    @classmethod
    def load(
        cls,
        spec_id: str,
        registry: Path | None,
        runs_dir: Path,
        *,
        allow_unvalidated: bool = False,
        real_money: bool = False,
    ) -> TradableStrategy:
        """The strategy ``spec_id`` from ``registry`` (default: the newest registry under
        ``runs_dir`` holding it); one ``SetupError`` for anything that makes it untradable."""
        try:
            path = registry or find_registry(runs_dir, spec_id)
        except FileNotFoundError as error:
            raise SetupError(f"{error}; pass --registry PATH") from error
        if not path.is_file():
            raise SetupError(f"--registry {path}: no such file")
        try:
            found = read_registered(path, spec_id)
        except RegistryError as error:
            raise SetupError(str(error)) from error  # it names the registry
        spec, validation, meta = found.spec, found.validation, found.meta
        verdict, live_ready = validation or found.screen, found.live_ready
        validated = validation is not None and validation.passed
        if real_money and not live_ready:
            raise SetupError(
                f"strategy {spec_id} is not live-ready (it has not passed the audit); "
                "real money trades only live-ready strategies"
            )
        if not validated and not allow_unvalidated:
            raise SetupError(
                f"strategy {spec_id} did not pass validation; the bot trades validated "
                "strategies only (--allow-unvalidated trades it anyway, never with --live)"
            )
        if verdict is None:
            raise SetupError(f"strategy {spec_id} was never screened: it has no parameters")
        return cls(
            spec=spec,
            parameters=dict(verdict.parameters),
            registry=path,
            windows=Windows.from_dict(meta["windows"]),
            data=dict(meta["data"]),
            execution=ExecutionModel(**meta["execution"]),
            cash=float(meta["cash"]),
            validated=validated,
            live_ready=live_ready,
        )

    def bars(self, end: str | pd.Timestamp | None = None) -> pd.DataFrame:
        """The symbol's bars from its search's source, up to ``end`` (default: all, the
        days after the test split too, where a paper period is judged), exactly as
        ``backtest_registered`` loads them. A basket's are ``basket_bars``."""
        if self.is_basket:
            raise SetupError(f"{self.where} trades the basket {self.symbol}, not one symbol")
        stop = pd.Timestamp(end) if end is not None else pd.Timestamp.max
        return load_symbol(self.data, self.spec.universe.source, self.symbol, stop)

    def basket_bars(self, end: str | pd.Timestamp) -> dict[str, pd.DataFrame]:
        """Every universe symbol's bars up to ``end``, as ``registered_test`` loads them."""
        return universe_bars(self.data, self.spec, pd.Timestamp(end))

    def backtest(
        self, bars: pd.DataFrame | None = None, period: pd.DataFrame | None = None
    ) -> StrategyBacktest:
        """The strategy traded over ``period`` (default: its search's test split) on
        ``bars`` (default: its own), earlier bars serving as history, with the search's
        costs and cash, as ``run_backtest.py --strategy`` and the sim bot trade it."""
        bars = self.bars() if bars is None else bars
        start, end = (
            (self.windows.test_start, self.windows.test_end)
            if period is None
            else (period.index[0], period.index[-1])
        )
        run = run_engine(
            self.spec,
            {self.symbol: bars.loc[:end]},
            parameters=self.parameters,
            start=start,
            execution=self.execution,
            cash=self.cash,
        )
        return StrategyBacktest(run.equity, run.benchmark_equity, pd.DataFrame())

    def policy(self, history: pd.DataFrame) -> StrategyPolicy:
        """The policy deciding after ``history``; a universe filter that rejects the symbol
        on that history (as the backtest resolves it before its first bar) is refused."""
        if not resolve_books(self.spec, {self.symbol: history}):
            raise SetupError(
                f"{self.where}: its universe filters reject {self.symbol} on the bars "
                f"before {history.index[-1]}: nothing to trade"
            )
        return StrategyPolicy(self.spec, self.parameters, history)

    def basket_policy(
        self, history: dict[str, pd.DataFrame], first_bar: pd.Timestamp | None = None
    ) -> BasketStrategyPolicy:
        """The weights policy deciding after every symbol's ``history``. Its books are
        resolved on the bars before ``first_bar``, the first bar the bot traded (default:
        all of ``history``, which ends before its first live bar), as the backtest resolves
        them on the bars before its first decision; a universe that leaves none is refused."""
        before = history
        if first_bar is not None:
            before = {s: f.loc[f.index < first_bar] for s, f in history.items()}
        books = resolve_books(self.spec, before)
        if not books:
            raise SetupError(
                f"{self.where}: its universe resolves to no book on the bars before "
                f"{first_bar or 'the first live bar'}: nothing to trade"
            )
        return BasketStrategyPolicy(self.spec, self.parameters, history, books)

    def notes(self) -> tuple[str, ...]:
        """What the session logs of it when it starts."""
        template, where = self.spec.template, self.registry
        notes = [f"strategy: {self.spec_id} ({template} on {self.symbol}) in {where}"]
        if not self.validated:
            notes.append(
                f"note: strategy {self.spec_id} did not pass validation (--allow-unvalidated)"
            )
        return tuple(notes)

    def describe(self) -> dict[str, Any]:
        """What the journal and the event log record of the strategy traded."""
        return {
            "strategy": self.spec_id,
            "template": self.spec.template,
            "symbol": self.symbol,
            "parameters": self.parameters,
            "registry": str(self.registry),
            "validated": self.validated,
            "live_ready": self.live_ready,
        }
