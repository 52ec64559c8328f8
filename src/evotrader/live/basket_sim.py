"""BasketSimBroker: a universe's aligned bars replayed as a live feed, filled as the
portfolio backtest fills them.

The multi-symbol twin of ``SimBroker``. Bars before ``start`` are history; from ``start`` on,
each replayed bar delivers one closed bar per symbol (one ``next_bar`` call each, in the
universe's order). Orders placed after bar t closed settle together when the replay moves
on, at the decision's fill prices of ``evotrader.backtest.portfolio`` (bar t+1's open, or
bar t's close with ``fill="close"``, or bar t+1's close on close-only data), through the
same ``rebalance_portfolio`` arithmetic: the orders of one decision share the equity
measured at those prices, as the backtest's one rebalance does, and a market order carrying
a target weight trades to that weight of it (``SimBroker``'s target sizing). So a basket
bot trading a portfolio checkpoint here produces run_backtest.py's equity.

``resume`` rebuilds the replay a killed bot left behind from its journal, as ``SimBroker``'s.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from evotrader.core.trading import (
    Account,
    Bar,
    Fill,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from evotrader.data.validation import validate_ohlcv
from evotrader.env.execution import ExecutionModel, rebalance_portfolio
from evotrader.env.portfolio_data import aligned_frames
from evotrader.live.broker import (
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
from evotrader.risk.preferences import TradingHours, bar_end_times, bar_open_times

STATE_KEY = "basket"  # the journal state the basket runner saves (its last bar among it)


@dataclass
class _Order(SimOrder):
    decided: int  # the bar it was placed after


class BasketSimBroker(ReplayBroker[_Order]):
    """A replay broker for a universe of instruments; always a paper account."""

    def __init__(
        self,
        bars: Mapping[str, pd.DataFrame],
        *,
        start: str | pd.Timestamp,
        execution: ExecutionModel | None = None,
        initial_cash: float = 100_000.0,
        hours: TradingHours | None = None,
        close_only: bool = False,
        account_id: str = "SIM",
    ) -> None:
        if initial_cash <= 0:
            raise ValueError(f"sim initial_cash must be positive, got {initial_cash}")
        checked = {str(s): validate_ohlcv(frame, str(s), min_bars=2) for s, frame in bars.items()}
        symbols, frames = aligned_frames(checked)
        self.symbols: tuple[str, ...] = symbols
        self._frames = dict(zip(symbols, frames, strict=True))
        self.execution = execution or ExecutionModel()
        self.hours = hours or TradingHours()
        self.account_id = account_id
        index = pd.DatetimeIndex(frames[0].index)
        self._index = index
        self._ends = bar_end_times(index, self.hours)
        self._opens = bar_open_times(index, self.hours)
        self._closes = np.column_stack([f["close"].to_numpy(np.float64) for f in frames])
        self._fill, self._impact, self._offset = _fill_prices(frames, self.execution, close_only)
        self.close_only = close_only
        self._at_open = not close_only and self.execution.fill == "next_open"
        first = first_live_bar(index, start)
        self.start = first
        self._last = first - 1  # the last bar delivered for every symbol
        self._clock = self._ends[first - 1]
        self._queue: deque[Bar] = deque()
        self._cash = float(initial_cash)
        self._units = np.zeros(len(symbols))
        self._avg_cost = np.zeros(len(symbols))
        self._orders: dict[str, _Order] = {}
        self._fills: list[Fill] = []
        self._numbers = itertools.count()
        self._connected = False

    # -- connection and clock --------------------------------------------------------

    def connect(self) -> None:
        self._connected = True

    # -- market data -----------------------------------------------------------------

    def next_bar(self, timeout: float) -> Bar | None:
        self._check_connected("next_bar")
        if not self._queue:
            t = self._last + 1
            if t >= len(self._index):
                raise FeedEnded(f"sim: replay of {'+'.join(self.symbols)} ended at {self._clock}")
            self._advance(t)
            self._queue.extend(self._bar(symbol, t) for symbol in self.symbols)
        return self._queue.popleft()

    # -- orders ----------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> OrderState:
        self._check_connected("place_order")
        known = self._orders.get(request.client_ref)
        if known is not None:
            return known.state
        number, state = self._submitted(request)
        symbol = request.instrument.symbol
        if symbol not in self.symbols:
            reason = f"sim replays {', '.join(self.symbols)}, not {symbol}"
            state = replace(state, status=OrderStatus.REJECTED, reason=reason)
        elif request.order_type is not OrderType.MARKET:
            reason = "the basket sim fills market orders only"
            state = replace(state, status=OrderStatus.REJECTED, reason=reason)
        self._orders[request.client_ref] = _Order(request, number, state, self._last)
        return state

    def positions(self) -> dict[str, Position]:
        self._check_connected("positions")
        return {
            symbol: Position(symbol, float(units), float(cost))
            for symbol, units, cost in zip(self.symbols, self._units, self._avg_cost, strict=True)
            if units != 0
        }

    def account(self) -> Account:
        self._check_connected("account")
        equity = self._cash + float((self._units * self._closes[self._last]).sum())
        return Account(self.account_id, cash=self._cash, equity=equity, updated_at=self._clock)

    # -- restart -----------------------------------------------------------------------

    def resume(self, journal: Journal) -> pd.Timestamp | None:
        """Continue the replay a killed basket bot recorded in ``journal``: the feed restarts
        after its last saved bar, the account is the initial cash plus the journaled fills,
        and orders the broker had acknowledged keep their state (working ones settle when
        the replay moves on). PENDING orders never reached this broker: the runner's
        reconcile re-sends or drops them. Returns the last bar seen, or None when fresh."""
        saved = journal.get_state(STATE_KEY) or {}
        if not saved.get("last_bar"):
            return None
        if self._orders or self._fills:
            raise BrokerError("sim: resume must come before any order")
        seen = pd.Timestamp(saved["last_bar"])
        last = int(self._index.searchsorted(seen))
        if last == len(self._index) or self._index[last] != seen:
            raise JournalError(
                f"journal {journal.path}: its last bar {seen} is not a bar of this "
                f"{'+'.join(self.symbols)} replay; a journal belongs to one bot, use another --out"
            )
        fills, held = journal.fills(), journal.positions()
        others = sorted(({f.symbol for f in fills} | set(held)) - set(self.symbols))
        if others:
            raise JournalError(
                f"journal {journal.path}: holds trades of {others}, this replay trades "
                f"{'+'.join(self.symbols)}; a journal belongs to one bot, use another --out"
            )
        self._last = max(self._last, last)
        self._clock = self._ends[self._last]
        for fill in fills:  # the cash arithmetic of rebalance_portfolio, fill by fill
            self._cash = self._cash - fill.signed_quantity * fill.price - fill.cost
        for symbol, position in held.items():
            column = self.symbols.index(symbol)
            self._units[column], self._avg_cost[column] = position.quantity, position.avg_cost
        self._fills = fills
        self._restore_orders(
            journal,
            lambda known, number: _Order(
                known.request,
                number,
                known.state,
                int(self._index.searchsorted(pd.Timestamp(known.bar))),
            ),
        )
        return seen

    # -- replay mechanics ------------------------------------------------------------

    def _advance(self, t: int) -> None:
        """Bar t: the orders decided on earlier bars settle at their fill prices (one
        batch per decision bar), then bar t closes."""
        by_decision: dict[int, list[_Order]] = {}
        for order in self._working():
            by_decision.setdefault(order.decided, []).append(order)
        for decided in sorted(by_decision):
            if decided + self._offset > t:
                continue
            fill_bar = decided + self._offset
            self._clock = self._opens[fill_bar] if self._at_open else self._ends[fill_bar]
            self._settle(sorted(by_decision[decided], key=lambda o: o.number), decided)
        self._last, self._clock = t, self._ends[t]

    def _settle(self, orders: Sequence[_Order], decided: int) -> None:
        """Fill one decision's orders together: each trades to its target weight of the
        equity at the decision's fill prices (a market order without one, its quantity),
        costs as ``rebalance_portfolio`` charges them."""
        price, impact = self._fill[decided], self._impact[decided]
        columns = [self.symbols.index(o.request.instrument.symbol) for o in orders]
        equity = self._cash + float((self._units * price).sum())
        if not equity > 0:
            raise BrokerError(f"sim: account equity {equity:,.2f} cannot carry a trade")
        targets = np.array(
            [
                o.request.target_weight
                if o.request.target_weight is not None
                else (self._units[c] + o.request.side.sign * o.state.remaining_quantity)
                * price[c]
                / equity
                for o, c in zip(orders, columns, strict=True)
            ]
        )
        # rebalance_portfolio over the ordered symbols, the others' value counted as cash
        others = float((self._units * price).sum() - (self._units[columns] * price[columns]).sum())
        cash, units, costs = rebalance_portfolio(
            self._cash + others,
            self._units[columns],
            targets,
            price[columns],
            self.execution.linear_rate,
            impact[columns],
        )
        self._cash = cash - others
        for order, column, new, cost in zip(orders, columns, units, costs, strict=True):
            traded = float(new - self._units[column])
            self._update_avg_cost(column, traded, float(price[column]))
            self._units[column] = new
            self._record_fill(order, traded, float(price[column]), float(cost))

    def _record_fill(self, order: _Order, traded: float, price: float, cost: float) -> None:
        state = order.state
        if traded:
            self._fills.append(
                Fill(
                    exec_id=f"sim-{state.broker_order_id}-1",
                    client_ref=state.client_ref,
                    broker_order_id=state.broker_order_id,
                    symbol=order.request.instrument.symbol,
                    side=Side.BUY if traded > 0 else Side.SELL,
                    quantity=abs(traded),
                    price=price,
                    cost=cost,
                    timestamp=self._clock,
                )
            )
        order.state = replace(
            state,
            status=OrderStatus.FILLED,
            filled_quantity=abs(traded),
            remaining_quantity=0.0,
            avg_fill_price=price if traded else None,
            updated_at=self._clock,
        )

    def _update_avg_cost(self, column: int, traded: float, price: float) -> None:
        self._avg_cost[column] = moved_avg_cost(
            float(self._avg_cost[column]), float(self._units[column]), traded, price
        )

    def _bar(self, symbol: str, t: int) -> Bar:
        return bar_at(self._frames[symbol], symbol, t, self._ends[t])

    def _frame(self, symbol: str) -> pd.DataFrame:
        if symbol not in self.symbols:
            raise UnknownInstrument(
                f"sim: no bars of {symbol} in this replay of {', '.join(self.symbols)}"
            )
        return self._frames[symbol]


def _fill_prices(
    frames: Sequence[pd.DataFrame], execution: ExecutionModel, close_only: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per bar and symbol, where a decision fills and its impact scale, and how many bars
    later it fills: the portfolio backtest's own rules (``evotrader.backtest.portfolio``)."""
    if close_only:
        if execution.impact_coef > 0:
            raise ValueError("close-only bars have no volume: execution impact_coef must be 0")
        closes = np.column_stack([f["close"].to_numpy(np.float64) for f in frames])
        fill = np.vstack([closes[1:], np.full((1, closes.shape[1]), np.nan)])
        return fill, np.zeros_like(closes), 1
    prices = [execution.prices(frame) for frame in frames]
    fill = np.column_stack([p.fill for p in prices])
    impact = np.column_stack([p.impact for p in prices])
    return fill, impact, int(execution.fill == "next_open")
