"""The one broker interface the live runner talks to, and its errors.

The values that cross it (orders, fills, positions, bars, ...) are ``evotrader.core.trading``.

``SimBroker`` (offline replay with the shared execution model) and ``IBKRBroker`` (TWS or
IB Gateway through ib_async, ``evotrader.live.ib``) both implement ``Broker``, so the
runner, the risk engine and the journal never know which one they hold. The interface is
synchronous and pull-based: the runner asks for the next closed bar, then for order states,
fills, positions and the account. Pulling keeps the runner single-threaded and its journal
writes in order.

Idempotency is the broker's job: every order carries a client reference id (IB's
``orderRef``); ``place_order`` with a reference the broker already knows returns that
order's state and never sends a second order, so a restart or a reconnect that replays an
order from the journal cannot duplicate it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import pandas as pd

from evotrader.core import trading

if TYPE_CHECKING:
    from evotrader.live.journal import Journal


class BrokerError(RuntimeError):
    """A broker call failed; the message names the broker, the call and the reason."""


class BrokerDisconnected(BrokerError):
    """The connection is down; reconnect (with backoff), reconcile, then carry on."""


class UnknownInstrument(BrokerError):
    """The broker cannot resolve the instrument (no such contract, or ambiguous)."""


class FeedEnded(BrokerError):
    """A finite feed (a replay) has no more bars; live feeds never raise this."""


class Broker(ABC):
    """What the live runner needs from any broker. All times are tz-aware UTC.

    Every call may raise ``BrokerDisconnected``. ``connect`` tries once: the runner alone
    retries, with the one backoff policy of ``evotrader.live.retry``, then reconciles from
    ``open_orders``, ``fills`` and ``positions``.
    """

    name: str = "broker"

    @property
    @abstractmethod
    def is_paper(self) -> bool:
        """True for simulated and paper accounts; the runner refuses real money without
        the explicit live flags."""

    @abstractmethod
    def connect(self) -> None:
        """Connect (or reconnect); idempotent when already connected."""

    @abstractmethod
    def disconnect(self) -> None: ...

    @abstractmethod
    def is_connected(self) -> bool: ...

    @abstractmethod
    def now(self) -> pd.Timestamp:
        """The broker's clock: wall time for a live broker, replay time for the sim."""

    @abstractmethod
    def qualify(self, instrument: trading.Instrument) -> trading.Instrument:
        """Resolve the instrument to exactly one tradable contract (sets ``broker_id``);
        raises ``UnknownInstrument`` otherwise."""

    @abstractmethod
    def history(self, instrument: trading.Instrument, count: int) -> pd.DataFrame:
        """The last ``count`` closed bars (fewer if the broker has fewer) as a contract
        DataFrame, for warm-up and for back-filling after a reconnect."""

    @abstractmethod
    def subscribe(self, instrument: trading.Instrument) -> None:
        """Start streaming closed bars of the instrument to ``next_bar``."""

    @abstractmethod
    def next_bar(self, timeout: float) -> trading.Bar | None:
        """The next closed bar, or None when none closed within ``timeout`` seconds.

        Bars come as the broker sends them: the runner, not the broker, rejects stale,
        duplicate and out-of-order ones. A replay raises ``FeedEnded`` when exhausted.
        """

    @abstractmethod
    def place_order(self, request: trading.OrderRequest) -> trading.OrderState:
        """Send the order unless its ``client_ref`` is already known, in which case return
        that order's current state without sending anything."""

    @abstractmethod
    def cancel_order(self, client_ref: str) -> trading.OrderState:
        """Ask to cancel; returns the state after the request (terminal orders unchanged)."""

    @abstractmethod
    def order_state(self, client_ref: str) -> trading.OrderState | None:
        """The order's state, or None when the broker has never seen this reference."""

    @abstractmethod
    def open_orders(self) -> list[trading.OrderState]:
        """Every order still working (submitted or partially filled)."""

    @abstractmethod
    def fills(self) -> list[trading.Fill]:
        """Every execution of this trading session the broker still reports, oldest first."""

    @abstractmethod
    def positions(self) -> dict[str, trading.Position]:
        """Open positions by symbol (zero positions left out)."""

    @abstractmethod
    def account(self) -> trading.Account: ...

    def wait(self, seconds: float) -> None:
        """Pause (reconnect backoff). Brokers with an event loop keep it running meanwhile;
        the sim advances its replay clock instead of sleeping."""
        time.sleep(seconds)

    def resume(self, journal: Journal) -> pd.Timestamp | None:
        """Rebuild what died with the bot from its journal; returns the last bar it had seen.

        A real broker outlives the bot and needs nothing (None); a replay dies with it and
        carries on after the journal's last bar instead of replaying bars already traded."""
        return None
