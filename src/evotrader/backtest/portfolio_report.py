"""The portfolio part of the report: equity next to the baselines, weights over time and
per-asset attribution, after costs, on the split the comparison names.

Built from backtest/report.py's shared helpers (chart style, PNG bytes, HTML table, CSS), so
a portfolio section looks like the single-asset page and loads nothing either.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from evotrader.backtest.baselines import Comparison
from evotrader.backtest.portfolio import PortfolioResult
from evotrader.backtest.report import (
    PAGE_CSS,
    ReportFiles,
    html_table,
    metric_rows,
    png_bytes,
    sign_class,
    tidy,
)
from evotrader.core.atomic import write_atomic


def attribution_frame(result: PortfolioResult) -> pd.DataFrame:
    """Per asset, best first: P&L after its own costs, its share of the total P&L, mean held
    weight, costs and turnover. The P&L column sums to the portfolio's equity change."""
    per_asset = result.per_asset
    total = float(per_asset["pnl"].sum())
    frame = pd.DataFrame(
        {
            "pnl": per_asset["pnl"],
            "share": per_asset["pnl"] / total if total != 0 else np.nan,
            "mean_weight": per_asset["mean_weight"],
            "costs": per_asset["costs"],
            "turnover": per_asset["turnover"],
        }
    )
    return frame.sort_values("pnl", ascending=False)


def weights_figure(result: PortfolioResult) -> Figure:
    """Held weights per close: stacked areas when long-only, one line per asset otherwise."""
    weights = result.weights
    figure, axis = plt.subplots(figsize=(11, 3.6))
    palette = plt.get_cmap("tab20" if len(weights.columns) > 10 else "tab10")
    colours = [palette(i % palette.N) for i in range(len(weights.columns))]
    axis.set_prop_cycle(color=colours)
    if (weights.to_numpy() >= 0).all():
        axis.stackplot(weights.index, weights.to_numpy().T, labels=weights.columns, alpha=0.9)
        axis.set_ylim(0.0, max(1.0, float(weights.sum(axis=1).max())))
    else:
        for symbol in weights.columns:
            axis.plot(weights.index, weights[symbol], linewidth=1.0, label=symbol)
        axis.axhline(0.0, color="#9e9e9e", linewidth=0.8)
    axis.set_ylabel("weight (of equity)")
    if len(weights.columns) <= 20:  # more would be unreadable: the attribution table names them
        axis.legend(
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=7,
            frameon=False,
            ncol=1 + len(weights.columns) // 11,
        )
    return tidy(figure, axis)


def equity_figure(results: Mapping[str, PortfolioResult], policy: str) -> Figure:
    """Every run's equity on the same axes; the policy's drawn heavier."""
    figure, axis = plt.subplots(figsize=(11, 3.6))
    for name, result in results.items():
        heavy = name == policy
        axis.plot(
            result.equity.index,
            result.equity,
            linewidth=1.8 if heavy else 1.0,
            alpha=1.0 if heavy else 0.75,
            label=name,
        )
    axis.set_ylabel("equity")
    axis.legend(loc="upper left", fontsize=8, frameon=False)
    return tidy(figure, axis)


def portfolio_section(comparison: Comparison, dpi: int = 100) -> tuple[str, dict[str, bytes]]:
    """The section's HTML (charts embedded as base64) and its PNGs by name."""
    esc = html.escape
    result = comparison.results[comparison.policy]
    pngs = {
        "equity": png_bytes(equity_figure(comparison.results, comparison.policy), dpi),
        "weights": png_bytes(weights_figure(result), dpi),
    }
    captions = {
        "equity": f"Equity, {comparison.policy} and baselines ({comparison.split} split)",
        "weights": f"Weights held by {comparison.policy} at each close",
    }
    figures = {
        name: f'<figure><img alt="{esc(captions[name])}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}"><figcaption>{esc(captions[name])}'
        "</figcaption></figure>"
        for name, png in pngs.items()
    }
    columns = {name: run.metrics for name, run in comparison.results.items()}
    metrics_rows = [[esc(cell) for cell in row] for row in metric_rows(columns)]
    notes = "".join(f'<p class="note">{esc(note)}</p>' for note in result.notes)
    section = (
        f"<h2>Portfolio vs baselines ({esc(comparison.split)} split, after costs)</h2>"
        f"{figures['equity']}"
        f"{html_table(['', *columns], metrics_rows)}{notes}"
        f"<h2>Weights over time</h2>{figures['weights']}"
        f"<h2>Per-asset attribution</h2>{_attribution_table(attribution_frame(result))}"
        '<p class="note">P&amp;L per asset is its position value less the cash paid into it, '
        "costs included; the column sums to the change in equity.</p>"
    )
    return section, pngs


def write_portfolio_report(
    comparison: Comparison, out_dir: Path, stem: str, *, title: str, dpi: int = 100
) -> ReportFiles:
    """Write ``{stem}_portfolio.html`` and ``{stem}_{equity,weights}.png`` atomically."""
    section, pngs = portfolio_section(comparison, dpi)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in pngs.items():
        path = out_dir / f"{stem}_{name}.png"
        write_atomic(path, png)
        paths.append(path)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{PAGE_CSS}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{section}</body></html>\n"
    )
    path = out_dir / f"{stem}_portfolio.html"
    write_atomic(path, page)
    return ReportFiles(path, paths)


def _attribution_table(frame: pd.DataFrame) -> str:
    rows, classes = [], []
    for symbol, row in frame.iterrows():
        share = "n/a" if np.isnan(row["share"]) else f"{row['share']:.1%}"
        rows.append(
            [
                html.escape(str(symbol)),
                f"{row['pnl']:,.2f}",
                share,
                f"{row['mean_weight']:.1%}",
                f"{row['costs']:,.2f}",
                f"{row['turnover']:.2f}",
            ]
        )
        classes.append(["", sign_class(row["pnl"]), "", "", "", ""])
    head = ["asset", "P&L", "share of P&L", "mean weight", "costs", "turnover (x/yr)"]
    return html_table(head, rows, classes)
