"""Replay a backtest's decisions through NautilusTrader's BacktestEngine, as a second opinion.

The target positions our engine decided on each bar become market orders of a small
Nautilus strategy, filled by Nautilus's own matching engine with IB-like costs: IBKR's Fixed
commission ($0.005 a share, $1 minimum, at most 1% of the trade's value) and slippage in
basis points of the fill price (by default our execution model's half-spread plus slippage).
Orders are in whole shares. Both engines are then scored by ``metrics.py`` on a daily
mark-to-market equity curve: Nautilus's own statistics judge closed positions only.

Fill timing differs. A Nautilus market order sent from ``on_bar`` fills at that bar's close
(the exchange has already seen the whole bar), while ours fills at the next bar's open by
default. ``compare_engines`` therefore also replays our decisions through our own account
arithmetic with ``fill="close"``: that column differs from Nautilus only by the fee model
and whole shares, and its gap to our next-open backtest is the cost of waiting overnight.

The building blocks (instrument, bars, fee and fill models, engine) are public so the
strategy track's NautilusTrader validation can reuse them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import FeeModel, FillModel
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import Bar, BarType, BookOrder
from nautilus_trader.model.enums import AccountType, BookType, OmsType, OrderSide
from nautilus_trader.model.events import OrderDenied, OrderFilled, OrderRejected
from nautilus_trader.model.identifiers import InstrumentId, Symbol, TraderId, Venue
from nautilus_trader.model.instruments import Equity, Instrument
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.model.orders import Order
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.trading.strategy import Strategy

from evotrader.backtest import metrics
from evotrader.backtest.engine import BacktestResult, simulate
from evotrader.env.execution import ExecutionModel
from evotrader.risk.preferences import TradingHours, bar_end_times

VENUE = "SIM"
FILL_TIMING_NOTE = (
    "Fill timing: ours fills a decision at the next bar's open by default; a Nautilus market "
    "order sent from on_bar fills at that bar's close. 'ours (close)' replays the same "
    "decisions with our arithmetic at the close: it differs from Nautilus only by the "
    "commission schedule (ours: basis points; Nautilus: IBKR Fixed, $0.005 a share, $1 "
    "minimum) and whole shares, and its gap to our next-open backtest is the overnight move "
    "between close and next open on every trade. Nautilus's 'fees' are commissions only; its "
    "slippage is inside its fill prices, while ours counts spread and slippage as fees."
)
MAX_PRICE_DECIMALS = 8
_UNLIMITED = 10**9  # shares offered at the slipped price: any replay order fills in full


@dataclass(frozen=True)
class NautilusConfig:
    """IB-like costs for the replay. ``slippage_bps`` None takes the execution model's
    half-spread plus slippage, so both engines pay the same price impact."""

    commission_per_share: float = 0.005
    min_commission: float = 1.0
    max_commission_pct: float = 1.0  # of the trade's value
    slippage_bps: float | None = None
    leverage: float = 1.0  # margin account: shorts and flips need no cash borrowing

    def __post_init__(self) -> None:
        for name in ("commission_per_share", "min_commission", "max_commission_pct"):
            if getattr(self, name) < 0:
                raise ValueError(f"nautilus {name} must be >= 0, got {getattr(self, name)}")
        if self.slippage_bps is not None and not 0 <= self.slippage_bps < 1e4:
            raise ValueError(
                f"nautilus slippage_bps must be in [0, 10000), got {self.slippage_bps}"
            )
        if not self.leverage > 0:
            raise ValueError(f"nautilus leverage must be > 0, got {self.leverage}")


class IBFeeModel(FeeModel):
    """IBKR Fixed pricing for US stocks: per share, with a minimum and a cap per fill."""

    def __init__(self, per_share: float, minimum: float, max_pct: float) -> None:
        super().__init__()
        self.per_share, self.minimum, self.max_pct = per_share, minimum, max_pct

    def get_commission(
        self, order: Order, fill_qty: Quantity, fill_px: Price, instrument: Instrument
    ) -> Money:
        shares, price = float(fill_qty), float(fill_px)
        fee = min(max(self.per_share * shares, self.minimum), self.max_pct / 100 * shares * price)
        return Money(fee, instrument.quote_currency)


class SlippageFillModel(FillModel):
    """Market orders fill at the best price moved ``bps`` against the order, with unlimited
    size there. Deterministic: Nautilus's own slippage is a random one-tick jump."""

    def __init__(self, bps: float) -> None:
        state = random.getstate()  # FillModel reseeds Python's global RNG: keep it as it was
        super().__init__()
        random.setstate(state)
        self.bps = bps

    def get_orderbook_for_fill_simulation(
        self, instrument: Instrument, order: Order, best_bid: Price, best_ask: Price
    ) -> OrderBook:
        book = OrderBook(instrument_id=instrument.id, book_type=BookType.L2_MBP)
        size = Quantity(_UNLIMITED, instrument.size_precision)
        shift = self.bps / 1e4
        for number, (side, price) in enumerate(
            ((OrderSide.BUY, best_bid.as_double() * (1 - shift)),
             (OrderSide.SELL, best_ask.as_double() * (1 + shift))),
            start=1,
        ):  # fmt: skip
            level = Price(price, instrument.price_precision)
            book.add(BookOrder(side, level, size, number), 0, 0)
        return book


