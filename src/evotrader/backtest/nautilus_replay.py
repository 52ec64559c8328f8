"""The one NautilusTrader integration: target positions per bar become Nautilus orders.

One replay strategy (``TargetReplay``: on bar k, trade to ``targets[k]`` x equity when the
target changes), one IB cost model (``costs.IBCosts``, charged by ``IBFeeModel``) and one
engine builder (``run_targets``) serve both users: the backtest comparison below
(``compare_engines``, ``run_backtest.py --engine nautilus``) and the strategy track's
validation (``strategies/validation.py``).

Costs follow IBKR's Fixed pricing for US stocks: $0.005 a share, $1 minimum, at most 1% of
the trade's value, per fill. Slippage is in basis points of notional and lands in one of two
places: in the fill price (``slippage="price"``: buys fill above the close, sells below, as a
broker's would) or as a fee (``slippage="fee"``: fill prices stay the closes, so the three
strategy translators agree trade for trade). Share rounding has one rule: whole shares,
truncated towards zero (``whole_shares``), so a trade never exceeds its target exposure and a
fully invested account never needs cash it does not have.

How the price moves. Nautilus's own ``FillModel`` slippage is a random jump of one tick
(``prob_slippage``), and a market order that exhausts the book also slips one tick: neither
is a basis-point cost. Its fill model may instead hand the matching engine a simulated order
book to fill against (``get_orderbook_for_fill_simulation``), and that is what
``SlippageFillModel`` does: one level on the order's side at the close moved ``bps`` (plus
square-root impact when asked) against the order. Nautilus then matches and accounts every
fill at that price, so its fill prices, positions and account carry the cost. With
``sub_penny`` (validation) prices get enough decimals to resolve a tenth of a basis point
(``fill_decimals``), else a cheap stock's slip would round away to the cent; the replay
keeps the bars' own decimals, so Nautilus's account, kept in cents, matches ours exactly.

Partial fills (``Liquidity``, validation's fill model). Nautilus fills market orders in full:
what a bar-built book lacks slips a tick and fills anyway. A participation limit therefore
goes into the same simulated book: its level holds only ``participation`` x the bar's volume
in whole shares (less what earlier orders of that bar took), the replay sends its orders
immediate-or-cancel, and Nautilus's matching engine fills what the level holds and cancels
the rest, as an exchange would. The replay sends the remainder again on each following bar
until the position reaches the decided size; a new decision replaces what is left (it sizes
from the position then held), and what is left after the last decision bar stays unfilled.
A position therefore builds over several bars when the limit binds. A leg whose bars carry
no volume at all (close-only data) has no limit and no impact: ``BarLiquidity.limited`` says
so, and validation reports it. On a leg with volume, a bar with none offers nothing.

Replayed decisions are scored by ``metrics.py`` on a daily mark-to-market equity curve,
rebuilt from Nautilus's fills: Nautilus's own statistics judge closed positions only.

Fill timing differs. A Nautilus market order sent from ``on_bar`` fills at that bar's close
(the exchange has already seen the whole bar), while ours fills at the next bar's open by
default. ``compare_engines`` therefore also replays our decisions through our own account
arithmetic with ``fill="close"``: that column differs from Nautilus only by the fee model
and whole shares, and its gap to our next-open backtest is the cost of waiting overnight.

"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import FeeModel, FillModel
from nautilus_trader.config import LoggingConfig, RiskEngineConfig
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import Bar, BarSpecification, BarType, BookOrder
from nautilus_trader.model.enums import (
    AccountType,
    AggregationSource,
    BarAggregation,
    BookType,
    OmsType,
    OrderSide,
    PriceType,
    TimeInForce,
)
from nautilus_trader.model.events import OrderDenied, OrderFilled, OrderRejected
from nautilus_trader.model.identifiers import InstrumentId, Symbol, TraderId, Venue
from nautilus_trader.model.instruments import Equity, Instrument
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.model.orders import Order
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.trading.strategy import Strategy

from evotrader.backtest import metrics
from evotrader.backtest.costs import IBCosts, Liquidity
from evotrader.backtest.engine import BacktestResult, simulate
from evotrader.data.features import has_volume
from evotrader.env.execution import ExecutionModel
from evotrader.risk.preferences import TradingHours, bar_end_times

VENUE = "SIM"
FILL_TIMING_NOTE = (
    "Fill timing: ours fills a decision at the next bar's open by default; a Nautilus market "
    "order sent from on_bar fills at that bar's close. 'ours (close)' replays the same "
    "decisions with our arithmetic at the close: it differs from Nautilus only by the "
    "commission schedule (ours: basis points; Nautilus: IBKR Fixed, $0.005 a share, $1 "
    "minimum, 1% cap) and whole shares, and its gap to our next-open backtest is the "
    "overnight move between close and next open on every trade. Nautilus's 'fees' are "
    "commissions only; its slippage is inside its fill prices, while ours counts spread and "
    "slippage as fees."
)
MAX_PRICE_DECIMALS = 8
SLIP_RESOLUTION = 1e-5  # slipped prices resolve a tenth of a basis point of the lowest close
_UNLIMITED = 10**9  # shares offered at the slipped price: any replay order fills in full


Slippage = Literal["price", "fee"]


class IBFeeModel(FeeModel):  # type: ignore[misc]  # nautilus_trader: Cython, no stubs
    """Nautilus fee model charging ``IBCosts``'s commission on each fill, plus its slippage
    when ``slippage="fee"`` (with ``"price"`` the fill model moves the price instead)."""

    def __init__(self, costs: IBCosts, slippage: Slippage = "price") -> None:
        super().__init__()
        self.costs, self.slippage = costs, slippage

    def get_commission(
        self, order: Order, fill_qty: Quantity, fill_px: Price, instrument: Instrument
    ) -> Money:
        shares, price = float(fill_qty), float(fill_px)
        fee = self.costs.commission(shares, price)
        if self.slippage == "fee":
            fee += self.costs.slippage(shares, price)
        return Money(fee, instrument.quote_currency)


def whole_shares(target: float, equity: float, price: float) -> float:
    """The one share-rounding rule: ``target`` x ``equity`` at ``price`` in whole shares,
    truncated towards zero (never more exposure than the target)."""
    return float(math.trunc(target * equity / price))


class BarLiquidity:
    """What the venue offers an order on each bar, from ``Liquidity`` and the bars: at most
    ``participation`` x the bar's volume in whole shares, shared by that bar's orders, and
    the impact scale (``ExecutionModel.prices``: fraction of the price per sqrt(share)).

    Bars are keyed by their Nautilus timestamp (ns), the time an order sent from that bar's
    ``on_bar`` carries. ``limited`` is False when the bars carry no volume at all (or the
    liquidity sets no limit): then every bar offers unlimited shares without impact.
    """

    def __init__(self, bars: pd.DataFrame, liquidity: Liquidity) -> None:
        self.limited = liquidity.limits and has_volume(bars)
        stamps = pd.DatetimeIndex(bars.index).asi8.tolist()
        volume = bars["volume"].to_numpy(np.float64)
        share = liquidity.participation if self.limited else None
        cap = np.full(len(bars), math.inf) if share is None else np.floor(share * volume)
        impact = np.zeros(len(bars))
        if self.limited and liquidity.impact_coef > 0:
            model = ExecutionModel(
                0.0, 0.0, 0.0, liquidity.impact_coef, liquidity.impact_window, fill="close"
            )
            impact = model.prices(bars).impact
        self._cap: dict[int, float] = dict(zip(stamps, cap.tolist(), strict=True))
        self._impact: dict[int, float] = dict(zip(stamps, impact.tolist(), strict=True))
        self._taken: dict[int, float] = {}

    def available(self, ns: int) -> float:
        """Whole shares still on offer on the bar stamped ``ns`` (infinity: no limit)."""
        return self._cap[ns] - self._taken.get(ns, 0.0)

    def take(self, ns: int, wanted: float) -> tuple[float, float]:
        """Reserve up to ``wanted`` shares of the bar's offer: (shares, impact as a fraction
        of the price, for that size)."""
        shares = min(wanted, self.available(ns))
        self._taken[ns] = self._taken.get(ns, 0.0) + shares
        return shares, self._impact[ns] * math.sqrt(shares)


class SlippageFillModel(FillModel):  # type: ignore[misc]  # nautilus_trader: no stubs
    """Market orders fill against one simulated level at the best price moved ``bps``
    against the order. Its size is unlimited, or with ``liquidity`` what the order's bar
    still offers, its price moved further by the impact of that size. Deterministic:
    Nautilus's own slippage is a random one-tick jump."""

    def __init__(self, bps: float, liquidity: BarLiquidity | None = None) -> None:
        state = random.getstate()  # FillModel reseeds Python's global RNG: keep it as it was
        super().__init__()
        random.setstate(state)
        self.bps, self.liquidity = bps, liquidity

    def get_orderbook_for_fill_simulation(
        self, instrument: Instrument, order: Order, best_bid: Price, best_ask: Price
    ) -> OrderBook:
        shares, impact = float(_UNLIMITED), 0.0
        if self.liquidity is not None:
            shares, impact = self.liquidity.take(order.ts_init, order.leaves_qty.as_double())
            if shares < 1:
                raise RuntimeError(f"an order reached {instrument.id} on a bar with no liquidity")
        shift = self.bps / 1e4 + impact
        book = OrderBook(instrument_id=instrument.id, book_type=BookType.L2_MBP)
        size = Quantity(shares, instrument.size_precision)
        if order.side == OrderSide.BUY:  # the order takes the asks
            side, price = OrderSide.SELL, best_ask.as_double() * (1 + shift)
        else:
            side, price = OrderSide.BUY, best_bid.as_double() * (1 - shift)
        book.add(BookOrder(side, Price(price, instrument.price_precision), size, 1), 0, 0)
        return book


