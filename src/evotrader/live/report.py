"""Daily and weekly reports of a live or paper bot: its equity against the expectation, its
trades, its risk events and its health, one HTML page and one JSON file per period.

A bot's numbers only mean something next to what the same policy's backtest would have
done on the same bars, so every period shows realised equity (the bot's account, marked at
each bar's close) beside expected equity (the backtest's account stepped with the bot's own
approved targets, ``telemetry.Expectation``) and their tracking difference. Trading days are
the exchange's (the session's trading-hours timezone, America/New_York by default); weeks
are ISO weeks. A period opens at the last mark before it, so the periods' returns compound
to the whole run's. Pages look like the backtest report: self-contained, PNG charts embedded
as base64, no JavaScript.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from evotrader.backtest.report import PAGE_CSS, html_table, png_bytes, sign_class, tidy
from evotrader.core.atomic import write_atomic
from evotrader.core.trading import Fill
from evotrader.live.bot_record import BotEvent, BotFolderError, BotRecord, read_bot
from evotrader.risk.circuit_breakers import BreakerKind
from evotrader.risk.preferences import TradingHours

__all__ = ["PERIODS", "BotFolderError", "PeriodReport", "period_reports", "write_reports"]

DAILY, WEEKLY = "daily", "weekly"
PERIODS = (DAILY, WEEKLY)
REPORTS_DIR = "reports"
DPI = 80

# What each figure is: the JSON carries these beside the numbers, the page shows them.
LABELS: dict[str, str] = {
    "start_equity": "realised equity at the period's opening mark (last bar close before it)",
    "end_equity": "realised equity at the period's last bar close",
    "realised_return": "realised return over the period (end / start - 1)",
    "expected_start_equity": "expected equity at the opening mark (backtest account, same targets)",
    "expected_end_equity": "expected equity at the period's last bar close",
    "expected_return": "expected return over the period (the backtest account's)",
    "tracking_difference": "realised return minus expected return",
    "max_drawdown": "deepest realised drop from a peak within the period, from the opening mark "
    "(<= 0)",
    "bars": "bars seen (marked) in the period",
    "bars_expected": "bars the trading hours call for between the run's first and last bar "
    "(weekday sessions; exchange holidays count as expected)",
    "fills": "fills journaled in the period",
    "traded_notional": "traded notional, sum of |quantity| x price over the fills",
    "costs": "costs paid on the fills (commission, spread, slippage)",
    "refusals": "orders the risk engine refused",
    "halts": "halts (a breaker or the kill switch tripped)",
    "errors": "errors (counted by the bot, plus failing alert hooks or shutdown steps)",
    "disconnects": "broker connection drops",
    "reconnects": "successful reconnections",
    "connect_failures": "failed connection attempts",
    "stale_or_bad_bars": "stale-feed halts plus bars refused as bad (late, repeated, malformed)",
    "alerts": "alerts raised for a human",
}


@dataclass(frozen=True)
class PeriodReport:
    """One period's figures (named as ``LABELS`` explains), its fills and its events."""

    bot: str
    account: str
    period: str  # "daily" or "weekly"
    label: str  # "2024-03-05" or "2024-W10"
    first_day: date
    last_day: date
    first_bar: pd.Timestamp | None
    last_bar: pd.Timestamp | None
    start_equity: float
    end_equity: float
    realised_return: float
    expected_start_equity: float
    expected_end_equity: float
    expected_return: float
    tracking_difference: float
    max_drawdown: float
    bars: int
    bars_expected: int
    fills: int
    traded_notional: float
    costs: float
    refusals: int
    halts: int
    errors: int
    disconnects: int
    reconnects: int
    connect_failures: int
    stale_or_bad_bars: int
    alerts: int
    trades: tuple[dict[str, Any], ...] = ()
    events: tuple[BotEvent, ...] = ()
    notes: tuple[str, ...] = ()
    curve: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def stem(self) -> str:
        return f"{self.period}-{self.label}"

    def figures(self) -> dict[str, float | int | None]:
        """The labelled numbers (``LABELS``' keys); a figure that does not exist is None."""
        return {key: _finite(getattr(self, key)) for key in LABELS}

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: the period, its labelled figures, its trades and events."""
        return {
            "bot": self.bot,
            "account": self.account,
            "period": self.period,
            "label": self.label,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "first_bar": _iso(self.first_bar),
            "last_bar": _iso(self.last_bar),
            "timezone_note": "times are the exchange's local time",
            "figures": self.figures(),
            "labels": LABELS,
            "trades": list(self.trades),
            "events": [
                {"at": _iso(e.at), "source": e.source, "kind": e.kind, "detail": e.detail}
                for e in self.events
            ],
            "notes": list(self.notes),
        }


def write_reports(
    bot_dir: Path, periods: Sequence[str] = PERIODS, *, rewrite: bool = False
) -> list[Path]:
    """Write ``<bot_dir>/reports/{daily-YYYY-MM-DD,weekly-YYYY-Www}.{html,json}`` for every
    period with bars or events; returns the paths written (HTML then JSON, by period).

    A period that ended before the bot's latest day and has both files already is kept as
    it is unless ``rewrite``: its days are over, a restarted bot's summary holds only its
    latest run's marks, and a long-running bot should not redraw months of pages each day.
    """
    record = read_bot(Path(bot_dir))
    out = record.bot_dir / REPORTS_DIR
    out.mkdir(exist_ok=True)
    days = _days(record)
    latest = days[-1] if days else None
    written = []
    for report in period_reports(record, periods):
        page, data = out / f"{report.stem}.html", out / f"{report.stem}.json"
        closed = latest is not None and report.last_day < latest
        if closed and not rewrite and page.is_file() and data.is_file():
            continue
        write_atomic(page, render_page(report))
        write_atomic(data, json.dumps(report.to_dict(), indent=1, default=str, allow_nan=False))
        written += [page, data]
    return written


def period_reports(record: BotRecord, periods: Sequence[str] = PERIODS) -> list[PeriodReport]:
    """Every daily and/or weekly period of ``record`` with bars, fills or events, in order."""
    unknown = [period for period in periods if period not in PERIODS]
    if unknown or not periods:
        raise BotFolderError(f"report periods must be among {PERIODS}, got {list(periods)}")
    days = _days(record)
    reports = []
    for period in PERIODS:
        if period not in periods:
            continue
        key = _day_label if period == DAILY else _week_label
        for label in sorted({key(day) for day in days}):
            chosen = [day for day in days if key(day) == label]
            reports.append(_period(record, period, label, chosen[0], chosen[-1]))
    return reports


def _days(record: BotRecord) -> list[date]:
    stamps = [*record.equity.index, *(record.local(f.timestamp) for f in record.fills)]
    stamps += [event.at for event in record.events]
    return sorted({pd.Timestamp(stamp).date() for stamp in stamps})


def _day_label(day: date) -> str:
    return day.isoformat()


def _week_label(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _period(record: BotRecord, period: str, label: str, first: date, last: date) -> PeriodReport:
    if period == WEEKLY:  # the whole ISO week, Monday to Sunday
        first = first - timedelta(days=first.weekday())
        last = first + timedelta(days=6)
    lo, hi = pd.Timestamp(first), pd.Timestamp(last) + pd.Timedelta(days=1)

    def inside(stamp: pd.Timestamp) -> bool:
        return bool(lo <= stamp < hi)

    equity, expected = record.equity, record.expected
    within = (equity.index >= lo) & (equity.index < hi)
    before = equity.index < lo
    opening = equity.index[before][-1:] if before.any() else equity.index[within][:1]
    curve = pd.DataFrame({"realised": equity, "expected": expected})
    curve = curve[within | equity.index.isin(opening)]
    fills = [f for f in record.fills if inside(record.local(f.timestamp))]
    events = tuple(event for event in record.events if inside(event.at))
    start, end = _ends(curve["realised"])
    expected_start, expected_end = _ends(curve["expected"])
    realised_return, expected_return = end / start - 1.0, expected_end / expected_start - 1.0
    path = curve["realised"]
    marks = equity.index[within]
    notes = []
    if record.stopped and marks.size and marks[-1] == equity.index[-1]:
        notes.append(f"The run stopped after this period's last bar: {record.stopped}")
    return PeriodReport(
        bot=record.bot_dir.name,
        account=record.account,
        period=period,
        label=label,
        first_day=first,
        last_day=last,
        first_bar=marks[0] if marks.size else None,
        last_bar=marks[-1] if marks.size else None,
        start_equity=start,
        end_equity=end,
        realised_return=realised_return,
        expected_start_equity=expected_start,
        expected_end_equity=expected_end,
        expected_return=expected_return,
        tracking_difference=realised_return - expected_return,
        max_drawdown=float((path / path.cummax() - 1.0).min()) if path.size else math.nan,
        bars=int(marks.size),
        bars_expected=_bars_expected(record, first, last),
        fills=len(fills),
        traded_notional=sum(abs(f.quantity) * f.price for f in fills),
        costs=sum(f.cost for f in fills),
        refusals=_count(events, "order_refused"),
        halts=_count(events, "halt"),
        errors=_count(events, "error"),
        disconnects=_count(events, "disconnected"),
        reconnects=_count(events, "reconnected"),
        connect_failures=_count(events, "connect_failed"),
        stale_or_bad_bars=_count(events, "halt", lambda d: d.get("kind") == BreakerKind.STALE_DATA)
        + _count(events, "error", lambda d: d.get("kind") == "bad_bar"),
        alerts=_count(events, "alert"),
        trades=tuple(_trade(record, fill) for fill in fills),
        events=events,
        notes=tuple(notes),
        curve=curve,
    )


def _ends(series: pd.Series) -> tuple[float, float]:
    """The first and last marks of a period's curve (its opening mark, then its bars);
    NaN before the bot's first mark."""
    if series.empty:
        return math.nan, math.nan
    return float(series.iloc[0]), float(series.iloc[-1])