def price_decimals(bars: pd.DataFrame) -> int:
    """Fewest decimals (at least 2, at most MAX_PRICE_DECIMALS) that hold every price."""
    prices = bars[["open", "high", "low", "close"]].to_numpy(np.float64)
    for decimals in range(2, MAX_PRICE_DECIMALS):
        if np.allclose(np.round(prices, decimals), prices, rtol=0.0, atol=1e-9):
            return decimals
    return MAX_PRICE_DECIMALS


def equity_instrument(symbol: str, decimals: int = 2, venue: str = VENUE) -> Equity:
    """A stock traded in whole shares, priced with ``decimals`` decimals (cents by default)."""
    return Equity(
        instrument_id=InstrumentId(Symbol(symbol), Venue(venue)),
        raw_symbol=Symbol(symbol),
        currency=USD,
        price_precision=decimals,
        price_increment=Price(10.0**-decimals, decimals),
        lot_size=Quantity.from_int(1),
        ts_event=0,
        ts_init=0,
    )


def bar_type(instrument: Instrument) -> BarType:
    return BarType.from_str(f"{instrument.id}-1-DAY-LAST-EXTERNAL")


def nautilus_bars(bars: pd.DataFrame, instrument: Instrument, ends: pd.DatetimeIndex) -> list[Bar]:
    """Bars (the bars contract) as Nautilus bars stamped at ``ends``, when each closed."""
    if len(ends) != len(bars):
        raise ValueError(f"need one end time per bar, got {len(ends)} for {len(bars)} bars")
    frame = bars[["open", "high", "low", "close", "volume"]].copy()
    frame.index = pd.DatetimeIndex(ends)
    return BarDataWrangler(bar_type(instrument), instrument).process(frame)


def new_engine(
    instrument: Instrument,
    bars: list[Bar],
    initial_cash: float,
    fee_model: FeeModel,
    fill_model: FillModel,
    leverage: float = 1.0,
) -> BacktestEngine:
    """A quiet BacktestEngine with one netting margin account in USD at ``instrument``'s
    venue, holding ``bars``."""
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("EVOTRADER-001"),
            logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
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


