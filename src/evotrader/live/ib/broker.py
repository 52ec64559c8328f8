"""``IBKRBroker``: the ``Broker`` interface on TWS or IB Gateway, composed of its parts.

Safety rules it enforces rather than trusts:

- Paper by default. Without ``live=True`` it refuses IB's live ports (7496, 4001) and any
  account that is not a paper account (paper ids start with "D").
- No duplicate orders: ``orders`` looks every client reference up at IB before sending.
- Closed bars only, each once, in order: ``bars``.
- One connect attempt per ``connect``: the runner owns the one retry loop
  (``evotrader.live.retry``), so waits never multiply.
- IB errors become the interface's errors with IB's code and message; the IB API has no
  credentials, and account ids are masked in logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pandas as pd

from evotrader.core import trading
from evotrader.live.broker import Broker
from evotrader.live.ib.bars import BarFeed
from evotrader.live.ib.config import IBKRConfig, mask_account
from evotrader.live.ib.connection import Connection, Contracts
from evotrader.live.ib.orders import OrderDesk
from evotrader.live.session import BROKERS, BrokerSetup, LiveOptions, SetupError
from evotrader.risk.preferences import Preferences, TradingHours

log = logging.getLogger(__name__)


class IBKRBroker(Broker):
    """Interactive Brokers through TWS / IB Gateway. See the module docstring for the rules."""

    name = "ibkr"

    def __init__(
        self,
        config: IBKRConfig | None = None,
        *,
        clock: Callable[[], pd.Timestamp] | None = None,
        hours: TradingHours | None = None,
    ) -> None:
        self.config = config or IBKRConfig.from_env()
        self._clock = clock or (lambda: pd.Timestamp.now(tz="UTC"))
        self.hours = hours or TradingHours()
        self.connection = Connection(self.config)
        self.contracts = Contracts(self.connection)
        self.bars = BarFeed(self.connection, self.contracts, self.now, self.hours)
        self.orders = OrderDesk(self.connection, self.contracts, self.now)

    @property
    def is_paper(self) -> bool:
        return not self.config.live

    def connect(self) -> None:
        if self.is_connected():
            return
        self.connection.connect()
        positions = self.positions()
        log.info(
            "IBKR: connected to %s, %s account %s; synced %d positions (%s), %d open orders, "
            "%d executions",
            self.config.where,
            "paper" if self.is_paper else "LIVE",
            mask_account(self.connection.account_id),
            len(positions),
            ", ".join(f"{p.symbol} {p.quantity:g}" for p in positions.values()) or "flat",
            len(self.open_orders()),
            len(self.connection.ib.fills()),
        )

    def disconnect(self) -> None:
        self.connection.disconnect()

    def is_connected(self) -> bool:
        return self.connection.is_connected()

    def now(self) -> pd.Timestamp:
        return self._clock()

    def wait(self, seconds: float) -> None:
        self.connection.wait(seconds)

    def qualify(self, instrument: trading.Instrument) -> trading.Instrument:
        return self.contracts.qualify(instrument)

    def history(self, instrument: trading.Instrument, count: int) -> pd.DataFrame:
        return self.bars.history(instrument, count)

    def subscribe(self, instrument: trading.Instrument) -> None:
        self.bars.subscribe(instrument)

    def next_bar(self, timeout: float) -> trading.Bar | None:
        return self.bars.next_bar(timeout)

    def place_order(self, request: trading.OrderRequest) -> trading.OrderState:
        return self.orders.place_order(request)

    def cancel_order(self, client_ref: str) -> trading.OrderState:
        return self.orders.cancel_order(client_ref)

    def order_state(self, client_ref: str) -> trading.OrderState | None:
        return self.orders.order_state(client_ref)

    def open_orders(self) -> list[trading.OrderState]:
        return self.orders.open_orders()

    def fills(self) -> list[trading.Fill]:
        return self.orders.fills()

    def positions(self) -> dict[str, trading.Position]:
        return self.orders.positions()

    def account(self) -> trading.Account:
        return self.orders.account()


def from_setup(setup: BrokerSetup) -> IBKRBroker:
    """The session's IBKR broker (``ibkr_broker`` of its options and preferences)."""
    return ibkr_broker(setup.options, setup.prefs)


def ibkr_broker(options: LiveOptions, prefs: Preferences) -> IBKRBroker:
    """An IBKR broker for a session's options: ``IBKR_*`` settings under the flags, daily
    bars closing at the preferences' session end (a basket bot builds its own so). ib_async's
    own loggers stay at WARNING, so its INFO lines (which print account ids) never show."""
    for name in ("ib_async", "ib_insync"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        config = IBKRConfig.from_env(
            live=options.live,
            host=options.host,
            port=options.port,
            client_id=options.client_id,
            bar_size=options.bar_size,
        )
    except ValueError as error:
        raise SetupError(str(error)) from error
    return IBKRBroker(config, hours=prefs.trading_hours)


BROKERS.register("ibkr", from_setup, __name__)
