"""The socket to TWS / IB Gateway and the contracts resolved over it.

``Connection`` runs ib_async synchronously: it pumps the event loop only while a call waits,
so the runner stays single-threaded. It connects once per call (the runner retries), refuses
an account that is not paper unless ``live``, and turns IB's failures into the interface's
errors (``BrokerDisconnected``, ``BrokerError``) with IB's code and message.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import pandas as pd

from evotrader.core.trading import Instrument
from evotrader.live.broker import BrokerDisconnected, BrokerError, UnknownInstrument
from evotrader.live.ib.config import IBKRConfig, mask_account

try:
    import ib_async as ib
except ImportError:  # pragma: no cover - the older name of the same API
    import ib_insync as ib  # type: ignore[no-redef]

__all__ = ["Connection", "Contracts", "ib", "is_notice", "utc"]

log = logging.getLogger(__name__)
T = TypeVar("T")

NOTICE_CODES = frozenset({1102, 2104, 2106, 2107, 2108, 2119, 2158})
UNKNOWN_CONTRACT_CODE = 200


class Connection:
    """One ib_async client: connect, request, wait, with failures translated."""

    def __init__(self, config: IBKRConfig) -> None:
        self.config = config
        self.ib = ib.IB()
        self.ib.RaiseRequestErrors = True
        self.ib.RequestTimeout = config.request_timeout_s
        self.ib.errorEvent += self._log_error
        self.ib.disconnectedEvent += self._log_disconnect
        self.account_id = ""
        self._closing = False

    @property
    def where(self) -> str:
        return self.config.where

    def connect(self) -> None:
        """One attempt; on success the account is chosen and every client's open orders are
        synced (ib_async's start-up sync covers only this client id)."""
        try:
            self.ib.connect(
                self.config.host,
                self.config.port,
                clientId=self.config.client_id,
                timeout=self.config.connect_timeout_s,
                account=self.config.account,
            )
        except OSError as exc:  # refused, timed out, or dropped during the sync
            raise BrokerDisconnected(
                f"IBKR: cannot connect to {self.where} ({exc!r}); is TWS / IB Gateway running "
                "with the API enabled on that port, and is the client id free?"
            ) from exc
        try:
            self.account_id = self._choose_account(self.ib.managedAccounts())
            self.call("connect", self.ib.reqAllOpenOrders)
        except BaseException:
            self.disconnect()
            raise

    def _choose_account(self, accounts: list[str]) -> str:
        if self.config.account:
            if self.config.account not in accounts:
                raise BrokerError(
                    f"IBKR: account {mask_account(self.config.account)} is not managed by "
                    f"this login ({len(accounts)} accounts are)"
                )
            account = self.config.account
        elif len(accounts) == 1:
            account = accounts[0]
        else:
            raise BrokerError(
                f"IBKR: the login manages {len(accounts)} accounts; set IBKR_ACCOUNT to one"
            )
        if not self.config.live and not account.startswith("D"):
            raise BrokerError(
                f"IBKR: account {mask_account(account)} is not a paper account (paper ids "
                "start with 'D'); pass live=True only if you mean to trade real money"
            )
        return account

    def disconnect(self) -> None:
        self._closing = True
        try:
            self.ib.disconnect()
        finally:
            self._closing = False

    def is_connected(self) -> bool:
        return self.ib.isConnected()

    def wait(self, seconds: float) -> None:
        """Pause with the event loop running, so IB's messages keep being processed; a
        disconnect during the pause surfaces on the next call."""
        if not self.is_connected():
            time.sleep(seconds)
            return
        try:
            self.ib.sleep(seconds)
        except ConnectionError:
            log.warning("IBKR: connection to %s lost while waiting", self.where)

    def require(self, call: str) -> None:
        if not self.is_connected():
            raise BrokerDisconnected(f"IBKR {call}: not connected to {self.where}")

    def lost(self, call: str) -> BrokerDisconnected:
        return BrokerDisconnected(f"IBKR {call}: connection to {self.where} lost")

    def call(self, call: str, request: Callable[[], T]) -> T:
        """Run one blocking ib_async request, translating its failures."""
        self.require(call)
        try:
            return request()
        except ib.RequestError as exc:
            raise BrokerError(f"IBKR {call}: IB error {exc.code}: {exc.message}") from exc
        except ConnectionError as exc:
            raise self.lost(call) from exc
        except TimeoutError as exc:
            raise BrokerError(
                f"IBKR {call}: no reply within {self.config.request_timeout_s}s"
            ) from exc

    def pump(self, seconds: float, call: str = "wait") -> None:
        """Let ib_async process network messages for up to ``seconds``."""
        self.require(call)
        try:
            self.ib.waitOnUpdate(timeout=seconds)
        except ConnectionError as exc:
            raise self.lost(call) from exc

    def refresh(self, call: str) -> None:
        """Process whatever IB has already sent, without waiting, before answering a pull."""
        self.require(call)
        try:
            self.ib.sleep(0)
        except ConnectionError as exc:
            raise self.lost(call) from exc

    def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.pump(min(remaining, 0.25))
        return True

    def _log_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if is_notice(code):
            log.info("IBKR notice %d: %s", code, message)
        else:
            log.warning("IBKR error %d (request %d): %s", code, req_id, message)

    def _log_disconnect(self) -> None:
        if self._closing:
            log.info("IBKR: disconnected from %s", self.where)
        else:
            log.warning("IBKR: connection to %s lost", self.where)


def is_notice(code: int) -> bool:
    """IB's informational messages (farm connections and the like), not errors."""
    return code in NOTICE_CODES or 2100 <= code < 2200


class Contracts:
    """Instruments resolved to IB contracts, once per symbol, shared by bars and orders."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._contracts: dict[str, Any] = {}
        self._size_increments: dict[str, float] = {}

    def qualify(self, instrument: Instrument) -> Instrument:
        contract = ib.Contract(
            secType=instrument.asset_class,
            symbol=instrument.symbol,
            exchange=instrument.exchange,
            currency=instrument.currency,
            conId=int(instrument.broker_id) if instrument.broker_id else 0,
        )
        ib_client = self.connection.ib
        try:
            details = self.connection.call(
                "qualify", lambda: ib_client.reqContractDetails(contract)
            )
        except BrokerError as exc:
            cause = exc.__cause__
            if isinstance(cause, ib.RequestError) and cause.code == UNKNOWN_CONTRACT_CODE:
                raise UnknownInstrument(
                    f"IBKR qualify: no {instrument.asset_class} contract {instrument.symbol} "
                    f"on {instrument.exchange} in {instrument.currency} (IB error 200)"
                ) from exc
            raise
        contracts = [_contract_of(d) for d in details]
        if len(contracts) != 1:
            found = ", ".join(f"{c.symbol}@{c.primaryExchange} conId {c.conId}" for c in contracts)
            raise UnknownInstrument(
                f"IBKR qualify: {instrument.symbol} matches {len(details)} contracts"
                + (f" ({found}); set broker_id to the conId to pick one" if details else "")
            )
        qualified = contracts[0]
        if instrument.exchange == "SMART":
            qualified.exchange = "SMART"
        self._contracts[instrument.symbol] = qualified
        self._size_increments[instrument.symbol] = details[0].sizeIncrement or 1.0
        return dataclasses.replace(instrument, broker_id=str(qualified.conId))

    def of(self, instrument: Instrument) -> Any:
        """The instrument's contract, qualifying it on first use."""
        if instrument.symbol not in self._contracts:
            self.qualify(instrument)
        return self._contracts[instrument.symbol]

    def size_increment(self, symbol: str) -> float:
        return self._size_increments.get(symbol, 1.0)

    def is_other(self, contract: Any) -> bool:
        """True for, say, an option on a symbol we trade: same name, another contract."""
        ours = self._contracts.get(contract.symbol)
        return ours is not None and contract.conId != ours.conId


def _contract_of(details: ib.ContractDetails) -> ib.Contract:
    """The contract of IB's contract details: ib_async types it optional, IB always sends it."""
    if details.contract is None:
        raise BrokerError("IBKR qualify: contract details came without a contract")
    return details.contract


def utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
