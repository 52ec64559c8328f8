"""Closed bars from IB: history for warm-up and back-fill, a keepUpToDate stream after it.

A bar is closed once a newer bar has started or its end has passed on the broker clock;
daily bars end at the session end of their date (the preferences' trading hours), as in the
sim and the backtest. Each closed bar reaches the runner once, in order, through ``history``
or ``next_bar``; a stream restarted after a reconnect back-fills the bars that closed while
the connection was down, unless ``history`` already handed them out.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

import pandas as pd

from evotrader.core.trading import Bar, Instrument
from evotrader.data.errors import DataError
from evotrader.data.validation import validate_ohlcv
from evotrader.live.broker import BrokerError
from evotrader.live.ib.config import bar_seconds
from evotrader.live.ib.connection import Connection, Contracts, is_notice
from evotrader.risk.preferences import TradingHours

log = logging.getLogger(__name__)

DATA_LOST_CODE = 1101  # connectivity restored, market data subscriptions lost
MAX_BACKFILL_BARS = 2000


def ib_duration(count: int, seconds: int, use_rth: bool) -> str:
    """An IB duration string that covers at least ``count`` bars of ``seconds`` each,
    allowing for weekends, holidays and (with ``use_rth``) 6.5-hour sessions."""
    if seconds >= 86_400:
        days = math.ceil(count * seconds / 86_400 * 7 / 5) + 10
    else:
        session = 23_400 if use_rth else 57_600
        days = math.ceil(count / max(1, session // seconds) * 7 / 5) + 3
    return f"{math.ceil(days / 365)} Y" if days > 365 else f"{days} D"


def bars_to_frame(bars: Sequence[Bar], symbol: str = "?") -> pd.DataFrame:
    """Bars as a contract DataFrame (validated: increasing unique index, OHLCV floats)."""
    frame = pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        },
        index=pd.DatetimeIndex([b.timestamp for b in bars], name="timestamp"),
    )
    return validate_ohlcv(frame, symbol)


@dataclass
class _Stream:
    """One instrument's keepUpToDate bar subscription and what it has handed out."""

    instrument: Instrument
    bars: Any = None  # ib.BarDataList of the current connection
    last_emitted: pd.Timestamp | None = None
    restart: bool = False