def _count(
    events: Sequence[BotEvent], kind: str, where: Callable[[dict[str, Any]], bool] | None = None
) -> int:
    return sum(1 for e in events if e.kind == kind and (where is None or where(e.detail)))


def _bars_expected(record: BotRecord, first: date, last: date) -> int:
    """Bar slots the trading hours hold between the run's first and last mark, within
    ``first..last``: one a session for daily bars, session length / bar interval else."""
    index = record.equity.index
    if index.size < 2:
        return int(index.size)
    interval = pd.Series(index).diff().median()
    hours: TradingHours = record.hours
    total = 0
    for day in pd.date_range(max(first, index[0].date()), min(last, index[-1].date())):
        if day.weekday() not in hours.days:
            continue
        if interval >= pd.Timedelta(hours=20):
            total += 1
            continue
        slots = pd.date_range(
            datetime.combine(day.date(), hours.start),
            datetime.combine(day.date(), hours.end),
            freq=interval,
            inclusive="left",
        )
        total += int(((slots >= index[0]) & (slots <= index[-1])).sum())
    return total


def _trade(record: BotRecord, fill: Fill) -> dict[str, Any]:
    return {
        "time": _iso(record.local(fill.timestamp)),
        "symbol": fill.symbol,
        "side": str(fill.side),
        "quantity": fill.quantity,
        "price": fill.price,
        "notional": abs(fill.quantity) * fill.price,
        "cost": fill.cost,
        "exec_id": fill.exec_id,
    }


