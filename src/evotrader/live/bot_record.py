"""What a bot folder holds, read once for its reports: marks, fills, risk events, health.

A bot folder is what a session writes (``summary.json``, ``journal.sqlite``,
``events.jsonl``). Risk events and health rows come from the journal, because the journal
stamps them with the bot's clock (the replay's clock in the sim, the broker's in paper and
live), so they fall on the trading day they happened on. The event log adds what the journal
does not hold: alerts, failed connection attempts and errors that were never counted (a
failing alert hook, a failed shutdown); those carry the wall clock only.

Times are kept as the exchange's local wall time without a zone: naive bar times already
are (the sim and the data sources label bars in exchange time), aware ones are converted.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evotrader.core.trading import Fill
from evotrader.live.journal import Journal, JournalError
from evotrader.risk.preferences import Preferences, PreferencesError, TradingHours

SUMMARY, JOURNAL, EVENTS = "summary.json", "journal.sqlite", "events.jsonl"
EVENT_LOG_ONLY = ("alert", "connect_failed", "error")  # event-log lines the journal lacks


class BotFolderError(ValueError):
    """A bot folder is missing a file, or a file cannot be read; the message names both."""


@dataclass(frozen=True)
class BotEvent:
    """One risk or health event at exchange-local ``at``: ``source`` is ``journal`` (the
    bot's clock) or ``event log`` (the wall clock); ``kind`` e.g. ``halt``, ``order_refused``,
    ``error``, ``disconnected``, ``alert``."""

    at: pd.Timestamp
    source: str
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class BotRecord:
    """A bot folder's contents, as the reports need them."""

    bot_dir: Path
    account: str  # "sim", "paper" or "live"
    hours: TradingHours
    equity: pd.Series  # realised equity at each bar's close, exchange-local bar times
    expected: pd.Series  # the backtest's account stepped with the bot's targets, same bars
    fills: tuple[Fill, ...]
    events: tuple[BotEvent, ...]
    stopped: str

    def local(self, when: pd.Timestamp) -> pd.Timestamp:
        """``when`` as exchange-local wall time without a zone."""
        return local_time(when, self.hours.timezone)


def read_bot(bot_dir: Path) -> BotRecord:
    """Read ``bot_dir``; a missing or unreadable file is one ``BotFolderError`` naming it."""
    bot_dir = Path(bot_dir)
    if not bot_dir.is_dir():
        raise BotFolderError(f"bot folder {bot_dir}: no such folder")
    for name in (SUMMARY, JOURNAL, EVENTS):
        if not (bot_dir / name).is_file():
            raise BotFolderError(f"bot folder {bot_dir}: {name} is missing (not a bot's folder?)")
    summary = _summary(bot_dir / SUMMARY)
    lines = _event_lines(bot_dir / EVENTS)
    start = next((line for line in lines if line.get("event") == "start"), {})
    hours = _hours(bot_dir / EVENTS, start)
    equity, expected = (
        _marks(bot_dir / SUMMARY, summary, key, hours) for key in ("equity", "expected")
    )
    if not equity.index.equals(expected.index):
        raise BotFolderError(
            f"{bot_dir / SUMMARY}: equity and expected are marked on different bars"
        )
    fills, journaled = _journal(bot_dir / JOURNAL, hours)
    events = sorted(
        journaled + _log_only(bot_dir / EVENTS, lines, hours), key=lambda event: event.at
    )
    return BotRecord(
        bot_dir=bot_dir,
        account=_account(start),
        hours=hours,
        equity=equity,
        expected=expected,
        fills=fills,
        events=tuple(events),
        stopped=str(summary.get("stopped", "")),
    )


def local_time(when: pd.Timestamp | str, timezone: str) -> pd.Timestamp:
    """Exchange-local wall time without a zone (naive times are taken as local already)."""
    stamp = pd.Timestamp(when)
    return stamp if stamp.tzinfo is None else stamp.tz_convert(timezone).tz_localize(None)


def _summary(path: Path) -> dict[str, Any]:
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BotFolderError(f"{path}: unreadable: {error}") from error
    if not isinstance(summary, dict):
        raise BotFolderError(f"{path}: expected a JSON object, got {type(summary).__name__}")
    return summary


def _marks(path: Path, summary: dict[str, Any], key: str, hours: TradingHours) -> pd.Series:
    raw = summary.get(key)
    if not isinstance(raw, dict):
        raise BotFolderError(f"{path}: {key!r} is missing or not a mapping of bar time to equity")
    try:
        values = np.asarray([float(value) for value in raw.values()], dtype=np.float64)
        index = pd.DatetimeIndex([local_time(stamp, hours.timezone) for stamp in raw])
    except (TypeError, ValueError) as error:
        raise BotFolderError(f"{path}: {key!r} holds a bad bar time or value: {error}") from error
    if not np.isfinite(values).all() or (values <= 0).any():
        raise BotFolderError(f"{path}: {key!r} holds a non-finite or non-positive equity")
    series = pd.Series(values, index=index, name=key).sort_index()
    if series.index.has_duplicates:
        raise BotFolderError(f"{path}: {key!r} marks one bar time twice")
    return series


def _event_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BotFolderError(f"{path}: unreadable: {error}") from error
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise BotFolderError(f"{path}: line {number} is not JSON: {error}") from error
        if not isinstance(record, dict) or "event" not in record or "time" not in record:
            raise BotFolderError(f"{path}: line {number} is not an event (no event or time)")
        lines.append(record)
    return lines


def _hours(path: Path, start: dict[str, Any]) -> TradingHours:
    """The session's trading hours from its start event (the exchange's by default)."""
    if "preferences" not in start:
        return TradingHours()
    try:
        return Preferences.from_dict(start["preferences"]).trading_hours
    except (PreferencesError, TypeError, ValueError) as error:
        raise BotFolderError(f"{path}: the start event's preferences: {error}") from error


def _account(start: dict[str, Any]) -> str:
    if start.get("broker") == "sim":
        return "sim"
    return "paper" if start.get("paper", True) else "live"


def _journal(path: Path, hours: TradingHours) -> tuple[tuple[Fill, ...], list[BotEvent]]:
    try:
        with Journal(path) as journal:
            fills = tuple(journal.fills())
            risk, health = journal.risk_events(), journal.health()
    except (JournalError, sqlite3.Error, ValueError, KeyError) as error:
        raise BotFolderError(f"{path}: unreadable journal: {error}") from error
    events = [
        BotEvent(local_time(row["at"], hours.timezone), "journal", row["kind"], _detail(row))
        for row in risk
    ]
    events += [  # "ok" and "halted" rows are heartbeats; only changes of connection count
        BotEvent(local_time(row["at"], hours.timezone), "journal", row["status"], _detail(row))
        for row in health
        if row["status"] not in ("ok", "halted")
    ]
    return fills, events


def _detail(row: dict[str, Any]) -> dict[str, Any]:
    detail = json.loads(row["detail"])
    return detail if isinstance(detail, dict) else {"detail": detail}


def _log_only(path: Path, lines: list[dict[str, Any]], hours: TradingHours) -> list[BotEvent]:
    """Event-log lines the journal lacks. An ``error`` line the runner counted is followed
    at once by its ``risk.error`` line (``Reporter.error``) and is in the journal already."""
    events = []
    for i, line in enumerate(lines):
        kind = line["event"]
        if kind not in EVENT_LOG_ONLY:
            continue
        following = lines[i + 1] if i + 1 < len(lines) else {}
        if kind == "error" and following.get("event") == "risk.error":
            continue
        detail = {key: value for key, value in line.items() if key not in ("time", "event")}
        try:
            at = local_time(line["time"], hours.timezone)
        except ValueError as error:
            raise BotFolderError(f"{path}: line {i + 1}: bad time: {error}") from error
        events.append(BotEvent(at, "event log", kind, detail))
    return events