class TargetReplay(Strategy):
    """On bar k, trade to ``targets[k]`` x equity (whole shares) when the target changes."""

    def __init__(self, instrument: Instrument, targets: Iterable[float]) -> None:
        super().__init__()
        self.instrument, self.targets = instrument, list(targets)
        self.bars_seen, self.target = 0, 0.0
        self.fills: list[dict[str, Any]] = []
        self.problems: list[str] = []

    def on_start(self) -> None:
        self.subscribe_bars(bar_type(self.instrument))

    def on_bar(self, bar: Bar) -> None:
        k, self.bars_seen = self.bars_seen, self.bars_seen + 1
        if k >= len(self.targets) or self.targets[k] == self.target:
            return
        self.target = self.targets[k]
        close = bar.close.as_double()
        held = float(self.portfolio.net_position(self.instrument.id))
        delta = float(np.trunc(self.target * self.equity() / close)) - held
        if delta:
            side = OrderSide.BUY if delta > 0 else OrderSide.SELL
            quantity = Quantity(abs(delta), self.instrument.size_precision)
            self.submit_order(self.order_factory.market(self.instrument.id, side, quantity))

    def equity(self) -> float:
        """Nautilus's own view: account balance plus unrealised P&L at the last price."""
        account = self.portfolio.account(self.instrument.id.venue)
        unrealised = self.portfolio.unrealized_pnl(self.instrument.id)
        return account.balance_total(USD).as_double() + (
            unrealised.as_double() if unrealised is not None else 0.0
        )

    def on_order_filled(self, event: OrderFilled) -> None:
        self.fills.append(
            {
                "ts": pd.Timestamp(event.ts_event, tz="UTC"),
                "units": float(event.last_qty) * (1 if event.order_side == OrderSide.BUY else -1),
                "price": event.last_px.as_double(),
                "cost": event.commission.as_double(),
            }
        )

    def on_order_rejected(self, event: OrderRejected) -> None:
        self.problems.append(f"rejected: {event.reason}")

    def on_order_denied(self, event: OrderDenied) -> None:
        self.problems.append(f"denied: {event.reason}")


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
    return result.positions.to_numpy(np.float64)[1:]


def replay_in_nautilus(
    bars: pd.DataFrame,
    targets: np.ndarray,
    symbol: str,
    *,
    initial_cash: float,
    periods_per_year: float,
    config: NautilusConfig,
    slippage_bps: float,
    hours: TradingHours | None = None,
) -> NautilusReplay:
    """Trade ``targets`` (one per bar but the last) over ``bars`` in Nautilus.

    Equity is marked at every close before that close's fills, as ours is with
    ``fill="close"``: the first mark is the initial cash, a trade shows from the next mark."""
    _check_targets(bars, targets)
    instrument = equity_instrument(symbol, price_decimals(bars))
    ends = bar_end_times(pd.DatetimeIndex(bars.index), hours or TradingHours())
    engine = new_engine(
        instrument,
        nautilus_bars(bars, instrument, ends),
        initial_cash,
        IBFeeModel(config.commission_per_share, config.min_commission, config.max_commission_pct),
        SlippageFillModel(slippage_bps),
        config.leverage,
    )
    strategy = TargetReplay(instrument, targets)
    engine.add_strategy(strategy)
    try:
        engine.run()
        if strategy.problems:
            raise RuntimeError(f"nautilus refused orders of the replay: {strategy.problems[:3]}")
        account_equity = strategy.equity()
    finally:
        engine.dispose()
    fills = pd.DataFrame(strategy.fills, columns=["ts", "units", "price", "cost"])
    at = ends.get_indexer(pd.DatetimeIndex(fills["ts"]))
    if (at < 0).any():
        raise RuntimeError("nautilus filled an order away from a bar's close")
    close = bars["close"].to_numpy(np.float64)
    cash_flow = np.zeros(len(bars))
    traded = np.zeros(len(bars))
    np.add.at(cash_flow, at, -(fills["units"] * fills["price"] + fills["cost"]).to_numpy())
    np.add.at(traded, at, fills["units"].to_numpy())
    cash, units = initial_cash + np.cumsum(cash_flow), np.cumsum(traded)  # after each close
    after = cash + units * close
    equity = np.concatenate(([initial_cash], cash[:-1] + units[:-1] * close[1:]))
    weight = np.concatenate(([0.0], (units * close / after)[:-1]))  # held over each bar
    fills = fills.set_index(pd.DatetimeIndex(bars.index[at], name="timestamp")).drop(columns="ts")
    run = _score(bars.index, equity, weight, fills, periods_per_year, held_from=at + 1)
    return NautilusReplay(**vars(run), account_equity=account_equity)


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
    config: NautilusConfig | None = None,
    hours: TradingHours | None = None,
) -> dict[str, EngineRun]:
    """Our backtest's decisions through three accounts on the same bars: ours as backtested,
    ours filling at the close, and Nautilus (at the close, IB-like costs)."""
    config = config or NautilusConfig()
    bars = bars.loc[result.equity.index]
    targets = decisions(result)
    slippage = config.slippage_bps
    if slippage is None:
        slippage = execution.half_spread_bps + execution.slippage_bps
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
        bars, targets, symbol, config=config, slippage_bps=slippage, hours=hours, **money
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