def price_decimals(bars: pd.DataFrame) -> int:
    """Fewest decimals (at least 2, at most MAX_PRICE_DECIMALS) that hold every price."""
    prices = bars[["open", "high", "low", "close"]].to_numpy(np.float64)
    for decimals in range(2, MAX_PRICE_DECIMALS):
        if np.allclose(np.round(prices, decimals), prices, rtol=0.0, atol=1e-9):
            return decimals
    return MAX_PRICE_DECIMALS


def fill_decimals(bars: pd.DataFrame) -> int:
    """Decimals for fills moved off the closes: every price's own (``price_decimals``), and
    enough to resolve ``SLIP_RESOLUTION`` of the lowest close, at most MAX_PRICE_DECIMALS."""
    lowest = float(bars["close"].min())
    needed = math.ceil(-math.log10(lowest * SLIP_RESOLUTION)) if lowest > 0 else 0
    return min(max(price_decimals(bars), needed), MAX_PRICE_DECIMALS)


def equity_instrument(symbol: str, decimals: int = 2, venue: str = VENUE) -> Equity:
    """A stock traded in whole shares, priced with ``decimals`` decimals (cents by default).
    Nautilus ids take letters and digits only: anything else is dropped from ``symbol``."""
    name = re.sub(r"[^A-Za-z0-9]", "", symbol) or "LEG"
    return Equity(
        instrument_id=InstrumentId(Symbol(name), Venue(venue)),
        raw_symbol=Symbol(name),
        currency=USD,
        price_precision=decimals,
        price_increment=Price(10.0**-decimals, decimals),
        lot_size=Quantity.from_int(1),
        ts_event=0,
        ts_init=0,
    )


