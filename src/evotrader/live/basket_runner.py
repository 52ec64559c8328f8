"""The basket bot: one weights policy, a universe of instruments, one broker.

The portfolio twin of ``LiveRunner``, speaking its vocabulary (journal, reconcile, risk
engine, telemetry) rather than copying its loop. Once every symbol's bar of one timestamp has
closed, the policy (a ``History -> target weights`` callable, exactly what the portfolio
backtest calls) reads the history up to that close; a new target vector passes
``PortfolioRisk.check`` (the check ``run_portfolio(risk=...)`` applies), becomes per-symbol
orders through ``net_orders`` (netted, whole lots where configured, sells before buys, buys
scaled when cash binds), each of which still passes ``RiskEngine.check_order`` against the
book as the earlier orders leave it. Every order is journaled PENDING, with the new target,
in one commit before the first is sent; client references name the journal's session, the
symbol, the bar and the purpose, so a restart (which reconciles every journaled order with
the broker first, ``evotrader.live.reconcile``) never sends one twice. A breaker or the kill
switch sends every basket position to zero and stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pandas as pd

from evotrader.backtest.portfolio import History, WeightsPolicy
from evotrader.core.trading import (
    Account,
    Bar,
    Instrument,
    OrderRequest,
    Side,
)
from evotrader.env.execution import ExecutionModel
from evotrader.live import reconcile
from evotrader.live.basket_expectation import BasketExpectation
from evotrader.live.basket_orders import BasketError, BasketPlan, net_orders
from evotrader.live.basket_sim import STATE_KEY
from evotrader.live.broker import Broker, BrokerDisconnected, BrokerError, FeedEnded
from evotrader.live.broker_sync import BrokerSync, client_ref
from evotrader.live.journal import Journal
from evotrader.live.runner import RunnerConfig
from evotrader.live.telemetry import EventLog, Reporter, RunSummary
from evotrader.live.window import BarWindow
from evotrader.risk.kill_switch import KillSwitch
from evotrader.risk.portfolio import PortfolioRisk, PortfolioRiskError
from evotrader.risk.risk_engine import Book, RiskEngine

log = logging.getLogger(__name__)


class BasketRunner(BrokerSync):
    """Trades a weights ``policy`` over ``instruments`` through ``broker`` under ``risk``
    (per order) and ``portfolio_risk`` (per target vector), remembering in ``journal``.
    ``config`` is the single-symbol runner's (history, polling, lot size, reconnects,
    max bars), its instrument naming the basket."""

    def __init__(
        self,
        broker: Broker,
        policy: WeightsPolicy,
        instruments: Sequence[Instrument],
        risk: RiskEngine,
        journal: Journal,
        config: RunnerConfig,
        *,
        needed_bars: int = 2,
        execution: ExecutionModel | None = None,
        close_only: bool = False,
        kill_switch: KillSwitch | None = None,
        events: EventLog | None = None,
        console: Callable[[str], None] | None = None,
        real_money: bool = False,
    ) -> None:
        symbols = [instrument.symbol for instrument in instruments]
        if not symbols or len(set(symbols)) != len(symbols):
            raise ValueError(f"a basket needs distinct symbols, got {symbols}")
        if config.history_bars < needed_bars:
            raise ValueError(
                f"runner history_bars {config.history_bars} < {needed_bars} needed by the policy"
            )
        self.broker, self.policy, self.risk, self.journal = broker, policy, risk, journal
        self.config, self.needed_bars, self.real_money = config, needed_bars, real_money
        self.execution, self.close_only = execution or ExecutionModel(), close_only
        self.instruments = list(instruments)
        self.symbols = symbols
        self.portfolio_risk = PortfolioRisk(risk.preferences)
        self.kill_switch = kill_switch or KillSwitch()
        self.events = events or EventLog(None)
        self.console = console or log.info
        self.summary = RunSummary()
        self.report = Reporter(journal, self.events, self.console, risk, self.summary, broker.now)
        self.windows = {s: BarWindow(s, config.history_bars) for s in symbols}
        self._arrived: dict[str, Bar] = {}  # bars of the timestamp being collected
        self._target = np.zeros(len(symbols))  # the approved weights last ordered
        self._wanted: np.ndarray | None = None  # the policy's weights they came from
        self._expectation: BasketExpectation | None = None
        self._units = dict.fromkeys(symbols, 0.0)
        self._account: Account | None = None
        self._live_bars = 0
        self._fill_ids = journal.fill_ids()

    @property
    def name(self) -> str:
        return "+".join(self.symbols)

    # -- the loop ----------------------------------------------------------------------

    def start(self) -> None:
        """Connect, refuse real money without the flags, warm every symbol's window up,
        restore the saved target, reconcile every journaled order, subscribe."""
        self._open_run(self.name, {"symbol": self.name, "symbols": self.symbols})
        self.instruments = [self.broker.qualify(i) for i in self.instruments]
        for instrument in self.instruments:
            window = self.windows[instrument.symbol]
            window.extend(self.broker.history(instrument, self.config.history_bars))
            if len(window) < self.needed_bars:
                raise BrokerError(
                    f"{self.broker.name}: only {len(window)} bars of history for "
                    f"{instrument.symbol}, the policy needs {self.needed_bars}"
                )
        latest = {s: w.latest for s, w in self.windows.items()}
        if len(set(latest.values())) > 1:
            raise BrokerError(
                f"{self.broker.name}: the basket's histories end on different bars: "
                + ", ".join(f"{s} {t}" for s, t in latest.items())
            )
        saved = self.journal.get_state(STATE_KEY)
        if saved:
            self._target = np.array([saved["target"].get(s, 0.0) for s in self.symbols])
            if saved.get("policy") is not None:
                self._wanted = np.array([saved["policy"][s] for s in self.symbols])
        self._reconcile()
        self._restore_expectation(saved)
        for instrument in self.instruments:
            self.broker.subscribe(instrument)
        self.events.emit("ready", last_bar=self._latest, target=self._targets())

    def _on_bar(self, bar: Bar) -> None:
        window = self.windows.get(bar.symbol)
        problem = f"not in the basket {self.name}" if window is None else window.problem(bar)
        if problem is None and self._arrived:
            collecting = next(iter(self._arrived.values())).timestamp
            if bar.timestamp > collecting:  # the previous timestamp never completed
                missing = sorted(set(self.symbols) - set(self._arrived))
                self.report.error(
                    "incomplete_bars", f"{collecting}: no bar of {missing}; not traded"
                )
                self._arrived.clear()
        if problem is not None or bar.symbol in self._arrived:
            self.report.error("bad_bar", f"{bar.symbol} {bar.timestamp}: {problem or 'repeated'}")
            return
        self._arrived[bar.symbol] = bar
        if len(self._arrived) == len(self.symbols):
            bars, self._arrived = self._arrived, {}
            self._on_timestamp(bars)

    def _on_timestamp(self, bars: dict[str, Bar]) -> None:
        """Every symbol's bar of one timestamp has closed: mark, check, decide, order."""
        for symbol in self.symbols:
            self.windows[symbol].append(bars[symbol])
        stamp = bars[self.symbols[0]].timestamp
        self._sync()
        assert self._expectation is not None  # start() set it
        self._expectation.on_bars(bars)
        closes = np.array([bars[s].close for s in self.symbols])
        now, equity, expected = self.broker.now(), self._equity(), self._expectation.equity(closes)
        divergence = self._expectation.divergence_pct(equity, closes)
        decision = None
        if self._marked(stamp, now, equity, expected, divergence):
            try:
                decision = self._decide(stamp, now, equity)
            except (PortfolioRiskError, BasketError) as error:  # weights it cannot trade
                self.report.error("policy", str(error))
        self.console(
            f"[{self.broker.name}] {stamp} {self.name} | equity {equity:,.2f} | "
            f"target {self._targets()} | "
            + ("risk ok" if self.risk.halt is None else f"HALTED ({self.risk.halt.kind})")
        )
        with self.journal.transaction():
            if decision is not None:
                self.journal.record_decision(stamp, now, None, *decision)
            self._save_state()
        self._stop_at_max_bars()

    # -- deciding and ordering ---------------------------------------------------------

    def _history(self) -> History:
        panel = pd.concat({s: self.windows[s].frame for s in self.symbols}, axis=1, join="inner")
        closes = panel.xs("close", axis=1, level=1)
        prices = closes.iloc[-1].to_numpy(np.float64)
        equity = self._equity()
        held = np.array([self._units[s] for s in self.symbols]) * prices
        weights = pd.Series(held / equity if equity > 0 else 0.0, index=self.symbols)
        return History(closes=closes, bars=panel, weights=weights.rename("weight"))

    def _decide(
        self, stamp: pd.Timestamp, now: pd.Timestamp, equity: float
    ) -> tuple[float, float, float, dict[str, Any]]:
        """Ask the policy; a new target vector is checked, netted and ordered. Returns the
        decision to journal: (gross target, price 0: a basket has no one price, equity,
        detail)."""
        history = self._history()
        weights = self.policy(history)
        self.summary.decisions += 1
        detail: dict[str, Any] = {"previous_target": self._targets()}
        if weights is None:
            return float(np.abs(self._target).sum()), 0.0, equity, detail | {"why": "hold"}
        if isinstance(weights, pd.Series | Mapping):
            weights = pd.Series(weights, dtype=np.float64).reindex(self.symbols)
        wanted = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(wanted) != len(self.symbols):
            raise BasketError(
                f"policy returned {len(wanted)} weights for the {len(self.symbols)} symbols "
                f"of {self.name} at {stamp}"
            )
        returns = history.closes.pct_change().iloc[1:]
        check = self.portfolio_risk.check(pd.Series(wanted, index=self.symbols), returns, stamp)
        for adjustment in check.adjustments:
            self.report.risk_event("portfolio_adjusted", asdict(adjustment))
        approved = check.approved.reindex(self.symbols).to_numpy(np.float64)
        detail |= {"policy": dict(zip(self.symbols, wanted.tolist(), strict=True))}
        if self._wanted is not None and np.array_equal(wanted, self._wanted):
            # a restarted policy repeating the weights ordered before the restart: hold,
            # as the policy that never stopped would have (it answers None to itself)
            return float(np.abs(self._target).sum()), 0.0, equity, detail | {"why": "unchanged"}
        self._wanted = wanted
        detail["orders"] = self._order_targets(stamp, now, approved, history)
        return float(np.abs(approved).sum()), 0.0, equity, detail | {"why": "policy"}

    def _order_targets(
        self, stamp: pd.Timestamp, now: pd.Timestamp, approved: np.ndarray, history: History
    ) -> list[str]:
        """Cancel what still works, net the new targets into orders, risk-check each against
        the book the earlier ones leave, journal them all with the target, then send."""
        self._cancel_open_orders()
        prices = {s: float(history.closes[s].iloc[-1]) for s in self.symbols}
        targets = dict(zip(self.symbols, approved.tolist(), strict=True))
        account = self._account_now()
        margin = max(self.risk.preferences.max_leverage - 1.0, 0.0) * account.equity
        plan = net_orders(
            targets,
            self._units,
            prices,
            account.equity,
            account.cash,
            lot_sizes=dict.fromkeys(self.symbols, self.config.lot_size),
            margin=margin,
        )
        if plan.cash_bound:
            self.report.risk_event("cash_bound", {"scale": plan.scale})
        requests = self._approved(plan, prices, account.equity, stamp, now)
        self._target = approved
        assert self._expectation is not None
        impact = [self.execution.prices(self.windows[s].frame).impact[-1] for s in self.symbols]
        self._expectation.decide(approved, np.array(list(prices.values())), np.array(impact))
        with self.journal.transaction():  # the intent and every order, before any is sent
            self._save_state()
            for request in requests:
                self.journal.record_order(request, stamp, now)
        for request in requests:
            self._place(request)
        return [request.client_ref for request in requests]

    def _approved(
        self,
        plan: BasketPlan,
        prices: dict[str, float],
        equity: float,
        stamp: pd.Timestamp,
        now: pd.Timestamp,
    ) -> list[OrderRequest]:
        """The plan's orders the risk engine approves, in sending order, each judged on the
        book as the approved ones before it leave it."""
        units = dict(self._units)
        instruments = {i.symbol: i for i in self.instruments}
        end = self.windows[self.symbols[0]].last_bar
        approved = []
        for order in plan.orders:
            request = OrderRequest(
                client_ref=self._client_ref(order.symbol, stamp, "target"),
                instrument=instruments[order.symbol],
                side=Side.SELL if order.is_sell else Side.BUY,
                quantity=abs(order.quantity),
                target_weight=order.target_weight,
            )
            verdict = self.risk.check_order(
                request, Book(equity, units, prices), now, end.end if end else None
            )
            if not verdict.approved:
                self.summary.rejected += 1
                self.report.risk_event(
                    "order_refused", {"client_ref": request.client_ref, "reason": verdict.reason}
                )
                continue
            units[order.symbol] = units.get(order.symbol, 0.0) + order.quantity
            approved.append(request)
        return approved

    def _client_ref(self, symbol: str, bar: pd.Timestamp, purpose: str) -> str:
        return client_ref(self.journal.session_id, symbol, bar, purpose)

    # -- broker state ------------------------------------------------------------------

    def _sync(self) -> None:
        """Pull order states, fills, positions and the account into the journal."""
        with self.journal.transaction():
            _, positions = self._pull_broker()
            held = reconcile.quantities(positions)
            self._units = {s: held.get(s, 0.0) for s in self.symbols}

    def _save_state(self) -> None:
        with self.journal.transaction():
            self.journal.set_state("risk", self.risk.state.to_dict())
            last = self._latest.isoformat() if len(self.windows[self.symbols[0]]) else None
            wanted = None if self._wanted is None else self._weights(self._wanted)
            state = {"target": self._targets(), "policy": wanted, "last_bar": last}
            if self._expectation is not None:
                state["expectation"] = self._expectation.to_dict()
            self.journal.set_state(STATE_KEY, state)

    def _restore_expectation(self, saved: Mapping[str, Any] | None) -> None:
        """The saved expectation; a fresh journal starts it from the broker's account
        (positions already held become the expectation's too)."""
        if saved and saved.get("expectation"):
            self._expectation = BasketExpectation.from_dict(
                self.execution, self.symbols, saved["expectation"], close_only=self.close_only
            )
            return
        units = [self._units[s] for s in self.symbols]
        cash = self._account_now().cash
        self._expectation = BasketExpectation(
            self.execution, self.symbols, cash, units, close_only=self.close_only
        )

    @property
    def _latest(self) -> pd.Timestamp:
        return self.windows[self.symbols[0]].latest

    def _targets(self) -> dict[str, float]:
        return self._weights(self._target)

    def _weights(self, weights: np.ndarray) -> dict[str, float]:
        return dict(zip(self.symbols, weights.tolist(), strict=True))

    # -- halts, reconnects, stopping ---------------------------------------------------

    def _flatten_and_stop(self) -> None:
        """Cancel working orders, send every basket position to zero, wait for the fills
        (a replay fills them with the next bar), stop."""
        halt = self.risk.halt
        assert halt is not None
        self.summary.halt = halt
        try:
            self._sync()
            self._cancel_open_orders()
            for attempt in range(self.config.flatten_polls):
                self._sync()
                held = {s: q for s, q in self._units.items() if q}
                if not held:
                    break
                if not self.broker.open_orders():
                    self._send_flatten(held, attempt)
                self.broker.next_bar(self.config.poll_seconds)
        except FeedEnded:
            self._sync()
        except BrokerError as error:
            self.report.error("flatten", str(error))
        held = {s: q for s, q in self._units.items() if q}
        self.report.risk_event("flattened" if not held else "flatten_incomplete", {"units": held})
        self.summary.stopped = f"halted by {halt.kind}: {halt.reason}" + (
            f"; STILL HOLDING {held}" if held else ""
        )
        self.console(f"[{self.broker.name}] {self.summary.stopped}")

    def _send_flatten(self, held: dict[str, float], attempt: int) -> None:
        bar, now = self._latest, self.broker.now()
        instruments = {i.symbol: i for i in self.instruments}
        requests = [
            OrderRequest(
                client_ref=self._client_ref(symbol, bar, f"flat{attempt}"),
                instrument=instruments[symbol],
                side=Side.SELL if units > 0 else Side.BUY,
                quantity=abs(units),
                target_weight=0.0,
            )
            for symbol, units in held.items()
        ]
        requests = [r for r in requests if self.journal.order(r.client_ref) is None]
        with self.journal.transaction():
            for request in requests:
                self.journal.record_order(request, bar, now)
        for request in requests:
            self._place(request)
        self._target, self._wanted = np.zeros(len(self.symbols)), None

    def _reconnect(self, error: BrokerDisconnected) -> None:
        if not self._reconnected(error):
            return
        for instrument in self.instruments:
            self.windows[instrument.symbol].extend(
                self.broker.history(instrument, self.config.history_bars)
            )
            self.broker.subscribe(instrument)
        self.journal.record_health(self.broker.now(), "reconnected", {})


def basket_instruments(config: RunnerConfig, symbols: Sequence[str]) -> list[Instrument]:
    """One instrument per symbol, with the runner config's asset class, exchange and
    currency (its own instrument names the basket)."""
    return [replace(config.instrument, symbol=symbol, broker_id=None) for symbol in symbols]
