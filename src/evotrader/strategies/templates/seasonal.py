"""Seasonal: hold the instrument only in calendar windows that have paid historically.

Signals read the bar's own date only; calendars are known in advance, prices are not used.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)

LEGS = 1


# The regular full-day closures of the New York Stock Exchange since 1998 (no one-off
# closures such as 9/11 or Hurricane Sandy, no early closes).
EXCHANGE_HOLIDAYS = AbstractHolidayCalendar(
    name="NYSE",
    rules=[
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        USMartinLutherKingJr,
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, start_date="2022-01-01", observance=nearest_workday),
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas Day", month=12, day=25, observance=nearest_workday),
    ],
)


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


def pre_holiday(bars: pd.DataFrame, *, days_before: int) -> np.ndarray:
    dates = pd.DatetimeIndex(bars.index).normalize()
    closed = EXCHANGE_HOLIDAYS.holidays(dates[0], dates[-1] + pd.DateOffset(years=1))
    holidays = closed.to_numpy("datetime64[D]")
    day = dates.to_numpy("datetime64[D]")
    upcoming = holidays[np.minimum(np.searchsorted(holidays, day, side="right"), len(holidays) - 1)]
    # sessions from the day after this bar up to the holiday; the known calendar, no prices
    sessions_left = np.busday_count(day + 1, upcoming, holidays=holidays)
    holding = (upcoming > day) & (sessions_left >= 1) & (sessions_left <= days_before)
    return holding.astype(np.float64)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "seasonal/turn-of-month": turn_of_month,
    "seasonal/halloween": halloween,
    "seasonal/day-of-week": day_of_week,
    "seasonal/pre-holiday": pre_holiday,
}