def _finite(value: float | int) -> float | int | None:
    """JSON has no NaN: a figure that does not exist (no mark yet) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso(stamp: pd.Timestamp | None) -> str | None:
    return None if stamp is None else pd.Timestamp(stamp).isoformat()


# -- the page --------------------------------------------------------------------------

_KIND_NAMES = {"sim": "simulated (sim broker)", "paper": "paper account", "live": "LIVE money"}


def render_page(report: PeriodReport) -> str:
    """The period's HTML page: labelled figures, the equity chart, trades and events."""
    esc = html.escape
    title = f"{report.bot}: {report.period} report {report.label}"
    span = (
        f"{report.first_day}"
        if report.period == DAILY
        else (f"{report.first_day} .. {report.last_day}")
    )
    chart = ""
    if report.bars > 1:  # one step (a day of daily bars) says no more than the figures
        data = base64.b64encode(png_bytes(_equity_figure(report), DPI)).decode("ascii")
        caption = "Realised equity (the bot's account) vs expected (the backtest's, same targets)"
        chart = (
            f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    notes = "".join(f'<p class="note">{esc(note)}</p>' for note in report.notes)
    bars = (
        f"{_iso(report.first_bar)} .. {_iso(report.last_bar)}"
        if report.bars
        else "no bars in this period"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{PAGE_CSS}{_CSS}</style></head>
<body>
<h1>{esc(title)}</h1>
<div class="tag">{esc(_KIND_NAMES.get(report.account, report.account))}: realised results
next to the same policy's backtest expectation, after costs. Exchange-local times.</div>
<dl><dt>period</dt><dd>{esc(span)}</dd>
<dt>bars</dt><dd>{esc(bars)}</dd></dl>
{notes}
{chart}
<h2>Figures</h2>
{_figures_table(report)}
<h2>Trades</h2>
{_trades_table(report)}
<h2>Risk events and health</h2>
{_events_table(report)}
</body></html>
"""


_CSS = "td.note { text-align: left; }"
_PERCENT = ("realised_return", "expected_return", "tracking_difference", "max_drawdown")
_MONEY = ("start_equity", "end_equity", "expected_start_equity", "expected_end_equity")


def _figures_table(report: PeriodReport) -> str:
    rows, classes = [], []
    for key, value in report.figures().items():
        if value is None:
            shown = "n/a"
        elif key in _PERCENT:
            shown = f"{value:+.3%}"
        elif key in _MONEY or key in ("traded_notional", "costs"):
            shown = f"{value:,.2f}"
        else:
            shown = f"{value:,}"
        rows.append([html.escape(key.replace("_", " ")), shown, html.escape(LABELS[key])])
        sign = sign_class(float(value)) if key in _PERCENT and value is not None else ""
        classes.append(["", sign, "note"])
    return html_table(["figure", "value", "what it is"], rows, classes)


def _trades_table(report: PeriodReport) -> str:
    if not report.trades:
        return '<p class="note">No fills in this period.</p>'
    rows = [
        [
            html.escape(str(t["time"])),
            html.escape(t["side"]),
            f"{t['quantity']:,.4f}",
            f"{t['price']:,.2f}",
            f"{t['notional']:,.2f}",
            f"{t['cost']:,.2f}",
        ]
        for t in report.trades
    ]
    head = ["time", "side", "quantity", "price", "notional", "cost"]
    return f'<div class="scroll">{html_table(head, rows)}</div>'


def _events_table(report: PeriodReport) -> str:
    if not report.events:
        return '<p class="note">No risk events, errors or connection changes.</p>'
    rows = [
        [
            html.escape(_iso(event.at) or ""),
            html.escape(event.kind),
            html.escape(event.source),
            html.escape(json.dumps(event.detail, default=str)[:300]),
        ]
        for event in report.events
    ]
    note = (
        "<p class=\"note\">Journal rows are on the bot's clock (the replay's in the sim); "
        "event-log lines on the wall clock.</p>"
    )
    table = html_table(["time", "event", "source", "detail"], rows)
    return f'{note}<div class="scroll">{table}</div>'


def _equity_figure(report: PeriodReport) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(10, 3.2))
    curve = report.curve
    axis.plot(curve.index, curve["realised"], color="#1565c0", marker=".", label="realised")
    axis.plot(curve.index, curve["expected"], color="#424242", linestyle="--", marker=".",
              label="expected (backtest, same targets)")  # fmt: skip
    axis.set_ylabel("equity")
    axis.legend(loc="upper left", fontsize=8, frameon=False)
    figure.autofmt_xdate()
    return tidy(figure, axis)
