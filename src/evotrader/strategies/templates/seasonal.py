"""Seasonal: hold the instrument only in calendar windows that have paid historically.

Signals read the bar's own date only; calendars are known in advance, prices are not used.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

LEGS = 1


def turn_of_month(bars: pd.DataFrame, *, days_before: int, days_after: int) -> np.ndarray:
    dates = pd.DatetimeIndex(bars.index)
    days_left = dates.days_in_month - dates.day
    return ((days_left < days_before) | (dates.day < days_after)).astype(np.float64)


def halloween(bars: pd.DataFrame, *, entry_month: int, exit_month: int) -> np.ndarray:
    month = pd.DatetimeIndex(bars.index).month
    if entry_month < exit_month:
        inside = (month >= entry_month) & (month < exit_month)
    else:
        inside = (month >= entry_month) | (month < exit_month)
    return np.asarray(inside, dtype=np.float64)


def day_of_week(bars: pd.DataFrame, *, entry_weekday: int, hold_days: int) -> np.ndarray:
    weekday = pd.DatetimeIndex(bars.index).dayofweek
    return np.asarray((weekday - entry_weekday) % 7 < hold_days, dtype=np.float64)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "seasonal/turn-of-month": turn_of_month,
    "seasonal/halloween": halloween,
    "seasonal/day-of-week": day_of_week,
}
