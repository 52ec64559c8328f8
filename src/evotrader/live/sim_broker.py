"""SimBroker: bars replayed as a live feed, filled by the shared execution model.

Bars before ``start`` are history (warm-up); from ``start`` on, ``next_bar`` delivers one
closed bar per call. An order placed after bar t closed fills at bar t+1's open (or at bar
t's close with ``fill="close"``) through the same ``rebalance`` arithmetic and the same
per-decision fill prices and impact as MarketEnv and the backtest engine, so a bot trading
a checkpoint here produces the backtest's fills and equity. ``Faults`` injects the broker
misbehaviour the runner must survive: rejects, partial fills, duplicate, out-of-order and
corrupt bars, a stalled feed, disconnects and failed reconnects.

A real broker outlives the bot; a replay dies with it. ``resume`` rebuilds the replay a
killed bot left behind from its journal (the bars it had seen, its fills, the orders the
broker had acknowledged), so a bot restarted on the same journal carries on where it was
instead of replaying bars it already traded.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import pandas as pd

from evotrader.core.trading import (
    Account,
    Bar,
    Fill,
    Instrument,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from evotrader.data import load_bars
from evotrader.data.validation import validate_ohlcv
from evotrader.env.execution import ExecutionModel, SimAccount
from evotrader.live.broker import (
    BrokerDisconnected,
    BrokerError,
    FeedEnded,
    UnknownInstrument,
)
from evotrader.live.journal import Journal, JournalError
from evotrader.live.replay import (
    ReplayBroker,
    SimOrder,
    bar_at,
    first_live_bar,
    moved_avg_cost,
)
from evotrader.live.session import BROKERS, BrokerSetup, SetupError
from evotrader.risk.preferences import TradingHours, bar_end_times, bar_open_times
from evotrader.training.guards import TradableCheckpoint


@dataclass(frozen=True)
class Faults:
    """Misbehaviour to inject, each once. Bars are numbered from 0 at the replay start;
    orders by placement, from 0. An injection "before bar i" happens on the ``next_bar``
    call that would otherwise deliver bar i."""

    reject_orders: frozenset[int] = frozenset()
    partial_fills: Mapping[int, float] = field(default_factory=dict)  # order -> fraction
    duplicate_bars: frozenset[int] = frozenset()  # re-send the last bar before bar i
    out_of_order_bars: frozenset[int] = frozenset()  # re-send the bar before the last
    bad_bars: frozenset[int] = frozenset()  # a bar with a NaN close before bar i
    stalls: Mapping[int, float] = field(default_factory=dict)  # bar -> seconds with no bar
    disconnects: frozenset[int] = frozenset()  # the connection drops before bar i
    failed_reconnects: int = 0  # connect() fails this many times after each drop

    def __post_init__(self) -> None:
        for order, fraction in self.partial_fills.items():
            if not 0 < fraction < 1:
                raise ValueError(f"partial fill of order {order} must be in (0, 1): {fraction}")
        for bar, seconds in self.stalls.items():
            if seconds <= 0:
                raise ValueError(f"stall before bar {bar} must last > 0 seconds: {seconds}")


@dataclass
class _Order(SimOrder):
    fills: int = 0


class SimBroker(ReplayBroker[_Order]):
    """A replay broker for one instrument; always a paper account."""

    def __init__(
        self,
        bars: pd.DataFrame,
        instrument: Instrument,
        *,
        start: str | pd.Timestamp,
        execution: ExecutionModel | None = None,
        initial_cash: float = 100_000.0,
        hours: TradingHours | None = None,
        sizing: Literal["target", "quantity"] = "target",
        faults: Faults | None = None,
        account_id: str = "SIM",
    ) -> None:
        if sizing not in ("target", "quantity"):
            raise ValueError(f"sim sizing must be 'target' or 'quantity', got {sizing!r}")
        if initial_cash <= 0:
            raise ValueError(f"sim initial_cash must be positive, got {initial_cash}")
        self._bars = validate_ohlcv(bars, instrument.symbol, min_bars=2)
        self.instrument = instrument
        self.execution = execution or ExecutionModel()
        self.hours = hours or TradingHours()
        self.sizing = sizing
        self.faults = faults or Faults()
        self.account_id = account_id
        self._ends = bar_end_times(self._bars.index, self.hours)
        self._opens = bar_open_times(self._bars.index, self.hours)
        self._prices = self.execution.prices(self._bars)
        first = first_live_bar(self._bars.index, start)
        self.start = first
        self._last = first - 1  # last delivered (closed) bar; history is bars[: last + 1]
        self._clock = self._ends[first - 1]
        self._account = SimAccount(float(initial_cash))
        self._avg_cost = 0.0
        self._orders: dict[str, _Order] = {}
        self._fills: list[Fill] = []
        self._numbers = itertools.count()
        self._injected: set[tuple[str, int]] = set()
        self._reconnect_failures = 0
        self._connected = False

    # -- connection and clock --------------------------------------------------------

    def connect(self) -> None:
        if self._connected:
            return
        if self._reconnect_failures:
            self._reconnect_failures -= 1
            raise BrokerDisconnected("sim: reconnect refused (injected fault)")
        self._connected = True

    # -- market data -----------------------------------------------------------------

    def next_bar(self, timeout: float) -> Bar | None:
        self._check_connected("next_bar")
        t = self._last + 1
        if t >= len(self._bars):
            raise FeedEnded(f"sim: replay of {self.instrument.symbol} ended at {self._clock}")
        i = t - self.start
        if self._inject("disconnect", i, i in self.faults.disconnects):
            self._connected = False
            self._reconnect_failures = self.faults.failed_reconnects
            raise BrokerDisconnected(f"sim: connection dropped before bar {i} (injected fault)")
        if self._inject("stall", i, i in self.faults.stalls):
            self._clock += pd.Timedelta(seconds=self.faults.stalls[i])
            return None
        if self._inject("duplicate", i, i in self.faults.duplicate_bars):
            return self._bar(self._last)
        if self._inject("out_of_order", i, i in self.faults.out_of_order_bars and self._last > 0):
            return self._bar(self._last - 1)
        if self._inject("bad", i, i in self.faults.bad_bars):
            return replace(self._bar(t), close=float("nan"))
        self._advance(t)
        return self._bar(t)

    # -- orders ----------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> OrderState:
        self._check_connected("place_order")
        known = self._orders.get(request.client_ref)
        if known is not None:
            return known.state
        number, state = self._submitted(request)
        if request.instrument.symbol != self.instrument.symbol:
            reason = f"sim trades only {self.instrument.symbol}"
            state = replace(state, status=OrderStatus.REJECTED, reason=reason)
        elif number in self.faults.reject_orders:
            state = replace(state, status=OrderStatus.REJECTED, reason="rejected (injected fault)")
        order = _Order(request, number, state)
        self._orders[request.client_ref] = order
        if self.execution.fill == "close" and not state.status.is_terminal:
            self._fill(order, self._last)
        return order.state

    def positions(self) -> dict[str, Position]:
        self._check_connected("positions")
        if self._account.units == 0:
            return {}
        symbol = self.instrument.symbol
        return {symbol: Position(symbol, self._account.units, self._avg_cost)}

    def account(self) -> Account:
        self._check_connected("account")
        mark = float(self._prices.mark[self._last])
        return Account(
            self.account_id,
            cash=self._account.cash,
            equity=self._account.equity(mark),
            updated_at=self._clock,
        )

    # -- restart -----------------------------------------------------------------------

    def resume(self, journal: Journal) -> pd.Timestamp | None:
        """Continue the replay recorded in ``journal`` by a bot that died mid-run.

        The feed restarts after the last bar the bot saved (or at ``start``, if later); the
        account is the initial cash plus the journaled fills; orders the broker had
        acknowledged keep their journaled state and working ones fill as they would have.
        Orders still PENDING never reached this broker: the runner's reconcile re-sends or
        drops them. Returns the last bar the bot had seen, or None for a fresh journal.
        """
        saved = journal.get_state("bot") or {}
        if not saved.get("last_bar"):
            return None
        if self._orders or self._fills:
            raise BrokerError("sim: resume must come before any order")
        seen = pd.Timestamp(saved["last_bar"])
        last = int(self._bars.index.searchsorted(seen))
        if last == len(self._bars) or self._bars.index[last] != seen:
            raise JournalError(
                f"journal {journal.path}: its last bar {seen} is not a bar of this "
                f"{self.instrument.symbol} replay; a journal belongs to one bot, use another --out"
            )
        self._last = max(self._last, last)
        self._clock = self._ends[self._last]
        fills, held = journal.fills(), journal.positions()
        others = sorted(({f.symbol for f in fills} | set(held)) - {self.instrument.symbol})
        if others:
            raise JournalError(
                f"journal {journal.path}: holds trades of {others}, this replay trades "
                f"{self.instrument.symbol}; a journal belongs to one bot, use another --out"
            )
        for fill in fills:  # the cash arithmetic of rebalance, in its order
            self._account.cash = self._account.cash - fill.signed_quantity * fill.price - fill.cost
        position = held.get(self.instrument.symbol, Position(self.instrument.symbol, 0.0))
        self._account.units, self._avg_cost = position.quantity, position.avg_cost
        self._fills = fills
        self._restore_orders(
            journal,
            lambda known, number: _Order(
                known.request,
                number,
                known.state,
                sum(f.client_ref == known.request.client_ref for f in fills),
            ),
        )
        return seen

    # -- replay mechanics ------------------------------------------------------------

    def _advance(self, t: int) -> None:
        """Bar t opens (working orders fill), then closes (the clock moves to its end)."""
        working = self._working()
        next_open = self.execution.fill == "next_open"
        self._clock = self._opens[t] if next_open else self._ends[t]
        for order in sorted(working, key=lambda o: o.number):
            self._fill(order, t - 1 if next_open else t)
        self._last, self._clock = t, self._ends[t]

    def _fill(self, order: _Order, decision: int) -> None:
        """Fill what the order can at the fill price of ``decision`` (the bar after it
        opens with ``next_open``, its close with ``close``)."""
        request, state = order.request, order.state
        price, impact = float(self._prices.fill[decision]), float(self._prices.impact[decision])
        if request.order_type is OrderType.LIMIT:
            limit_fill = self._limit_price(request, decision)
            if limit_fill is None:
                return
            price = limit_fill
        rate, account = self.execution.linear_rate, self._account
        fraction = self.faults.partial_fills.get(order.number) if order.fills == 0 else None
        # _sizes_by_target implies a target weight; the local narrows it for the checker.
        target = request.target_weight
        if target is not None and self._sizes_by_target(order) and fraction is None:
            traded, cost = account.rebalance_to(target, price, rate, impact)
            remaining = 0.0
        else:
            wanted = request.side.sign * state.remaining_quantity
            if target is not None and self._sizes_by_target(order):
                wanted = target * account.equity(price) / price - account.units
            quantity = wanted * (fraction or 1.0)
            try:
                traded, cost = account.trade(quantity, price, rate, impact)
            except ValueError as error:
                raise BrokerError(f"sim {error}") from error
            remaining = abs(wanted - quantity)
        self._record_fill(order, traded, price, cost, remaining)

    def _sizes_by_target(self, order: _Order) -> bool:
        request = order.request
        return (
            self.sizing == "target"
            and request.target_weight is not None
            and request.order_type is OrderType.MARKET
            and order.fills == 0
        )

    def _limit_price(self, request: OrderRequest, decision: int) -> float | None:
        """Where a limit order fills for ``decision``: with ``next_open``, the next bar's
        open when already through the limit, else the limit when that bar trades through
        it; with ``close``, the decision bar's close when through the limit. Else None."""
        # OrderRequest guarantees a finite limit_price on every limit order.
        assert request.limit_price is not None
        limit, sign = float(request.limit_price), request.side.sign
        if self.execution.fill == "close":
            close = float(self._bars["close"].iloc[decision])
            return close if sign * (limit - close) >= 0 else None
        bar = self._bars.iloc[decision + 1]
        if sign * (limit - bar["open"]) >= 0:
            return float(bar["open"])
        extreme = bar["low"] if sign > 0 else bar["high"]
        return limit if sign * (limit - extreme) >= 0 else None

    def _record_fill(
        self, order: _Order, traded: float, price: float, cost: float, remaining: float
    ) -> None:
        state = order.state
        if traded:
            self._update_avg_cost(traded, price)
            order.fills += 1
            self._fills.append(
                Fill(
                    exec_id=f"sim-{state.broker_order_id}-{order.fills}",
                    client_ref=state.client_ref,
                    broker_order_id=state.broker_order_id,
                    symbol=self.instrument.symbol,
                    side=Side.BUY if traded > 0 else Side.SELL,
                    quantity=abs(traded),
                    price=price,
                    cost=cost,
                    timestamp=self._clock,
                )
            )
        filled = state.filled_quantity + abs(traded)
        paid = (state.avg_fill_price or 0.0) * state.filled_quantity + abs(traded) * price
        order.state = replace(
            state,
            status=OrderStatus.PARTIALLY_FILLED if remaining > 0 else OrderStatus.FILLED,
            filled_quantity=filled,
            remaining_quantity=remaining,
            avg_fill_price=paid / filled if filled else None,
            updated_at=self._clock,
        )

    def _update_avg_cost(self, traded: float, price: float) -> None:
        before = self._account.units - traded
        self._avg_cost = moved_avg_cost(self._avg_cost, before, traded, price)

    def _bar(self, t: int) -> Bar:
        return bar_at(self._bars, self.instrument.symbol, t, self._ends[t])

    def _inject(self, kind: str, bar: int, wanted: bool) -> bool:
        if not wanted or (kind, bar) in self._injected:
            return False
        self._injected.add((kind, bar))
        return True

    def _frame(self, symbol: str) -> pd.DataFrame:
        if symbol != self.instrument.symbol:
            raise UnknownInstrument(f"sim replays {self.instrument.symbol}, not {symbol}")
        return self._bars


