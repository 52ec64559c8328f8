"""The live runner: one policy, one instrument, one broker, decided on each closed bar.

Observations come from the checkpoint's own feature pipeline through ``MarketData``, the
code path training and the backtest use, and carry the agent's own position and
unrealised return exactly as MarketEnv builds them. A target change becomes one order:
checked by the risk engine, journaled as PENDING, sent with a client reference derived
from the journal's session, the bar and its purpose, then journaled again with the
broker's answer. Breakers and the kill switch flatten and stop; a restart reconciles the
journal with the broker before it trades (the rules: ``evotrader.live.reconcile``), so
nothing is forgotten or sent twice. A lost connection is retried with the one backoff
policy of ``evotrader.live.retry``; what happens is reported through ``telemetry.Reporter``.
A ``BarPolicy`` (a rule-based strategy) decides from the bars themselves instead, and needs
no feature pipeline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from evotrader.core.policy import Policy
from evotrader.core.trading import (
    Account,
    Bar,
    Instrument,
    OrderRequest,
    OrderStatus,
    Side,
)
from evotrader.data.features import FeaturePipeline
from evotrader.env.market_data import MarketData, fill_agent_state
from evotrader.env.spec import EnvSpec
from evotrader.live import reconcile, retry
from evotrader.live.broker import Broker, BrokerDisconnected, BrokerError, FeedEnded
from evotrader.live.broker_sync import BrokerSync, PolicyError, client_ref
from evotrader.live.journal import Journal
from evotrader.live.telemetry import EventLog, Expectation, Reporter, RunSummary
from evotrader.live.window import BarWindow
from evotrader.risk.kill_switch import KillSwitch
from evotrader.risk.risk_engine import DUST, Book, RiskEngine

log = logging.getLogger(__name__)


INSTRUMENT_KEYS = ("asset_class", "exchange", "currency")


@runtime_checkable
class BarPolicy(Protocol):
    """Decides from the bars themselves, not from feature windows (a rule-based strategy):
    the bars the runner holds, newest last, to an index into the env's positions."""

    def decide(self, bars: pd.DataFrame) -> int: ...


@dataclass(frozen=True)
class RunnerConfig:
    """How the runner trades; limits live in the preferences and can only be tightened."""

    instrument: Instrument
    history_bars: int = 512  # bars kept for features; at least warm-up + window + 1
    poll_seconds: float = 5.0  # how long one wait for the next bar lasts
    lot_size: float = 0.0  # 0 trades fractional units (sim); 1 whole shares
    flatten_at_close: bool = False  # end-of-day flatten
    close_window_minutes: float = 15.0  # bars ending this close to the session end go flat
    max_divergence_pct: float = 5.0  # live equity vs the backtest's expectation
    heartbeat_seconds: float = 60.0
    reconnect_attempts: int = 8  # the one reconnect policy (evotrader.live.retry)
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    flatten_polls: int = 20  # waits for the flattening fills before giving up
    max_bars: int | None = None  # stop after this many live bars (replays, smoke tests)
    clear_halt: bool = False  # a human resumes after a breaker tripped
    risk_overrides: Mapping[str, Any] = field(default_factory=dict)  # tighten only

    def __post_init__(self) -> None:
        for name in ("poll_seconds", "heartbeat_seconds", "backoff_seconds", "max_divergence_pct"):
            if not getattr(self, name) > 0:
                raise ValueError(f"runner {name} must be > 0, got {getattr(self, name)}")
        if self.backoff_max_seconds < self.backoff_seconds:
            raise ValueError("runner backoff_max_seconds must be >= backoff_seconds")
        for name in ("history_bars", "reconnect_attempts", "flatten_polls"):
            if getattr(self, name) < 1:
                raise ValueError(f"runner {name} must be >= 1, got {getattr(self, name)}")
        if self.lot_size < 0 or self.close_window_minutes < 0:
            raise ValueError("runner lot_size and close_window_minutes must be >= 0")
        if self.max_bars is not None and self.max_bars < 1:
            raise ValueError(f"runner max_bars must be >= 1, got {self.max_bars}")

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    @property
    def backoff(self) -> retry.Backoff:
        return retry.Backoff(
            self.reconnect_attempts, self.backoff_seconds, self.backoff_max_seconds
        )

    @classmethod
    def from_mapping(
        cls, symbol: str, settings: Mapping[str, Any], where: str = "runner settings"
    ) -> RunnerConfig:
        """Build from YAML-style settings (the instrument's own keys among them); an unknown
        key is an error naming it."""
        known = {f.name for f in fields(cls)} - {"instrument"} | set(INSTRUMENT_KEYS)
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
        own = {k: v for k, v in settings.items() if k in INSTRUMENT_KEYS}
        rest = {k: v for k, v in settings.items() if k not in INSTRUMENT_KEYS}
        return cls(Instrument(symbol, **own), **rest)

    def to_dict(self) -> dict[str, Any]:
        """The settings as YAML names them, for the journal's run record."""
        settings = asdict(self)
        instrument = settings.pop("instrument")
        instrument.pop("broker_id")
        return dict(instrument) | settings


