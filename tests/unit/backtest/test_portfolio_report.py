import numpy as np
import pandas as pd
import pytest

from evotrader.backtest.baselines import (
    EQUAL_WEIGHT,
    HRP,
    compare_with_baselines,
    default_baselines,
)
from evotrader.backtest.portfolio import PortfolioSettings
from evotrader.backtest.portfolio_report import attribution_frame, write_portfolio_report


@pytest.fixture(scope="module")
def comparison():
    rng = np.random.default_rng(3)
    returns = 3e-4 + np.array([0.006, 0.012, 0.02]) * rng.standard_normal((199, 3))
    prices = 100.0 * np.vstack([np.ones(3), np.cumprod(1.0 + returns, axis=0)])
    closes = pd.DataFrame(
        prices, index=pd.bdate_range("2015-01-05", periods=200), columns=["AAA", "BBB", "CCC"]
    )

    def tilted(history) -> np.ndarray:
        return np.array([0.6, 0.3, 0.1])

    return compare_with_baselines(
        tilted,
        closes,
        PortfolioSettings("monthly"),
        name="tilted",
        start=closes.index[100],
        baselines={k: v for k, v in default_baselines().items() if k in (EQUAL_WEIGHT, HRP)},
    )


def test_attribution_adds_up_and_ranks_assets(comparison) -> None:
    result = comparison.results["tilted"]
    frame = attribution_frame(result)
    assert frame["pnl"].sum() == pytest.approx(result.equity.iloc[-1] - result.equity.iloc[0])
    assert frame["pnl"].is_monotonic_decreasing
    assert frame["share"].sum() == pytest.approx(1.0)
    assert frame.loc["AAA", "mean_weight"] > frame.loc["CCC", "mean_weight"]


def test_the_page_shows_weights_attribution_and_every_run(comparison, tmp_path) -> None:
    files = write_portfolio_report(comparison, tmp_path, "demo", title="Demo portfolio")
    page = files.html.read_text()
    assert files.html.name == "demo_portfolio.html"
    assert [p.name for p in files.pngs] == ["demo_equity.png", "demo_weights.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in files.pngs)
    assert page.count("data:image/png;base64,") == 2
    assert "test split, after costs" in page
    assert all(f"<th>{name}</th>" in page for name in ("tilted", EQUAL_WEIGHT, HRP))
    pnl = comparison.results["tilted"].per_asset["pnl"]
    for symbol in ("AAA", "BBB", "CCC"):
        assert f"<td>{symbol}</td>" in page
        assert f"{pnl[symbol]:,.2f}" in page
    assert "<script" not in page
