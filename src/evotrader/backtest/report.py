"""The backtest report: one self-contained HTML page and its PNGs, out of sample, after costs.

The page shows equity next to buy-and-hold, drawdown, positions, the metrics table (the
strategy, buy-and-hold and any other engine run on the same decisions), the trades, and a
breakdown by market regime. Regimes come from the Weather Forecaster fitted on the
checkpoint's training split alone, so the test bars never shape the labels they are judged
by. Charts are PNGs embedded as base64 and also written beside the page; the page has no
JavaScript and loads nothing, so it opens offline and renders the same everywhere.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from evotrader.backtest import metrics
from evotrader.backtest.engine import BacktestResult
from evotrader.core.atomic import write_atomic
from evotrader.core.checks import require_at_least
from evotrader.reasoning.market_classifier import (
    REGIME_LABELS,
    RegimeClassifier,
    available_classifiers,
    make_classifier,
)

REGIME_COLOURS = dict(zip(REGIME_LABELS, ("#2e7d32", "#c62828", "#757575", "#ef6c00"), strict=True))
STRATEGY, BUY_AND_HOLD = "strategy", "buy & hold"


@dataclass(frozen=True)
class ReportConfig:
    """What the report shows: the Forecaster (``rules`` or ``hmm``) and its window in bars,
    how many of the latest trades to list, and the charts' resolution."""

    classifier: str = "rules"
    regime_window: int = 64
    max_trades: int = 200
    dpi: int = 100

    def __post_init__(self) -> None:
        if self.classifier not in available_classifiers():
            raise ValueError(
                f"report classifier must be one of {available_classifiers()}, "
                f"got {self.classifier!r}"
            )
        require_at_least("report ", self, 2, "regime_window")
        require_at_least("report ", self, 1, "max_trades")
        if not 50 <= self.dpi <= 300:
            raise ValueError(f"report dpi must be in [50, 300], got {self.dpi}")


def fit_forecaster(
    bars: pd.DataFrame, train_start: str, train_end: str, config: ReportConfig
) -> RegimeClassifier:
    """The Weather Forecaster fitted on the close-to-close log returns of the training
    split ``train_start..train_end`` only."""
    train = bars.loc[train_start:train_end, "close"].to_numpy(np.float64)
    if len(train) < 2:
        raise ValueError(f"no training bars between {train_start} and {train_end} to fit on")
    return make_classifier(config.classifier).fit(np.diff(np.log(train)))


def regime_labels(
    result: BacktestResult, bars: pd.DataFrame, forecaster: RegimeClassifier, window: int
) -> pd.Series:
    """The regime the Forecaster reports at each backtest bar's close, from the trailing
    ``window`` returns (earlier bars serve as history); None where no full window exists."""
    end = result.equity.index[-1]
    if window < forecaster.min_window:
        raise ValueError(
            f"regime window {window} is below the {forecaster.name} forecaster's minimum "
            f"{forecaster.min_window}"
        )
    labels = forecaster.classify_bars(bars.loc[:end], window)
    return labels.reindex(result.equity.index)


def regime_breakdown(result: BacktestResult, labels: pd.Series) -> pd.DataFrame:
    """Per regime: bars, share of bars, return, Sharpe and exposure of the strategy, and
    buy-and-hold's return and Sharpe, over the backtest's bars.

    Bar i's return (close i-1 to close i) belongs to the regime reported at close i-1, when
    the position held over it was decided, so the Forecaster never sees the return it is
    scored on. Returns compound within a regime (the regimes' growth factors multiply to
    the whole backtest's); Sharpe is annualised with the backtest's bars per year.
    """
    ppy = metrics.periods_per_year(result.equity.index)
    decided_in = labels.shift(1).iloc[1:]
    strategy = result.equity.pct_change().iloc[1:]
    benchmark = result.benchmark_equity.pct_change().iloc[1:]
    held = result.positions.iloc[1:] != 0
    rows = []
    for regime in [*REGIME_LABELS, None]:
        mask = decided_in.isna() if regime is None else decided_in.eq(regime)
        if not mask.any():
            continue
        ours = _performance(strategy[mask], ppy)
        theirs = _performance(benchmark[mask], ppy)
        rows.append(
            {
                "regime": regime or "unlabelled",
                "bars": int(mask.sum()),
                "share": float(mask.mean()),
                "return": ours["total_return"],
                "sharpe": ours["sharpe"],
                "exposure": float(held[mask].mean()),
                "buy_and_hold_return": theirs["total_return"],
                "buy_and_hold_sharpe": theirs["sharpe"],
            }
        )
    return pd.DataFrame(rows).set_index("regime")


