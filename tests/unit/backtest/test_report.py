"""The HTML backtest report: regime breakdown arithmetic, a Forecaster fitted on training
bars only, a self-contained page, and a headless-Chromium screenshot of it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.support.chromium import screenshot

from evotrader.backtest.engine import BacktestResult, run_backtest
from evotrader.backtest.policies import MovingAverageCrossover
from evotrader.backtest.report import (
    ReportConfig,
    fit_forecaster,
    format_columns,
    regime_breakdown,
    regime_labels,
    write_report,
)
from evotrader.data import FeaturePipeline
from evotrader.env import EnvSpec
from evotrader.reasoning.market_classifier import REGIME_LABELS

TEST_START = 400  # bars 0..299 train (the conftest pipeline's fit), 400.. the test split


@pytest.fixture(scope="module")
def data_range(bars: pd.DataFrame) -> dict[str, str]:
    index = bars.index
    return {
        "train_start": str(index[0]),
        "train_end": str(index[299]),
        "test_start": str(index[TEST_START]),
        "test_end": str(index[-1]),
    }


@pytest.fixture(scope="module")
def result(bars: pd.DataFrame, pipeline: FeaturePipeline) -> BacktestResult:
    return run_backtest(
        MovingAverageCrossover(pipeline, fast=5, slow=20),
        bars,
        pipeline=pipeline,
        start=bars.index[TEST_START],
        spec=EnvSpec(window=32, agent_state=False),
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory, result, bars, data_range):
    out = tmp_path_factory.mktemp("report")
    files = write_report(
        result,
        bars,
        data_range,
        out,
        "SYN_test",
        title="SYN <ppo>: test split",
        details={"checkpoint": "runs/x/SYN_stage_1_ppo.pth"},
        engines={"nautilus (close)": result.metrics | {"total_return": 0.123456}},
        notes=["Fill timing differs & is explained here."],
        config=ReportConfig(max_trades=5),
    )
    return files, files.html.read_text()


def test_regime_breakdown_adds_up_to_the_whole_backtest(result, bars, data_range) -> None:
    config = ReportConfig(regime_window=48)
    forecaster = fit_forecaster(bars, data_range["train_start"], data_range["train_end"], config)
    labels = regime_labels(result, bars, forecaster, config.regime_window)
    assert labels.notna().all() and set(labels) <= set(REGIME_LABELS)
    table = regime_breakdown(result, labels)
    returns = len(result.equity) - 1
    assert table["bars"].sum() == returns and table["share"].sum() == pytest.approx(1.0)
    growth = np.prod(1.0 + table["return"])
    assert growth == pytest.approx(1.0 + result.metrics["total_return"], rel=1e-9)
    benchmark = np.prod(1.0 + table["buy_and_hold_return"])
    assert benchmark == pytest.approx(1.0 + result.benchmark["total_return"], rel=1e-9)
    held = (result.positions.iloc[1:] != 0).sum()
    assert (table["exposure"] * table["bars"]).sum() == pytest.approx(held)
    assert len(table) >= 2  # regime-switching bars: the Forecaster sees more than one regime


def test_a_bars_return_belongs_to_the_regime_reported_at_the_previous_close(result) -> None:
    labels = pd.Series("ranging", index=result.equity.index, dtype=object)
    labels.iloc[10] = "volatile"  # so bar 11's return, and only it, is volatile
    table = regime_breakdown(result, labels)
    expected = result.equity.iloc[11] / result.equity.iloc[10] - 1.0
    assert table.loc["volatile", "bars"] == 1
    assert table.loc["volatile", "return"] == pytest.approx(expected, rel=1e-12)
    assert table.loc["volatile", "exposure"] == float(result.positions.iloc[11] != 0)


def test_the_forecaster_is_fitted_on_the_training_split_only(bars, data_range) -> None:
    config = ReportConfig(classifier="hmm")
    fitted = fit_forecaster(bars, data_range["train_start"], data_range["train_end"], config)
    later = bars.copy()
    later.iloc[300:, :4] *= np.linspace(1.0, 3.0, len(bars) - 300)[:, None]  # new future
    refitted = fit_forecaster(later, data_range["train_start"], data_range["train_end"], config)
    assert fitted.state_dict() == refitted.state_dict()
    widened = fit_forecaster(bars, data_range["train_start"], str(bars.index[450]), config)
    assert widened.state_dict() != fitted.state_dict()  # the bounds are what it fits on


def test_the_page_is_self_contained_and_shows_every_part(report, result) -> None:
    files, page = report
    assert files.html.name == "SYN_test_report.html"
    assert [p.name for p in files.pngs] == [
        "SYN_test_equity.png",
        "SYN_test_drawdown.png",
        "SYN_test_positions.png",
    ]
    for png in files.pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<script" not in page.lower() and not re.search(r"(src|href)=\"(?!data:)", page)
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert page.count('src="data:image/png;base64,') == 3
    assert "SYN &lt;ppo&gt;: test split" in page  # escaped
    assert "Fill timing differs &amp; is explained here." in page
    sharpe = f"{result.metrics['sharpe']:.2f}", f"{result.benchmark['sharpe']:.2f}"
    row = re.search(r"<td>Sharpe ratio</td><td>([^<]*)</td><td>([^<]*)</td>", page)
    assert row and row.groups()[:2] == sharpe
    assert "12.35%" in page  # the extra engine's column
    trades = len(result.trades)
    assert trades > 5 and f"The latest 5 of {trades} trades." in page
    assert page.count("<tr>") >= 16 + 5 + 2  # metrics, trades, regimes
    assert "fitted on the training split 2000-01-03 .. " in page


def test_too_short_a_training_split_reports_without_regimes(
    result, bars, data_range, tmp_path: Path
) -> None:
    short = data_range | {"train_end": str(bars.index[50])}  # 50 returns: rules needs 160
    files = write_report(result, bars, short, tmp_path, "SYN_test", title="short")
    page = files.html.read_text()
    assert "No regimes: rules.fit returns" in page and "unlabelled" in page
    assert len(files.pngs) == 3


def test_several_engines_print_side_by_side(result) -> None:
    table = format_columns(
        {"ours": result.metrics, "nautilus": result.metrics | {"sharpe": 9.87}}, "Engines"
    )
    sharpe = next(line for line in table.splitlines() if line.startswith("Sharpe ratio"))
    assert sharpe.split()[-2:] == [f"{result.metrics['sharpe']:.2f}", "9.87"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"classifier": "tarot"}, "classifier must be one of"),
        ({"regime_window": 1}, "regime_window must be >= 2"),
        ({"max_trades": 0}, "max_trades must be >= 1"),
        ({"dpi": 10}, "dpi must be in"),
    ],
)
def test_bad_report_settings_fail_clearly(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        ReportConfig(**settings)


def test_a_window_below_the_forecasters_minimum_is_refused(result, bars, data_range) -> None:
    rules = fit_forecaster(bars, data_range["train_start"], data_range["train_end"], ReportConfig())
    with pytest.raises(ValueError, match="below the rules forecaster's minimum 40"):
        regime_labels(result, bars, rules, 20)


def test_the_report_renders_in_headless_chromium(report, tmp_path: Path) -> None:
    files, _ = report
    pixels = screenshot(files.html, tmp_path)
    assert pixels.shape[:2] == (2000, 1280)
    grey = pixels.mean(axis=2)
    assert grey.std() > 0.05  # not blank: text, tables and charts on a white page
    assert (grey < 0.3).mean() > 0.002 and (grey > 0.95).mean() > 0.5
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 100  # charts render (anti-aliased lines, shaded regimes)