def bar_type(instrument: Instrument, index: pd.DatetimeIndex) -> BarType:
    """A label for Nautilus (it trades the bars as given): daily, else one-minute."""
    spacing = pd.Series(index).diff().median()
    aggregation = BarAggregation.MINUTE
    if len(index) < 2 or spacing >= pd.Timedelta(days=1):
        aggregation = BarAggregation.DAY
    spec = BarSpecification(1, aggregation, PriceType.LAST)
    return BarType(instrument.id, spec, AggregationSource.EXTERNAL)


def nautilus_bars(bars: pd.DataFrame, kind: BarType, instrument: Instrument) -> list[Bar]:
    """Bars (the bars contract) as Nautilus bars, stamped with ``bars``' index."""
    frame = bars[["open", "high", "low", "close", "volume"]]
    nautilus: list[Bar] = BarDataWrangler(kind, instrument).process(frame)
    return nautilus


def new_engine(
    instrument: Instrument,
    bars: list[Bar],
    initial_cash: float,
    fee_model: FeeModel,
    fill_model: FillModel,
    leverage: float = 1.0,
) -> BacktestEngine:
    """A quiet BacktestEngine with one netting margin account in USD at ``instrument``'s
    venue (shorts and flips need no cash borrowing), holding ``bars``. Its risk engine is
    bypassed: sizing is the caller's targets, not a margin check."""
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("EVOTRADER-001"),
            logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
            risk_engine=RiskEngineConfig(bypass=True),
        )
    )
    engine.add_venue(
        instrument.id.venue,
        OmsType.NETTING,
        AccountType.MARGIN,
        [Money(initial_cash, USD)],
        base_currency=USD,
        default_leverage=Decimal(str(leverage)),
        fee_model=fee_model,
        fill_model=fill_model,
    )
    engine.add_instrument(instrument)
    engine.add_data(bars)
    return engine


