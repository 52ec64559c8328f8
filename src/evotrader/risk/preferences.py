"""The human-owned risk preferences: loaded once, frozen, hashed, and only ever tightened.

``configs/preferences.yaml`` is written by a person, not by the bot. ``load_preferences``
requires every key (a safety file is explicit or it is refused) except the portfolio limits,
which default to off so that single-asset files written before them still load and mean
exactly what they meant; it turns the file into a frozen
``Preferences`` and fingerprints it (sha256 of its canonical JSON), which the runner logs at
start. Run-time settings (runner config, CLI flags) go through ``Preferences.tightened``,
which refuses any value looser than the file's, so nothing the bot reads at run time can
widen a limit the human set.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields, replace
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class PreferencesError(ValueError):
    """The preferences file or an override is invalid; the message names the key."""


class LooseningError(PreferencesError):
    """A run-time setting tried to loosen a limit the human set."""


@dataclass(frozen=True)
class TradingHours:
    """When orders may open or grow positions: ``days`` (Mon=0) from ``start`` to ``end``
    inclusive, local to ``timezone``. ``end`` is also when a daily bar closes."""

    timezone: str = "America/New_York"
    days: tuple[int, ...] = (0, 1, 2, 3, 4)
    start: time = time(9, 30)
    end: time = time(16, 0)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise PreferencesError(f"trading_hours.timezone: unknown {self.timezone!r}") from error
        if not self.days or any(day not in range(7) for day in self.days):
            raise PreferencesError(f"trading_hours.days: need weekdays 0..6, got {self.days}")
        if len(set(self.days)) != len(self.days):
            raise PreferencesError(f"trading_hours.days: repeated days in {self.days}")
        if not self.start < self.end:
            raise PreferencesError(
                f"trading_hours: start {self.start} must be before end {self.end}"
            )

    def contains(self, when: pd.Timestamp) -> bool:
        """Is the tz-aware instant ``when`` inside the trading window?"""
        local = _aware(when).tz_convert(self.timezone)
        return local.weekday() in self.days and self.start <= local.time() <= self.end

    def within(self, other: TradingHours) -> bool:
        """True when every instant inside self is inside ``other`` (self is as strict)."""
        return (
            self.timezone == other.timezone
            and set(self.days) <= set(other.days)
            and self.start >= other.start
            and self.end <= other.end
        )

    def session_end(self, day: pd.Timestamp) -> pd.Timestamp:
        """The instant (UTC) the session of ``day``'s date ends."""
        local = pd.Timestamp.combine(day.date(), self.end).tz_localize(self.timezone)
        return local.tz_convert("UTC")

    def to_dict(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "days": [WEEKDAYS[day] for day in self.days],
            "start": self.start.strftime("%H:%M:%S"),
            "end": self.end.strftime("%H:%M:%S"),
        }

    @classmethod
    def from_dict(cls, raw: Any) -> TradingHours:
        if not isinstance(raw, Mapping):
            raise PreferencesError(f"trading_hours: expected a mapping, got {raw!r}")
        _exact_keys("trading_hours", raw, ("timezone", "days", "start", "end"))
        days = raw["days"]
        if not isinstance(days, list | tuple):
            raise PreferencesError(f"trading_hours.days: expected a list of weekdays, got {days!r}")
        return cls(
            timezone=str(raw["timezone"]),
            days=tuple(_weekday(day) for day in days),
            start=_clock("trading_hours.start", raw["start"]),
            end=_clock("trading_hours.end", raw["end"]),
        )


def bar_end_times(
    index: pd.DatetimeIndex, hours: TradingHours, bar_length: pd.Timedelta | None = None
) -> pd.DatetimeIndex:
    """When each bar closed (UTC), from contract labels (tz-naive; UTC for intraday bars).

    Daily bars (every label at midnight) close at the session end of their date; intraday
    bars close ``bar_length`` after their label (default: the median spacing). The sim
    broker and the backtest both use this, so their clocks agree.
    """
    index = _naive(index)
    if _daily(index, bar_length):
        return _at(index, hours.end, hours.timezone)
    if bar_length is None:
        if len(index) < 2:
            raise ValueError("need bar_length to time a single intraday bar")
        bar_length = pd.Series(index).diff().median()
    return (index + bar_length).tz_localize("UTC")


def bar_open_times(
    index: pd.DatetimeIndex, hours: TradingHours, bar_length: pd.Timedelta | None = None
) -> pd.DatetimeIndex:
    """When each bar opened (UTC): the session start for daily bars, else the label."""
    index = _naive(index)
    if _daily(index, bar_length):
        return _at(index, hours.start, hours.timezone)
    return index.tz_localize("UTC")


