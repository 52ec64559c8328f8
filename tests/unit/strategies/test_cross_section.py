"""The cross-sectional building blocks and a few planted behaviours of the templates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.unit.strategies.synthetic_pairs import template_case

from evotrader.strategies.knowledge import default_knowledge
from evotrader.strategies.templates import SIGNALS, template_signal
from evotrader.strategies.templates._cross_section import (
    every,
    market_fit,
    panel,
    percentile,
    positive_volume,
    rank_select,
    with_hurdle,
)

NAN = np.nan


def test_rank_select_holds_the_top_long_and_the_bottom_short() -> None:
    scores = np.array([[3.0, 1.0, 2.0, 5.0, 4.0]])
    assert rank_select(scores, 2, 1).tolist() == [[0, -1, 0, 1, 1]]
    assert rank_select(scores, 1, 0).tolist() == [[0, 0, 0, 1, 0]]
    assert rank_select(scores, 0, 2).tolist() == [[0, -1, -1, 0, 0]]


def test_rank_select_breaks_ties_towards_the_lower_column() -> None:
    scores = np.array([[1.0, 2.0, 2.0, 2.0, 0.0]])
    assert rank_select(scores, 2, 0).tolist() == [[0, 1, 1, 0, 0]]
    flat = np.ones((1, 4))
    assert rank_select(flat, 1, 1).tolist() == [[1, 0, 0, -1]]  # one order, read from both ends
    assert rank_select(flat, 2, 2).tolist() == [[1, 1, -1, -1]]


def test_rank_select_ranks_finite_scores_only_and_skips_thin_rows() -> None:
    scores = np.array(
        [
            [NAN, NAN, NAN, NAN],  # warm-up: flat
            [NAN, 1.0, NAN, NAN],  # one finite score cannot fill two picks: flat
            [NAN, 1.0, np.inf, 3.0],  # inf is not a score
            [2.0, NAN, 1.0, 0.5],
        ]
    )
    out = rank_select(scores, 1, 1)
    assert out.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, -1, 0, 1], [1, 0, 0, -1]]


def test_rank_select_never_holds_a_symbol_both_ways() -> None:
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 3, (200, 6)).astype(np.float64)  # many ties
    scores[rng.random((200, 6)) < 0.2] = NAN
    out = rank_select(scores, 2, 2)
    full = np.isfinite(scores).sum(axis=1) >= 4
    assert ((out == 1).sum(axis=1) == np.where(full, 2, 0)).all()
    assert ((out == -1).sum(axis=1) == np.where(full, 2, 0)).all()
    assert rank_select(np.array([[1.0, 2.0]]), 2, 2).tolist() == [[0.0, 0.0]]  # too few symbols


def test_every_revises_on_its_days_and_holds_between() -> None:
    targets = np.arange(10, dtype=np.float64).reshape(10, 1)
    assert every(targets, 4)[:, 0].tolist() == [0, 0, 0, 0, 4, 4, 4, 4, 8, 8]
    assert every(targets, 1)[:, 0].tolist() == list(range(10))
    warm = np.array([[NAN], [1.0], [2.0], [3.0]])
    assert every(warm, 2)[:, 0].tolist() == [0.0, 0.0, 2.0, 2.0]  # unknown revision: flat


def test_every_is_causal_under_truncation() -> None:
    targets = np.random.default_rng(0).standard_normal((50, 3))
    full = every(targets, 7)
    assert np.array_equal(every(targets[:30], 7), full[:30])


def test_with_hurdle_keeps_only_picks_whose_own_score_agrees() -> None:
    picks = np.array([[1.0, 1.0, -1.0, -1.0, 0.0]])
    scores = np.array([[0.2, 0.01, -0.2, -0.01, 0.5]])
    assert with_hurdle(picks, scores, 0.05).tolist() == [[1, 0, -1, 0, 0]]


def test_percentile_ranks_across_symbols_and_leaves_nan_unranked() -> None:
    scores = pd.DataFrame([[3.0, NAN, 1.0, 2.0]])
    assert percentile(scores).iloc[0].tolist() == pytest.approx(
        [1.0, NAN, 1 / 3, 2 / 3], nan_ok=True
    )


def _walks(returns: np.ndarray) -> list[pd.DataFrame]:
    index = pd.bdate_range("2020-01-01", periods=len(returns) + 1)
    frames = []
    for column in returns.T:
        close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(column)]))
        frames.append(
            pd.DataFrame(
                {"open": close, "high": close, "low": close, "close": close, "volume": 1e6},
                index=index,
            )
        )
    return frames


def test_market_fit_recovers_planted_betas_and_residual_risk() -> None:
    rng = np.random.default_rng(3)
    common = rng.normal(0, 0.01, 400)
    betas = np.array([0.5, 1.0, 1.5])
    noise = np.array([0.002, 0.005, 0.01])
    returns = pd.DataFrame(common[:, None] * betas + rng.normal(0, 1, (400, 3)) * noise)
    beta, residual_variance = market_fit(returns, 300)
    window = returns.iloc[-300:].to_numpy()
    index = window.mean(axis=1)
    expected = [np.cov(window[:, i], index, ddof=0)[0, 1] / index.var() for i in range(3)]
    np.testing.assert_allclose(beta.iloc[-1], expected, rtol=1e-9)
    residuals = window - np.array(expected) * index[:, None]
    np.testing.assert_allclose(residual_variance.iloc[-1], residuals.var(axis=0), rtol=1e-6)
    assert np.argsort(beta.iloc[-1].to_numpy()).tolist() == [0, 1, 2]  # the planted order
    assert beta.iloc[:299].isna().all().all()


def test_panel_rejects_misaligned_frames_and_positive_volume_hides_zeros() -> None:
    frames = _walks(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="share one index"):
        panel([frames[0], frames[1].iloc[1:]])
    frames[1].loc[frames[1].index[2], "volume"] = 0.0
    volume = positive_volume(frames)
    assert volume[1].isna().tolist() == [False, False, True, False, False, False]


VOLUME_RULES = [
    template_id
    for template_id, code in SIGNALS.items()
    if code.function.__module__.endswith("cross_sectional_volume")
]


@pytest.mark.parametrize("template_id", VOLUME_RULES)
def test_volume_rules_stay_flat_without_volume(template_id) -> None:
    data, symbols = template_case(template_id, 400)
    frames = [data[s].assign(volume=0.0) for s in symbols]
    defaults = default_knowledge().template(template_id).defaults()
    assert not template_signal(template_id, frames, defaults).any()


def test_same_month_seasonality_holds_the_symbol_that_rose_in_that_month() -> None:
    index = pd.bdate_range("2019-01-01", "2021-12-31")
    rng = np.random.default_rng(5)
    returns = rng.normal(0, 0.001, (len(index) - 1, 3))
    march = index[1:].month == 3
    returns[march, 2] += 0.01  # symbol 2 rises every March
    frames = _walks(returns)
    frames = [frame.set_axis(index) for frame in frames]
    targets = template_signal(
        "seasonal/same-month-seasonality", frames, {"years": 2, "top_n": 1, "bottom_n": 0}
    )
    held = pd.DataFrame(targets, index=index)
    assert (held.loc["2020-03", 2] == 1).all() and (held.loc["2021-03", 2] == 1).all()
    assert (held.loc["2019"] == 0).all().all()  # no past year yet


def test_residual_momentum_ignores_the_market_and_picks_the_idiosyncratic_winner() -> None:
    rng = np.random.default_rng(9)
    common = rng.normal(0, 0.02, 300)
    betas = np.array([2.0, 1.0, 1.0, 0.5])
    returns = common[:, None] * betas + rng.normal(0, 0.004, (300, 4))
    returns[:, 1] += 0.002  # symbol 1 drifts up on its own
    returns += 0.003 * betas  # a bull market: the high-beta symbol rises most
    frames = _walks(returns)
    parameters = {"lookback": 250, "skip": 0, "top_n": 1, "bottom_n": 0, "rebalance": 1}
    residual = template_signal("momentum/residual-momentum", frames, parameters)
    total = template_signal("momentum/cross-sectional-momentum", frames, parameters)
    assert residual[-1].tolist() == [0, 1, 0, 0]
    assert total[-1].tolist() == [1, 0, 0, 0]  # raw return picks the high-beta symbol