class TargetReplay(Strategy):  # type: ignore[misc]  # nautilus_trader: no stubs
    """On bar k (from bar ``first``), trade to ``targets[k]`` x equity in whole shares
    (``whole_shares``) with a market order when the target changes, as our engine does.

    Equity is the account's cash plus the held shares at the bar's close, kept from the
    fills; ruin (equity <= 0) ends trading. Each fill is recorded with the bar it filled on
    (Nautilus fills a market order sent from ``on_bar`` within that bar, at its close), the
    decision it serves (``order``, numbered from 0) and that decision's bar (``decided``).

    With a limited ``liquidity`` orders go immediate-or-cancel: what the bar cannot fill is
    cancelled by Nautilus and sent again on the next bar with liquidity, until the position
    reaches the decided size or a new decision replaces it; ``orders`` records each
    decision's bar and signed shares wanted.
    """

    def __init__(
        self,
        kind: BarType,
        targets: Sequence[float] | np.ndarray,
        cash: float,
        first: int = 0,
        liquidity: BarLiquidity | None = None,
    ) -> None:
        super().__init__()
        self.kind, self.targets, self.first = kind, [float(t) for t in targets], first
        self.liquidity = liquidity if liquidity is not None and liquidity.limited else None
        self.bar, self.target, self.goal = -1, 0.0, 0.0
        self.cash, self.units = cash, 0.0
        self.fills: list[dict[str, Any]] = []
        self.orders: list[dict[str, Any]] = []
        self.problems: list[str] = []

    def on_start(self) -> None:
        self.subscribe_bars(self.kind)

    def on_bar(self, bar: Bar) -> None:
        self.bar += 1
        k = self.bar
        if k < self.first or k >= len(self.targets):
            return
        close = bar.close.as_double()
        equity = self.cash + self.units * close
        if equity <= 0:  # ruin ends trading, as in our engine
            return
        if self.targets[k] != self.target:
            self.target = self.targets[k]
            self.goal = whole_shares(self.target, equity, close)
            if self.goal != self.units:
                self.orders.append({"decided": k, "wanted": self.goal - self.units})
        delta = self.goal - self.units
        if not delta:
            return
        force = TimeInForce.GTC
        if self.liquidity is not None:
            if self.liquidity.available(bar.ts_event) < 1:
                return  # nothing on offer this bar: the order waits
            force = TimeInForce.IOC
        side = OrderSide.BUY if delta > 0 else OrderSide.SELL
        quantity = Quantity.from_int(int(abs(delta)))
        order = self.order_factory.market(
            self.kind.instrument_id, side, quantity, time_in_force=force
        )
        self.submit_order(order)

    def account_equity(self) -> float:
        """Nautilus's own view: account balance plus unrealised P&L at the last price."""
        venue = self.kind.instrument_id.venue
        account = self.portfolio.account(venue)
        unrealised = self.portfolio.unrealized_pnl(self.kind.instrument_id)
        return float(account.balance_total(USD).as_double()) + (
            unrealised.as_double() if unrealised is not None else 0.0
        )

    def on_order_filled(self, event: OrderFilled) -> None:
        shares = float(round(event.last_qty.as_double()))  # whole: exact, as a float may not be
        units = shares if event.order_side == OrderSide.BUY else -shares
        price, cost = event.last_px.as_double(), event.commission.as_double()
        self.units += units
        self.cash -= units * price + cost
        order = len(self.orders) - 1
        self.fills.append(
            {
                "bar": self.bar,
                "ns": event.ts_event,
                "units": units,
                "price": price,
                "cost": cost,
                "order": order,
                "decided": self.orders[order]["decided"],
            }
        )

    def on_order_rejected(self, event: OrderRejected) -> None:
        self.problems.append(f"rejected: {event.reason}")

    def on_order_denied(self, event: OrderDenied) -> None:
        self.problems.append(f"denied: {event.reason}")


FILL_COLUMNS = ("bar", "ns", "units", "price", "cost", "order", "decided")