def _naive(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(index)
    if index.tz is not None:
        raise ValueError("bar labels must be tz-naive, as in the bars contract")
    return index


def _daily(index: pd.DatetimeIndex, bar_length: pd.Timedelta | None) -> bool:
    return bar_length is None and len(index) > 0 and bool((index == index.normalize()).all())


def _at(days: pd.DatetimeIndex, clock: time, timezone: str) -> pd.DatetimeIndex:
    return (days + _offset(clock)).tz_localize(timezone).tz_convert("UTC")


@dataclass(frozen=True)
class Preferences:
    """Hard limits. Percentages are of account equity (net liquidation value)."""

    max_position_pct: float
    max_leverage: float
    max_daily_loss_pct: float
    max_drawdown_pct: float
    max_orders_per_minute: int
    allowed_instruments: tuple[str, ...]
    allowed_asset_classes: tuple[str, ...]
    trading_hours: TradingHours
    stale_data_seconds: float
    error_burst_count: int
    error_burst_seconds: float
    # Portfolio limits (``risk.portfolio``); None is off. Weights are fractions of equity.
    max_net_exposure: float | None = None
    max_positions: int | None = None
    max_cluster_weight: float | None = None
    cluster_correlation: float = 0.7
    max_var_pct: float | None = None
    max_cvar_pct: float | None = None
    var_confidence: float = 0.95
    risk_lookback: int = 250

    def __post_init__(self) -> None:
        for name in ("max_position_pct", "max_leverage", "stale_data_seconds"):
            _positive(name, getattr(self, name))
        _positive("error_burst_seconds", self.error_burst_seconds)
        for name in ("max_daily_loss_pct", "max_drawdown_pct"):
            value = getattr(self, name)
            _positive(name, value)
            if value > 100:
                raise PreferencesError(f"{name}: must be <= 100 (a percentage), got {value}")
        for name in ("max_orders_per_minute", "error_burst_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PreferencesError(f"{name}: must be an integer >= 1, got {value!r}")
        for name in ("allowed_instruments", "allowed_asset_classes"):
            value = getattr(self, name)
            if not value or not all(isinstance(v, str) and v for v in value):
                raise PreferencesError(f"{name}: must be a non-empty list of names, got {value}")
        self._check_portfolio_limits()

    def _check_portfolio_limits(self) -> None:
        for name in ("max_net_exposure", "max_cluster_weight", "max_var_pct", "max_cvar_pct"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value)
        for name in ("max_var_pct", "max_cvar_pct"):
            value = getattr(self, name)
            if value is not None and value > 100:
                raise PreferencesError(f"{name}: must be <= 100 (a percentage), got {value}")
        for name, low in (("max_positions", 1), ("risk_lookback", 2)):
            value = getattr(self, name)
            if value is None and name == "max_positions":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PreferencesError(f"{name}: must be an integer >= {low}, got {value!r}")
        if not 0 < self.cluster_correlation <= 1:
            raise PreferencesError(
                f"cluster_correlation: must lie in (0, 1], got {self.cluster_correlation}"
            )
        if not 0.5 <= self.var_confidence < 1:
            raise PreferencesError(
                f"var_confidence: must lie in [0.5, 1), got {self.var_confidence}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-able content (what the hash covers)."""
        content = asdict(self)
        content["allowed_instruments"] = sorted(self.allowed_instruments)
        content["allowed_asset_classes"] = sorted(self.allowed_asset_classes)
        content["trading_hours"] = self.trading_hours.to_dict()
        return content

    @property
    def sha256(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def from_dict(cls, raw: Any, where: str = "preferences") -> Preferences:
        if not isinstance(raw, Mapping):
            raise PreferencesError(f"{where}: expected a mapping of limits, got {type(raw)}")
        _exact_keys(where, raw, _REQUIRED, _FIELD_NAMES)
        values = {name: _parse(name, raw[name]) for name in _FIELD_NAMES if name in raw}
        try:
            return cls(**values)
        except PreferencesError as error:
            raise PreferencesError(f"{where}: {error}") from None

    def tightened(self, overrides: Mapping[str, Any]) -> Preferences:
        """A copy with ``overrides`` applied, each at least as strict as the current value;
        anything looser raises ``LooseningError`` naming the key."""
        unknown = sorted(set(overrides) - set(_FIELD_NAMES))
        if unknown:
            raise PreferencesError(f"unknown risk limits {unknown}; known: {list(_FIELD_NAMES)}")
        changes = {}
        for name, raw in overrides.items():
            value = _parse(name, raw)
            current = getattr(self, name)
            if name in _FIXED and value != current:
                raise LooseningError(
                    f"{name}: {_show(value)} would change the human-set {_show(current)}; "
                    "neither a shorter nor a longer window is stricter, so only "
                    "configs/preferences.yaml may change it"
                )
            if not _as_strict(name, value, current):
                raise LooseningError(
                    f"{name}: {_show(value)} would loosen the human-set {_show(current)}; "
                    "run-time settings may only tighten configs/preferences.yaml"
                )
            changes[name] = value
        return replace(self, **changes)


_FIELD_NAMES = tuple(f.name for f in fields(Preferences))
_REQUIRED = tuple(f.name for f in fields(Preferences) if f.default is MISSING)
_OPTIONAL_LIMITS = (  # None switches these off
    "max_net_exposure",
    "max_positions",
    "max_cluster_weight",
    "max_var_pct",
    "max_cvar_pct",
)
_FIXED = ("risk_lookback",)
_HIGHER_IS_LOOSER = (
    "max_position_pct",
    "max_leverage",
    "max_daily_loss_pct",
    "max_drawdown_pct",
    "max_orders_per_minute",
    "stale_data_seconds",
    "error_burst_count",
    *_OPTIONAL_LIMITS,
)


def load_preferences(path: str | Path) -> Preferences:
    """Read and validate the preferences file; every key is required."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise PreferencesError(f"preferences {path}: cannot read: {error}") from error
    except yaml.YAMLError as error:
        raise PreferencesError(f"preferences {path}: not valid YAML: {error}") from error
    return Preferences.from_dict(raw, where=f"preferences {path}")


def _as_strict(name: str, new: Any, old: Any) -> bool:
    if name in _OPTIONAL_LIMITS and (new is None or old is None):
        return old is None  # switching a limit on is stricter; switching it off never is
    if name in _HIGHER_IS_LOOSER:
        return bool(new <= old)
    if name == "error_burst_seconds":  # a longer window counts more errors: stricter
        return bool(new >= old)
    if name == "var_confidence":  # a deeper tail quantile is a larger loss: stricter
        return bool(new >= old)
    if name == "cluster_correlation":  # a lower threshold merges more assets: stricter
        return bool(new <= old)
    if name in _FIXED:  # only the same value (``tightened`` explains a change)
        return bool(new == old)
    if name == "trading_hours":
        return bool(new.within(old))
    return set(new) <= set(old)  # allowed instruments and asset classes


def _parse(name: str, value: Any) -> Any:
    if name == "trading_hours":
        return value if isinstance(value, TradingHours) else TradingHours.from_dict(value)
    if name in ("allowed_instruments", "allowed_asset_classes"):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if not isinstance(value, list | tuple):
            raise PreferencesError(f"{name}: expected a list of names, got {value!r}")
        return tuple(str(item) for item in value)
    if name in _OPTIONAL_LIMITS and (value is None or str(value).lower() in ("none", "off")):
        return None
    if name in ("max_orders_per_minute", "error_burst_count", "max_positions", "risk_lookback"):
        number = _number(name, value)
        if number != int(number):
            raise PreferencesError(f"{name}: must be an integer, got {value!r}")
        return int(number)
    return _number(name, value)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise PreferencesError(f"{name}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PreferencesError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise PreferencesError(f"{name}: must be finite, got {value!r}")
    return number


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise PreferencesError(f"{name}: must be > 0, got {value}")


def _exact_keys(
    where: str,
    raw: Mapping[str, Any],
    expected: tuple[str, ...],
    allowed: tuple[str, ...] | None = None,
) -> None:
    """Every ``expected`` key present; nothing beyond ``allowed`` (default: ``expected``)."""
    missing = set(expected) - set(raw)
    unknown = set(raw) - set(expected if allowed is None else allowed)
    if missing:
        raise PreferencesError(f"{where}: missing keys {sorted(missing)} (required)")
    if unknown:
        raise PreferencesError(f"{where}: unknown keys {sorted(map(str, unknown))}")


def _weekday(day: Any) -> int:
    if isinstance(day, str) and day[:3].title() in WEEKDAYS:
        return WEEKDAYS.index(day[:3].title())
    if isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6:
        return day
    raise PreferencesError(f"trading_hours.days: {day!r} is not a weekday (Mon..Sun or 0..6)")


def _clock(name: str, value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # YAML 1.1 reads 09:30 as 570
        value = f"{value // 60:02d}:{value % 60:02d}"
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise PreferencesError(f"{name}: expected HH:MM, got {value!r}") from None


def _offset(clock: time) -> pd.Timedelta:
    return pd.Timedelta(hours=clock.hour, minutes=clock.minute, seconds=clock.second)


def _aware(when: pd.Timestamp) -> pd.Timestamp:
    if when.tzinfo is None:
        raise ValueError(f"need a tz-aware time, got {when}")
    return when


def _show(value: Any) -> str:
    if isinstance(value, TradingHours):
        return json.dumps(value.to_dict())
    return repr(list(value)) if isinstance(value, tuple) else repr(value)