class BarFeed:
    """History and streamed closed bars of the instruments subscribed to."""

    def __init__(
        self,
        connection: Connection,
        contracts: Contracts,
        clock: Callable[[], pd.Timestamp],
        hours: TradingHours,
    ) -> None:
        self.connection, self.contracts, self.config = connection, contracts, connection.config
        self.now, self.hours = clock, hours
        self._bar_seconds = bar_seconds(self.config.bar_size)
        self._streams: dict[str, _Stream] = {}
        self._delivered: dict[str, pd.Timestamp] = {}
        self._queue: deque[Bar] = deque()
        self._stream_errors: list[str] = []
        connection.ib.errorEvent += self._on_error
        connection.ib.disconnectedEvent += self._on_disconnected

    def history(self, instrument: Instrument, count: int) -> pd.DataFrame:
        if count < 1:
            raise ValueError(f"IBKR history {instrument.symbol}: count must be >= 1, got {count}")
        bars = self._closed_bars(
            instrument.symbol, self._request_bars(instrument, count, keep_up_to_date=False)
        )
        good = []
        for bar in bars:
            problem = bar.problem()
            if problem is None:
                good.append(bar)
            else:
                log.warning(
                    "IBKR history %s: skipping bar %s: %s", bar.symbol, bar.timestamp, problem
                )
        good = good[-count:]
        try:
            frame = bars_to_frame(good, instrument.symbol)
        except DataError as exc:
            raise BrokerError(f"IBKR history {instrument.symbol}: bad bars from IB: {exc}") from exc
        if good:
            self._handed_out(instrument.symbol, good[-1].timestamp)
        return frame

    def subscribe(self, instrument: Instrument) -> None:
        stream = self._streams.get(instrument.symbol)
        if stream is None:
            stream = _Stream(instrument, last_emitted=self._delivered.get(instrument.symbol))
            self._streams[instrument.symbol] = stream
        if stream.bars is None or stream.restart:
            self._start_stream(stream)

    def next_bar(self, timeout: float) -> Bar | None:
        deadline = time.monotonic() + timeout
        while True:
            if self._stream_errors:
                raise BrokerError(self._stream_errors.pop(0))
            for stream in self._streams.values():
                if stream.restart and self.connection.is_connected():
                    self._start_stream(stream)
                self._emit_closed(stream)
            if self._queue:
                return self._queue.popleft()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.connection.require("next_bar")
                return None
            self.connection.pump(min(remaining, 0.25))

    def _handed_out(self, symbol: str, last: pd.Timestamp) -> None:
        """Bars up to ``last`` reached the runner through ``history`` (a warm-up or a
        back-fill after a reconnect); the stream must not hand them out again."""
        self._delivered[symbol] = last
        stream = self._streams.get(symbol)
        if stream is not None and (stream.last_emitted is None or stream.last_emitted < last):
            stream.last_emitted = last
        self._queue = deque(b for b in self._queue if b.symbol != symbol or b.timestamp > last)

    def _start_stream(self, stream: _Stream) -> None:
        """(Re)start the keepUpToDate request, asking for enough bars to cover the gap
        since the last bar handed out, so bars that closed while down are back-filled."""
        if stream.bars is not None and self.connection.is_connected():
            self.connection.ib.cancelHistoricalData(stream.bars)
        stream.bars = None
        count = 3
        if stream.last_emitted is not None and stream.last_emitted > pd.Timestamp.min:
            gap = (self.now().tz_localize(None) - stream.last_emitted).total_seconds()
            count = min(max(count, math.ceil(gap / self._bar_seconds) + 2), MAX_BACKFILL_BARS)
        bars = self._request_bars(stream.instrument, count, keep_up_to_date=True)
        bars.updateEvent += partial(self._on_bar_update, stream)
        stream.bars, stream.restart = bars, False
        if stream.last_emitted is None:  # nothing handed out yet: these bars are warm-up
            closed = self._closed_bars(stream.instrument.symbol, bars)
            stream.last_emitted = closed[-1].timestamp if closed else pd.Timestamp.min
        self._emit_closed(stream)

    def _on_bar_update(self, stream: _Stream, bars: Any, has_new_bar: bool) -> None:
        if bars is stream.bars:
            self._emit_closed(stream)

    def _emit_closed(self, stream: _Stream) -> None:
        """Queue, in order, the stream's closed bars newer than the last one handed out.
        Only the newest bar can still be forming; it closes when its end has passed."""
        if stream.bars is None:
            return
        now, fresh = self.now(), []
        for position, raw in enumerate(reversed(stream.bars)):
            bar = self._to_bar(stream.instrument.symbol, raw)
            if stream.last_emitted is not None and bar.timestamp <= stream.last_emitted:
                break
            if position > 0 or bar.end <= now:
                fresh.append(bar)
        for bar in reversed(fresh):
            self._queue.append(bar)
            stream.last_emitted = bar.timestamp

    def _request_bars(self, instrument: Instrument, count: int, keep_up_to_date: bool) -> Any:
        contract = self.contracts.of(instrument)
        duration = ib_duration(count, self._bar_seconds, self.config.use_rth)
        ib_client = self.connection.ib
        return self.connection.call(
            "subscribe" if keep_up_to_date else "history",
            lambda: ib_client.reqHistoricalData(
                contract,
                "",
                duration,
                self.config.bar_size,
                self.config.what_to_show,
                self.config.use_rth,
                formatDate=2,
                keepUpToDate=keep_up_to_date,
                timeout=0,  # the broker's request timeout applies instead
            ),
        )

    def _to_bar(self, symbol: str, bar: Any) -> Bar:
        """An IB bar as a ``Bar``: labelled by its start, ``end`` when it closes.

        Daily bars are labelled by their date and close at the session end of that date
        (``hours``, the preferences' trading hours), the clock the sim and the backtest
        use (``risk.preferences.bar_end_times``)."""
        stamp: date | datetime = bar.date
        if isinstance(stamp, datetime):
            start = pd.Timestamp(stamp)
            start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
            timestamp = start.tz_localize(None)
            end = start + pd.Timedelta(seconds=self._bar_seconds)
        else:
            timestamp = pd.Timestamp(stamp)
            end = self.hours.session_end(timestamp)
        return Bar(
            symbol,
            timestamp,
            end,
            float(bar.open),
            float(bar.high),
            float(bar.low),
            float(bar.close),
            max(float(bar.volume), 0.0),  # IB sends -1 where it has no volume (MIDPOINT)
        )

    def _closed_bars(self, symbol: str, bars: Iterable[Any]) -> list[Bar]:
        """The bars that have closed: all but the last, and the last once its end passed."""
        converted = [self._to_bar(symbol, b) for b in bars]
        if converted and converted[-1].end > self.now():
            converted.pop()
        return converted

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        """A lost data farm restarts every stream; an error on a stream's request restarts
        it and surfaces on the next ``next_bar``."""
        if is_notice(code):
            return
        if code == DATA_LOST_CODE:
            for stream in self._streams.values():
                stream.restart = True
        for symbol, stream in self._streams.items():
            if stream.bars is not None and stream.bars.reqId == req_id:
                stream.restart = True
                self._stream_errors.append(f"IBKR bar stream {symbol}: IB error {code}: {message}")

    def _on_disconnected(self) -> None:
        for stream in self._streams.values():  # their subscriptions died with the socket
            stream.bars, stream.restart = None, True