@dataclass(frozen=True)
class TargetFills:
    """What Nautilus did with the targets: one row per fill (the bar it filled on, signed
    shares, price, cost paid, the decision it serves and that decision's bar), one row per
    decision that traded (its bar and signed shares wanted), whether a participation limit
    or impact applied (``limited``), and Nautilus's own final account equity."""

    fills: pd.DataFrame
    account_equity: float
    orders: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["decided", "wanted"])
    )
    limited: bool = False

    def holdings(self, n: int, cash: float) -> tuple[np.ndarray, np.ndarray]:
        """Cash and shares held after each of ``n`` bars' closes, starting from ``cash``:
        a fill lands at the close of the bar it filled on."""
        at = self.fills["bar"].to_numpy(np.int64)
        units = self.fills["units"].to_numpy(np.float64)
        paid = units * self.fills["price"].to_numpy(np.float64) + self.fills["cost"].to_numpy()
        cash_flow, traded = np.zeros(n), np.zeros(n)
        np.add.at(cash_flow, at, -paid)
        np.add.at(traded, at, units)
        return cash + np.cumsum(cash_flow), np.cumsum(traded)


def run_targets(
    bars: pd.DataFrame,
    targets: Sequence[float] | np.ndarray,
    symbol: str,
    costs: IBCosts,
    cash: float,
    *,
    first: int = 0,
    slippage: Slippage = "price",
    leverage: float = 1.0,
    liquidity: Liquidity | None = None,
    sub_penny: bool = False,
) -> TargetFills:
    """The one engine path: trade ``targets`` (one per bar, or per bar but the last) over
    ``bars`` in NautilusTrader with ``costs``, from bar ``first`` on, whole shares; with
    ``liquidity``, orders fill within each bar's participation limit and pay its impact (in
    the fill price, whatever ``slippage`` says).
    ``sub_penny``: prices carry ``fill_decimals`` (slippage never rounds away; Nautilus's
    own account then rounds each fill's cash to the cent) instead of the bars' decimals."""
    decimals = fill_decimals(bars) if sub_penny else price_decimals(bars)
    instrument = equity_instrument(symbol, decimals)
    kind = bar_type(instrument, pd.DatetimeIndex(bars.index))
    offer = BarLiquidity(bars, liquidity) if liquidity is not None else None
    bps = costs.slippage_bps if slippage == "price" else 0.0
    fill_model = SlippageFillModel(bps, offer if offer is not None and offer.limited else None)
    engine = new_engine(
        instrument,
        nautilus_bars(bars, kind, instrument),
        cash,
        IBFeeModel(costs, slippage),
        fill_model,
        leverage,
    )
    strategy = TargetReplay(kind, targets, cash, first, offer)
    engine.add_strategy(strategy)
    try:
        engine.run()
        if strategy.problems:
            raise RuntimeError(f"nautilus refused orders of the replay: {strategy.problems[:3]}")
        account_equity = strategy.account_equity()
    finally:
        engine.dispose()
    fills = pd.DataFrame(strategy.fills, columns=list(FILL_COLUMNS))
    at = fills["bar"].to_numpy(np.int64)
    if (pd.DatetimeIndex(bars.index).asi8[at] != fills["ns"].to_numpy(np.int64)).any():
        raise RuntimeError(f"nautilus filled {symbol} away from its bars' closes")
    return TargetFills(
        fills.drop(columns="ns"),
        account_equity,
        pd.DataFrame(strategy.orders, columns=["decided", "wanted"]),
        limited=offer is not None and offer.limited,
    )


@dataclass(frozen=True)
class EngineRun:
    """One engine's account over the replayed bars, scored by metrics.py."""

    equity: pd.Series
    positions: pd.Series
    fills: pd.DataFrame
    metrics: dict[str, float]


@dataclass(frozen=True)
class NautilusReplay(EngineRun):
    account_equity: float = float("nan")  # Nautilus's own final equity, to cross-check


def decisions(result: BacktestResult) -> np.ndarray:
    """The target decided at each bar but the last: what was held over the next bar."""
    held: np.ndarray = result.positions.to_numpy(np.float64)[1:]
    return held