def from_setup(setup: BrokerSetup) -> SimBroker:
    """The session's replay: the traded symbol's bars from the checkpoint's source (or
    ``bars_source``, or the ``bars_path`` file), from its test split's start to its end;
    for a registered strategy, its search's source and test split, costs and cash."""
    options, tradable, symbol = setup.options, setup.tradable, setup.config.symbol
    if isinstance(tradable, TradableCheckpoint):
        own_source = tradable.data.source if tradable.data else None
        split = tradable.checkpoint.data_range
        start, end = options.start or split.get("test_start"), options.end or split.get("test_end")
        execution, cash = tradable.spec.execution, tradable.spec.initial_cash
    else:
        own_source = tradable.spec.universe.source
        start = options.start or tradable.windows.test_start
        end = options.end or tradable.windows.test_end
        execution, cash = tradable.execution, tradable.cash
    if options.bars_path:  # the user's own file, named on the command line
        kind = "parquet" if options.bars_path.suffix == ".parquet" else "csv"
        bars = load_bars(kind, symbol, path=options.bars_path)
    elif options.bars_source and options.bars_source != own_source:
        bars = load_bars(options.bars_source, symbol)
    elif not isinstance(tradable, TradableCheckpoint):
        bars = tradable.bars(end)
    elif tradable.data is not None:
        bars = tradable.bars(symbol)
    else:
        where = tradable.where
        raise SetupError(f"{where} does not say where its bars came from; pass --bars-source")
    bars = bars.loc[:end] if end else bars
    try:
        return SimBroker(
            bars,
            setup.config.instrument,
            start=start,
            execution=execution,
            initial_cash=cash,
            hours=setup.prefs.trading_hours,
        )
    except ValueError as error:  # bars too short for the replay, a start past the end
        raise SetupError(f"sim replay of {symbol}: {error}") from error


BROKERS.register("sim", from_setup, __name__)
