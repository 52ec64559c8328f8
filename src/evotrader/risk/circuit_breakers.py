"""Circuit breakers: the conditions that flatten every position and halt trading.

Each breaker is a pure function of numbers the risk engine tracks, returning why it trips
or None, so the live runner and the backtest trip on exactly the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class BreakerKind(StrEnum):
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    ERROR_BURST = "error_burst"
    STALE_DATA = "stale_data"
    KILL_SWITCH = "kill_switch"
    DIVERGENCE = "divergence"


@dataclass(frozen=True)
class Trip:
    """A tripped breaker: trading halts until a human clears it."""

    kind: BreakerKind
    reason: str
    at: str  # ISO time of the trip

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "reason": self.reason, "at": self.at}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Trip:
        return cls(BreakerKind(raw["kind"]), str(raw["reason"]), str(raw["at"]))


def daily_loss(day_start_equity: float, equity: float, limit_pct: float) -> str | None:
    loss = 100.0 * (day_start_equity - equity) / day_start_equity
    if loss > limit_pct:
        return (
            f"daily loss {loss:.2f}% exceeds {limit_pct:g}% "
            f"(equity {equity:,.2f} from {day_start_equity:,.2f} at the day's start)"
        )
    return None


def drawdown(peak_equity: float, equity: float, limit_pct: float) -> str | None:
    depth = 100.0 * (1.0 - equity / peak_equity)
    if depth > limit_pct:
        return f"drawdown {depth:.2f}% exceeds {limit_pct:g}% (peak equity {peak_equity:,.2f})"
    return None


def error_burst(times: Sequence[float], now: float, count: int, window: float) -> str | None:
    recent = sum(1 for t in times if now - t <= window)
    if recent >= count:
        return f"{recent} errors within {window:g}s (limit {count})"
    return None


def stale_data(age_seconds: float, limit_seconds: float) -> str | None:
    if age_seconds > limit_seconds:
        return f"no new bar for {age_seconds:,.0f}s (limit {limit_seconds:,.0f}s)"
    return None