def replay_in_nautilus(
    bars: pd.DataFrame,
    targets: np.ndarray,
    symbol: str,
    *,
    initial_cash: float,
    periods_per_year: float,
    costs: IBCosts,
    hours: TradingHours | None = None,
    leverage: float = 1.0,
) -> NautilusReplay:
    """Trade ``targets`` (one per bar but the last) over ``bars`` in Nautilus, slippage in
    the fill prices; bars are stamped when each closed (``hours``).

    Equity is marked at every close before that close's fills, as ours is with
    ``fill="close"``: the first mark is the initial cash, a trade shows from the next mark."""
    _check_targets(bars, targets)
    ends = bar_end_times(pd.DatetimeIndex(bars.index), hours or TradingHours())
    stamped = bars.set_axis(ends, axis=0)
    done = run_targets(stamped, targets, symbol, costs, initial_cash, leverage=leverage)
    fills, at = done.fills, done.fills["bar"].to_numpy(np.int64)
    close = bars["close"].to_numpy(np.float64)
    cash, units = done.holdings(len(bars), initial_cash)  # after each close
    after = cash + units * close
    equity = np.concatenate(([initial_cash], cash[:-1] + units[:-1] * close[1:]))
    weight = np.concatenate(([0.0], (units * close / after)[:-1]))  # held over each bar
    fills = fills.set_index(pd.DatetimeIndex(bars.index[at], name="timestamp"))
    fills = fills.drop(columns=["bar", "order", "decided"])
    run = _score(bars.index, equity, weight, fills, periods_per_year, held_from=at + 1)
    return NautilusReplay(**vars(run), account_equity=done.account_equity)


def replay_in_ours(
    bars: pd.DataFrame,
    targets: np.ndarray,
    execution: ExecutionModel,
    *,
    initial_cash: float,
    periods_per_year: float,
) -> EngineRun:
    """Trade ``targets`` over ``bars`` with our account arithmetic (``simulate``)."""
    _check_targets(bars, targets)
    sim = simulate(targets, execution.prices(bars), 0, execution.linear_rate, initial_cash)
    fill_bar = sim.fill_decisions + (1 if execution.fill == "next_open" else 0)
    fills = pd.DataFrame(
        {"units": sim.fill_units, "price": sim.fill_prices, "cost": sim.fill_costs},
        index=pd.DatetimeIndex(bars.index[fill_bar], name="timestamp"),
    )
    return _score(
        bars.index, sim.equity, sim.positions, fills, periods_per_year, sim.fill_decisions + 1
    )


def compare_engines(
    result: BacktestResult,
    bars: pd.DataFrame,
    symbol: str,
    execution: ExecutionModel,
    *,
    initial_cash: float,
    periods_per_year: float,
    costs: IBCosts | None = None,
    hours: TradingHours | None = None,
) -> dict[str, EngineRun]:
    """Our backtest's decisions through three accounts on the same bars: ours as backtested,
    ours filling at the close, and Nautilus (at the close, IB-like costs). ``costs`` None
    takes IBKR Fixed with the execution model's half-spread plus slippage, so both engines
    pay the same price impact."""
    if costs is None:
        costs = IBCosts(slippage_bps=execution.half_spread_bps + execution.slippage_bps)
    bars = bars.loc[result.equity.index]
    targets = decisions(result)
    money = {"initial_cash": initial_cash, "periods_per_year": periods_per_year}
    runs = {
        f"ours ({execution.fill.replace('_', ' ')})": replay_in_ours(
            bars, targets, execution, **money
        )
    }
    if execution.fill != "close":
        runs["ours (close)"] = replay_in_ours(
            bars, targets, replace(execution, fill="close"), **money
        )
    runs["nautilus (close)"] = replay_in_nautilus(
        bars, targets, symbol, costs=costs, hours=hours, **money
    )
    return runs


def _score(
    index: pd.DatetimeIndex,
    equity: np.ndarray,
    positions: np.ndarray,
    fills: pd.DataFrame,
    periods_per_year: float,
    held_from: np.ndarray,
) -> EngineRun:
    """Metrics of an account marked at every close; a position entered by a fill is held
    from the bar after the decision (``held_from``), whose entry price is the fill's."""
    entry_price = np.full(len(index), np.nan)
    entry_price[held_from] = fills["price"].to_numpy()
    trades = metrics.round_trips(index, positions, equity, entry_price)
    series = pd.Series(equity, index=index, name="equity")
    summary = metrics.summarize(
        series,
        positions,
        trades,
        fees=float(fills["cost"].sum()),
        traded_notional=float((fills["units"].abs() * fills["price"]).sum()),
        periods_per_year=periods_per_year,
    )
    held = pd.Series(positions, index=index, name="position")
    return EngineRun(series, held, fills, summary)


def _check_targets(bars: pd.DataFrame, targets: np.ndarray) -> None:
    if len(targets) != len(bars) - 1:
        raise ValueError(
            f"need one target per bar but the last ({len(bars) - 1}), got {len(targets)}"
        )
    if not np.all(np.isfinite(targets)):
        raise ValueError("targets contain NaN or infinite values")
