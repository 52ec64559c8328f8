"""The bars the live features see: history, then each streamed bar the runner accepts.

The broker hands bars over as it gets them; the window, not the broker, refuses a bar for
another symbol, a duplicate, one out of order or one with impossible values, so one bad
print never reaches the features.
"""

from __future__ import annotations

import pandas as pd

from evotrader.core.trading import Bar

COLUMNS = ["open", "high", "low", "close", "volume"]


class BarWindow:
    """The newest ``keep`` closed bars of ``symbol`` as a contract DataFrame, newest last."""

    def __init__(self, symbol: str, keep: int) -> None:
        self.symbol, self.keep = symbol, keep
        self.frame = pd.DataFrame(columns=COLUMNS)
        self.last_bar: Bar | None = None  # the newest streamed bar (None before the first)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def latest(self) -> pd.Timestamp:
        """The label of the newest bar."""
        return pd.Timestamp(self.frame.index[-1])

    @property
    def close(self) -> float:
        return float(self.frame["close"].iloc[-1])

    def problem(self, bar: Bar) -> str | None:
        """Why ``bar`` cannot be the next bar, or None."""
        if bar.symbol != self.symbol:
            return f"bar for {bar.symbol}, trading {self.symbol}"
        last = self.latest
        if bar.timestamp == last:
            return f"duplicate of the bar at {last}"
        if bar.timestamp < last:
            return f"out of order: {bar.timestamp} after {last}"
        return bar.problem()

    def append(self, bar: Bar) -> None:
        row = pd.DataFrame(
            [[bar.open, bar.high, bar.low, bar.close, bar.volume]],
            columns=COLUMNS,
            index=pd.DatetimeIndex([bar.timestamp], name="timestamp"),
        )
        self.extend(row)
        self.last_bar = bar

    def extend(self, bars: pd.DataFrame) -> int:
        """Add the bars newer than the newest held (warm-up, or a back-fill after a
        reconnect); returns how many were new."""
        if len(self.frame):
            bars = bars.loc[bars.index > self.latest]
            self.frame = pd.concat([self.frame, bars]).iloc[-self.keep :]
        else:
            self.frame = bars.iloc[-self.keep :]
        return len(bars)