class LiveRunner(BrokerSync):
    """Trades ``policy`` through ``broker`` under ``risk``, remembering in ``journal``."""

    def __init__(
        self,
        broker: Broker,
        policy: Policy | BarPolicy,
        pipeline: FeaturePipeline | None,
        env: EnvSpec,
        risk: RiskEngine,
        journal: Journal,
        config: RunnerConfig,
        *,
        kill_switch: KillSwitch | None = None,
        events: EventLog | None = None,
        console: Callable[[str], None] | None = None,
        real_money: bool = False,
    ) -> None:
        self.broker, self.policy, self.pipeline, self.env = broker, policy, pipeline, env
        self.risk, self.journal, self.config = risk, journal, config
        self.kill_switch = kill_switch or KillSwitch()
        self.events = events or EventLog(None)
        self.console = console or log.info  # the bot's progress lines, as logging
        self.real_money = real_money  # only the CLI's --live plus its confirmation sets it
        self.execution = env.execution
        self.positions = env.positions
        if pipeline is None and not isinstance(policy, BarPolicy):
            raise ValueError("a policy that acts on observations needs a feature pipeline")
        if config.history_bars < self._needed:
            raise ValueError(
                f"runner history_bars {config.history_bars} < {self._needed} needed for "
                f"feature warm-up {pipeline.warmup if pipeline else 0} and window {env.window}"
            )
        self.instrument = config.instrument
        self.summary = RunSummary()
        self.report = Reporter(journal, self.events, self.console, risk, self.summary, broker.now)
        self.window = BarWindow(config.symbol, config.history_bars)
        self._target = 0.0
        self._entry_equity = math.nan
        self._expectation: Expectation | None = None
        self._account: Account | None = None
        self._units = 0.0
        self._live_bars = 0
        self._fill_ids = journal.fill_ids()  # the broker re-reports old fills: skip them fast

    # -- the loop ----------------------------------------------------------------------

    def start(self) -> None:
        """Connect, warm the window up, restore the saved target, reconcile, subscribe."""
        self._open_run(self.config.symbol, {"symbol": self.config.symbol})
        self.instrument = self.broker.qualify(self.config.instrument)
        self.window.extend(self.broker.history(self.instrument, self.config.history_bars))
        if len(self.window) < self._needed:
            raise BrokerError(
                f"{self.broker.name}: only {len(self.window)} bars of history for "
                f"{self.config.symbol}, the features need {self._needed}"
            )
        self._restore_bot_state()
        self._reconcile()
        self._check_target()
        self.broker.subscribe(self.instrument)
        self.events.emit("ready", last_bar=self.window.latest, target=self._target)

    def _idle(self) -> None:
        now = self.broker.now()
        if self.window.last_bar is not None:
            trip = self.risk.check_feed(now, self.window.last_bar.end)
            if trip:
                self.report.tripped(trip)
        self._heartbeat(now)

    def _on_bar(self, bar: Bar) -> None:
        problem = self.window.problem(bar)
        if problem:
            self.report.error("bad_bar", f"{bar.symbol} {bar.timestamp}: {problem}")
            return
        self.window.append(bar)
        self._sync()
        assert self._expectation is not None
        self._expectation.on_bar(bar)
        now, equity = self.broker.now(), self._equity()
        expected = self._expectation.equity(bar.close)
        divergence = self._expectation.divergence_pct(equity, bar.close)
        decision = None
        if self._marked(bar.timestamp, now, equity, expected, divergence):
            decision = self._decide(bar, now, equity)
        self._status(bar, equity, expected)
        with self.journal.transaction():  # the bar's bookkeeping in one commit
            if decision is not None:
                self.journal.record_decision(bar.timestamp, now, *decision)
            self._heartbeat(now)
            self._save_state()
        self._stop_at_max_bars()

    # -- deciding and ordering ---------------------------------------------------------

    def _decide(
        self, bar: Bar, now: pd.Timestamp, equity: float
    ) -> tuple[int, float, float, float, dict[str, Any]]:
        """Ask the policy, order any target change; returns the decision to journal."""
        if isinstance(self.policy, BarPolicy):
            action = self.policy.decide(self.window.frame)
            impact = float(self.execution.prices(self.window.frame).impact[-1])
        else:
            assert self.pipeline is not None  # __init__ refuses an observation policy without
            market = MarketData.build(
                self.window.frame,
                self.pipeline,
                self.env.window,
                self.execution,
                self.env.agent_state,
            )
            observation = self._observation(market, equity)
            actions = np.asarray(self.policy.act(observation[None])).reshape(-1)
            if len(actions) != 1 or not np.issubdtype(actions.dtype, np.integer):
                raise PolicyError(f"policy returned {actions!r} for one observation")
            action, impact = int(actions[0]), float(market.prices.impact[-1])
        if not 0 <= action < len(self.positions):
            raise PolicyError(f"policy action {action} outside [0, {len(self.positions)})")
        target, why = self.positions[action], "policy"
        if self.config.flatten_at_close and self._near_close(bar):
            target, why = 0.0, "end-of-day flatten"
        self.summary.decisions += 1
        detail = {"why": why, "previous_target": self._target}
        if target != self._target:
            detail["order"] = self._change_target(bar, now, target, impact)
        return action, target, bar.close, equity, detail

    @property
    def _needed(self) -> int:
        """Bars of history the first decision reads: the feature warm-up and one window
        (a bar policy keeps its own, longer history: two bars do here)."""
        if self.pipeline is None:
            return 2
        return self.pipeline.warmup + self.env.window + 1

    def _observation(self, market: MarketData, equity: float) -> np.ndarray:
        """The window ending at the newest bar, with position and unrealised return
        filled in as MarketEnv does."""
        observation: np.ndarray = market.windows()[-1].copy()
        if market.agent_state:
            unrealised = equity / self._entry_equity - 1.0 if self._target else 0.0
            fill_agent_state(observation, self._target, unrealised)
        return observation

    def _change_target(self, bar: Bar, now: pd.Timestamp, target: float, impact: float) -> str:
        """Cancel what is still working, then order the difference to ``target``.

        The new target and the backtest's expectation are saved before the order leaves,
        so a crash in between restarts with the intent known (reconcile re-sends or drops
        the order, ``_check_target`` realigns the target with the broker's position).
        """
        self._cancel_open_orders()
        equity = self._equity()
        wanted = target * equity / bar.close
        if self.config.lot_size:
            wanted = math.trunc(wanted / self.config.lot_size) * self.config.lot_size
        delta = wanted - self._units
        if abs(delta) * bar.close <= DUST * equity:
            self._set_target(target, equity)
            return "none needed"
        request = OrderRequest(
            client_ref=self._client_ref(bar.timestamp, "target"),
            instrument=self.instrument,
            side=Side.BUY if delta > 0 else Side.SELL,
            quantity=abs(delta),
            target_weight=target,
        )
        if not self._approved(request, now, bar.end):
            return "refused by risk"
        assert self._expectation is not None
        self._expectation.decide(target, bar.close, impact)
        previous = self._target
        self._set_target(target, equity)
        with self.journal.transaction():  # the intent and the order, committed before sending
            self._write_state()
            self.journal.record_order(request, bar.timestamp, now)
        state = self._place(request)
        if state.status is OrderStatus.REJECTED:
            self._target = previous
            return "rejected by the broker"
        return request.client_ref

    def _approved(
        self, request: OrderRequest, now: pd.Timestamp, bar_end: pd.Timestamp | None = None
    ) -> bool:
        """The risk engine's verdict; ``bar_end`` is the close the order was decided on."""
        symbol = self.instrument.symbol
        price = self.window.close
        book = Book(self._equity(), {symbol: self._units}, {symbol: price})
        verdict = self.risk.check_order(request, book, now, bar_end)
        if not verdict.approved:
            self.summary.rejected += 1
            self.report.risk_event(
                "order_refused", {"client_ref": request.client_ref, "reason": verdict.reason}
            )
            self.console(f"  risk refused {request.side} {request.quantity:g}: {verdict.reason}")
        return verdict.approved

    def _set_target(self, target: float, equity: float) -> None:
        self._target = target
        self._entry_equity = equity

    def _client_ref(self, bar: pd.Timestamp, purpose: str) -> str:
        return client_ref(self.journal.session_id, self.instrument.symbol, bar, purpose)

    def _near_close(self, bar: Bar) -> bool:
        hours = self.risk.preferences.trading_hours
        session_end = hours.session_end(bar.end.tz_convert(hours.timezone))
        return bool(bar.end >= session_end - pd.Timedelta(minutes=self.config.close_window_minutes))

    # -- broker state ------------------------------------------------------------------

    def _sync(self) -> None:
        """Pull order states, fills, positions and the account into the journal."""
        with self.journal.transaction():  # facts the broker already holds: one commit
            self._pull()

    def _pull(self) -> None:
        fills, positions = self._pull_broker()
        self._units = reconcile.quantities(positions).get(self.instrument.symbol, 0.0)
        mine = [fill for fill in fills if fill.symbol == self.instrument.symbol]
        if mine:  # MarketEnv's entry equity: account at the fill price
            assert self._account is not None
            self._entry_equity = self._account.cash + self._units * mine[-1].price

    @property
    def _latest(self) -> pd.Timestamp:
        return self.window.latest

    def _restore_bot_state(self) -> None:
        """The saved target, entry equity and expectation; a fresh journal starts from the
        broker's account (an existing position becomes the expectation's too)."""
        saved = self.journal.get_state("bot")
        if saved:
            self._target = float(saved["target"])
            self._entry_equity = float(saved["entry_equity"])
            self._expectation = Expectation.from_dict(self.execution, saved["expectation"])
            return
        positions = self.broker.positions()
        units = reconcile.quantities(positions).get(self.instrument.symbol, 0.0)
        price, equity = self.window.close, self._equity()
        self._entry_equity = equity
        self._expectation = Expectation(self.execution, equity - units * price, units)

    def _check_target(self) -> None:
        """With nothing working at the broker, the target must match the position held;
        otherwise (a manual trade, an order lost in a crash) adopt the position's."""
        if self.broker.open_orders():
            return
        equity, price = self._equity(), self.window.close
        adopted = reconcile.adopted_target(self._units, price, equity, self.positions, self._target)
        if adopted is not None:
            self.report.risk_event("target_adopted", adopted)
            self._set_target(adopted["now"], equity)

    def _save_state(self) -> None:
        with self.journal.transaction():
            self._write_state()

    def _write_state(self) -> None:
        self.journal.set_state("risk", self.risk.state.to_dict())
        if self._expectation is not None:
            self.journal.set_state(
                "bot",
                {
                    "target": self._target,
                    "entry_equity": self._entry_equity,
                    "expectation": self._expectation.to_dict(),
                    "last_bar": self.window.latest.isoformat() if len(self.window) else None,
                },
            )

    # -- halts, reconnects, health -----------------------------------------------------

    def _flatten_and_stop(self) -> None:
        """Cancel working orders, close the position, wait for the fills, stop."""
        halt = self.risk.halt
        assert halt is not None
        self.summary.halt = halt
        try:
            self._sync()
            self._cancel_open_orders()
            for attempt in range(self.config.flatten_polls):
                self._sync()
                if not self._units:
                    break
                if not self.broker.open_orders():
                    self._send_flatten(attempt)
                    self._sync()
                    if not self._units:
                        break
                self._await_bar()
                if self.summary.stopped:
                    return
        except FeedEnded:
            self._sync()
        except BrokerError as error:
            self.report.error("flatten", str(error))
        flat = not self._units
        self.report.risk_event(
            "flattened" if flat else "flatten_incomplete", {"units": self._units}
        )
        self.summary.stopped = f"halted by {halt.kind}: {halt.reason}" + (
            "" if flat else f"; STILL HOLDING {self._units:g} {self.instrument.symbol}"
        )
        self.console(f"[{self.broker.name}] {self.summary.stopped}")

    def _await_bar(self) -> None:
        """While flattening: let time pass (fills come with the next bar in a replay)."""
        try:
            bar = self.broker.next_bar(self.config.poll_seconds)
        except BrokerDisconnected as error:
            self._reconnect(error)
            return
        if bar is not None and self.window.problem(bar) is None:
            self.window.append(bar)
            assert self._expectation is not None
            self._expectation.on_bar(bar)

    def _send_flatten(self, attempt: int) -> None:
        bar = self.window.latest
        request = OrderRequest(
            client_ref=self._client_ref(bar, f"flat{attempt}"),
            instrument=self.instrument,
            side=Side.SELL if self._units > 0 else Side.BUY,
            quantity=abs(self._units),
            target_weight=0.0,
        )
        now = self.broker.now()
        if self.journal.order(request.client_ref) is None and self._approved(request, now):
            self.journal.record_order(request, bar, now)
            self._place(request)
        self._target = 0.0

    def _reconnect(self, error: BrokerDisconnected) -> None:
        if not self._reconnected(error):
            return
        missed = self.window.extend(self.broker.history(self.instrument, self.config.history_bars))
        self.broker.subscribe(self.instrument)
        self.journal.record_health(self.broker.now(), "reconnected", {"backfilled": missed})
        self.events.emit("reconnected", backfilled=missed)

    def _heartbeat(self, now: pd.Timestamp) -> None:
        detail = {
            "connected": self.broker.is_connected(),
            "last_bar": self.window.last_bar.end.isoformat() if self.window.last_bar else None,
            "equity": self._account.equity if self._account else None,
            "units": self._units,
            "target": self._target,
        }
        self.report.heartbeat(now, self.config.heartbeat_seconds, detail)

    def _status(self, bar: Bar, equity: float, expected: float) -> None:
        halt = self.risk.halt
        self.console(
            f"[{self.broker.name}] {bar.timestamp} {self.instrument.symbol} close "
            f"{bar.close:,.2f} | target {self._target:+.2f} pos {self._units:,.2f} | "
            f"equity {equity:,.2f} expected {expected:,.2f} | "
            f"{'risk ok' if halt is None else f'HALTED ({halt.kind})'}"
        )