def metric_rows(columns: Mapping[str, Mapping[str, float]]) -> list[tuple[str, ...]]:
    """(label, value per column) rows in metrics.py's order and formats."""
    keys = list(dict.fromkeys(key for column in columns.values() for key in column))
    known = [key for key in metrics._DISPLAY if key in keys]
    rows = []
    for key in known + sorted(set(keys) - set(known)):
        label, kind = metrics._DISPLAY.get(key, (key, "ratio"))
        rows.append(
            (label, *(metrics._format_value(column.get(key), kind) for column in columns.values()))
        )
    return rows


def format_columns(columns: Mapping[str, Mapping[str, float]], title: str) -> str:
    """Plain-text table of several metric columns side by side, e.g. two engines."""
    rows = [("", *columns), *metric_rows(columns)]
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    lines = [
        "  ".join(
            f"{cell:<{w}}" if col == 0 else f"{cell:>{w}}"
            for col, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    rule = "-" * len(lines[0])
    return "\n".join([title, rule, lines[0], rule, *lines[1:], rule])


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pngs: list[Path]


def write_report(
    result: BacktestResult,
    bars: pd.DataFrame,
    data_range: Mapping[str, str],
    out_dir: Path,
    stem: str,
    *,
    title: str,
    details: Mapping[str, str] | None = None,
    engines: Mapping[str, Mapping[str, float]] | None = None,
    notes: Sequence[str] = (),
    config: ReportConfig | None = None,
) -> ReportFiles:
    """Write ``{stem}_report.html`` and ``{stem}_{equity,drawdown,positions}.png``.

    ``bars`` hold the backtest's bars and the history before them (the training split
    included, for the Forecaster's fit); ``data_range`` names the splits as checkpoints do.
    ``details`` are header lines (checkpoint, costs); ``engines`` are extra metric columns
    (other engines on the same decisions) and ``notes`` explain them under the table.
    """
    config = config or ReportConfig()
    train = data_range["train_start"], data_range["train_end"]
    try:
        forecaster = fit_forecaster(bars, *train, config)
    except ValueError as error:  # too little training data to fit: report without regimes
        labels = pd.Series(None, index=result.equity.index, dtype=object, name="regime")
        forecaster_note = f"No regimes: {html.escape(str(error))}"
    else:
        labels = regime_labels(result, bars, forecaster, config.regime_window)
        forecaster_note = (
            f"Weather Forecaster <b>{html.escape(forecaster.name)}</b> fitted on the training "
            f"split {html.escape(_day(train[0]))} .. {html.escape(_day(train[1]))} only; window "
            f"{config.regime_window} bars. A bar's return counts for the regime reported at "
            "the previous close, when its position was decided."
        )
    breakdown = regime_breakdown(result, labels)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = {
        "equity": ("Equity vs buy & hold, regimes shaded", _equity_figure(result, labels)),
        "drawdown": ("Drawdown", _drawdown_figure(result)),
        "positions": ("Position held (fraction of equity)", _positions_figure(result)),
    }
    pngs, images = [], []
    for name, (caption, figure) in charts.items():
        png = png_bytes(figure, config.dpi)
        path = out_dir / f"{stem}_{name}.png"
        write_atomic(path, png)
        pngs.append(path)
        images.append((caption, base64.b64encode(png).decode("ascii")))
    columns = {STRATEGY: result.metrics, BUY_AND_HOLD: result.benchmark, **(engines or {})}
    page = _page(
        title,
        details or {},
        columns,
        notes,
        breakdown,
        forecaster_note,
        result.trades,
        config.max_trades,
        images,
    )
    path = out_dir / f"{stem}_report.html"
    write_atomic(path, page)
    return ReportFiles(path, pngs)


def _day(text: str) -> str:
    """A split bound as a date when it is midnight (daily bars), else as it is."""
    stamp = pd.Timestamp(text)
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


def _performance(returns: pd.Series, ppy: float) -> dict[str, float]:
    equity = pd.Series(np.concatenate(([1.0], np.cumprod(1.0 + returns.to_numpy()))))
    return metrics.performance_metrics(equity, ppy)


# -- charts ----------------------------------------------------------------------------


def _equity_figure(result: BacktestResult, labels: pd.Series) -> Figure:
    figure, axis = plt.subplots(figsize=(11, 4.2))
    for regime in REGIME_LABELS:
        axis.fill_between(
            labels.index,
            0,
            1,
            where=labels.eq(regime).to_numpy(),
            step="post",
            transform=axis.get_xaxis_transform(),
            color=REGIME_COLOURS[regime],
            alpha=0.12,
            linewidth=0,
            label=regime.replace("_", " "),
        )
    axis.plot(result.equity, color="#1565c0", linewidth=1.4, label=STRATEGY)
    axis.plot(result.benchmark_equity, color="#424242", linewidth=1.0, label=BUY_AND_HOLD)
    axis.set_ylabel("equity")
    axis.legend(loc="upper left", ncol=3, fontsize=8, frameon=False)
    return tidy(figure, axis)


def _drawdown_figure(result: BacktestResult) -> Figure:
    figure, axis = plt.subplots(figsize=(11, 2.8))
    for series, label, colour in (
        (result.equity, STRATEGY, "#1565c0"),
        (result.benchmark_equity, BUY_AND_HOLD, "#424242"),
    ):
        drawdown = series / series.cummax() - 1.0
        axis.fill_between(drawdown.index, drawdown, 0, color=colour, alpha=0.25, label=label)
    axis.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axis.set_ylabel("drawdown")
    axis.legend(loc="lower left", fontsize=8, frameon=False)
    return tidy(figure, axis)


def _positions_figure(result: BacktestResult) -> Figure:
    figure, axis = plt.subplots(figsize=(11, 2.2))
    axis.step(result.positions.index, result.positions, where="post", color="#1565c0")
    axis.axhline(0.0, color="#9e9e9e", linewidth=0.8)
    axis.set_ylabel("position")
    return tidy(figure, axis)


def tidy(figure: Figure, axis: Axes) -> Figure:
    """The reports' chart style: light grid, no top or right spine, tight layout."""
    axis.grid(alpha=0.3)
    axis.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return figure


def png_bytes(figure: Figure, dpi: int) -> bytes:
    """The figure as PNG bytes (to embed as base64 and write beside a page); closes it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    return buffer.getvalue()


# -- the page --------------------------------------------------------------------------

_PROMISE = "Out of sample (test split), after costs, next to buy-and-hold on the same bars."
# The reports' shared style sheet (inline: the pages load nothing).
PAGE_CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif;
       color: #212121; margin: 24px auto; max-width: 1180px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.tag { color: #2e7d32; font-weight: 600; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; margin: 12px 0; }
dt { color: #616161; } dd { margin: 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e0e0e0; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #9e9e9e; background: #fafafa; }
td.neg { color: #c62828; } td.pos { color: #2e7d32; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
figure { margin: 12px 0; } figure img { width: 100%; height: auto; }
figcaption, .note { color: #616161; font-size: 12px; }
.scroll { max-height: 420px; overflow-y: auto; display: inline-block; }
"""


def _page(
    title: str,
    details: Mapping[str, str],
    columns: Mapping[str, Mapping[str, float]],
    notes: Sequence[str],
    breakdown: pd.DataFrame,
    forecaster_note: str,
    trades: pd.DataFrame,
    max_trades: int,
    images: list[tuple[str, str]],
) -> str:
    esc = html.escape
    header = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in details.items())
    equity, *others = [
        f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
        for caption, data in images
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{PAGE_CSS}</style></head>
<body>
<h1>{esc(title)}</h1>
<div class="tag">{_PROMISE}</div>
<dl>{header}</dl>
{equity}
<h2>Metrics</h2>
{_metrics_table(columns)}
{"".join(f'<p class="note">{esc(note)}</p>' for note in notes)}
<h2>By market regime</h2>
{_regime_table(breakdown)}
<p class="note">{forecaster_note}</p>
{"".join(others)}
<h2>Trades</h2>
{_trades_table(trades, max_trades)}
</body></html>
"""


def html_table(
    head: list[str], rows: list[list[str]], classes: list[list[str]] | None = None
) -> str:
    """A table for the reports' pages: ``head`` escaped, cells as given (already HTML),
    ``classes`` a CSS class per cell (e.g. ``sign_class``)."""
    esc = html.escape
    classes = classes or [[""] * len(row) for row in rows]
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{c}">{cell}</td>' if c else f"<td>{cell}</td>"
            for cell, c in zip(row, row_classes, strict=True)
        )
        + "</tr>"
        for row, row_classes in zip(rows, classes, strict=True)
    )
    heads = "".join(f"<th>{esc(h)}</th>" for h in head)
    return f"<table><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table>"


def _metrics_table(columns: Mapping[str, Mapping[str, float]]) -> str:
    rows = [[html.escape(cell) for cell in row] for row in metric_rows(columns)]
    return html_table(["", *columns], rows)


def _regime_table(breakdown: pd.DataFrame) -> str:
    rows, classes = [], []
    for regime, row in breakdown.iterrows():
        colour = REGIME_COLOURS.get(str(regime), "#ffffff")
        name = f'<span class="swatch" style="background:{colour}"></span>' + html.escape(
            str(regime).replace("_", " ")
        )
        values = [
            row["return"],
            row["sharpe"],
            row["buy_and_hold_return"],
            row["buy_and_hold_sharpe"],
        ]
        rows.append(
            [
                name,
                f"{int(row['bars']):,}",
                f"{row['share']:.1%}",
                f"{row['return']:.2%}",
                f"{row['sharpe']:.2f}",
                f"{row['exposure']:.1%}",
                f"{row['buy_and_hold_return']:.2%}",
                f"{row['buy_and_hold_sharpe']:.2f}",
            ]
        )
        signs = [sign_class(v) for v in values]
        classes.append(["", "", "", signs[0], signs[1], "", signs[2], signs[3]])
    head = ["regime", "bars", "share", "return", "Sharpe", "exposure", "B&H return", "B&H Sharpe"]
    return html_table(head, rows, classes)


def _trades_table(trades: pd.DataFrame, max_trades: int) -> str:
    if trades.empty:
        return '<p class="note">No trades.</p>'
    shown = trades.tail(max_trades)
    rows, classes = [], []
    for trade in shown.to_dict("records"):
        still_open = " (open)" if trade["open_at_end"] else ""
        rows.append(
            [
                f"{trade['entry_time']:%Y-%m-%d %H:%M}",
                f"{trade['exit_time']:%Y-%m-%d %H:%M}{still_open}",
                "long" if trade["direction"] > 0 else "short",
                f"{trade['entry_price']:,.2f}",
                f"{trade['exit_price']:,.2f}",
                f"{int(trade['bars_held']):,}",
                f"{trade['pnl']:,.2f}",
                "n/a" if math.isnan(trade["return"]) else f"{trade['return']:.2%}",
            ]
        )
        sign = sign_class(trade["pnl"])
        classes.append(["", "", "", "", "", "", sign, sign])
    head = ["entry", "exit", "side", "entry price", "exit price", "bars", "P&L", "return"]
    note = ""
    if len(trades) > len(shown):
        note = f'<p class="note">The latest {len(shown)} of {len(trades)} trades.</p>'
    return f'{note}<div class="scroll">{html_table(head, rows, classes)}</div>'


def sign_class(value: float) -> str:
    """The CSS class colouring a number by its sign (``pos``, ``neg``, or none)."""
    if not math.isfinite(value) or value == 0:
        return ""
    return "pos" if value > 0 else "neg"
