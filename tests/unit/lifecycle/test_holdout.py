"""Challenger vs champion on bars after both test splits, through TradableCheckpoint."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from tests.unit.lifecycle.helpers import BETTER, CHAMPION, HOLDOUT_END, WORSE, lifecycle_checkpoint

from evotrader.data import load_bars
from evotrader.lifecycle import states
from evotrader.lifecycle.holdout import RULE, compare_on_holdout
from evotrader.lifecycle.states import LifecycleError, TransitionError
from evotrader.lifecycle.store import HOLDOUT, ModelRegistry


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return load_bars("embedded", "GOOG").loc[:HOLDOUT_END]


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """GOOG's champion (seed CHAMPION) and two newer paper entries, better and worse."""
    with ModelRegistry(tmp_path / "registry.sqlite") as opened:
        for seed in (CHAMPION, WORSE, BETTER):
            entry = opened.record_checkpoint(lifecycle_checkpoint(tmp_path / f"{seed}.pth", seed))
            opened.promote(entry.id, states.PAPER)
        opened.promote(1, states.CHAMPION, "first champion")
        yield opened


def test_a_holdout_overlapping_either_test_split_is_refused(registry, bars) -> None:
    with pytest.raises(LifecycleError, match=r"test split ends 2010-12-31.*2010-06-01"):
        compare_on_holdout(registry, 3, 1, bars, start="2010-06-01")
    with pytest.raises(LifecycleError, match="only 0 bars after both test splits"):
        compare_on_holdout(registry, 3, 1, bars.loc[:"2010-12-31"])
    assert registry.comparisons() == []


def test_a_newer_but_worse_candidate_does_not_replace_the_champion(registry, bars) -> None:
    comparison = compare_on_holdout(registry, 2, 1, bars)
    assert not comparison.passed
    worse, champion = comparison.figures["challenger"], comparison.figures["champion"]
    assert worse["excess_sharpe"] < 0 < champion["excess_sharpe"]
    with pytest.raises(TransitionError, match=f"latest comparison {comparison.id} failed"):
        registry.promote(2, states.CHAMPION)
    assert registry.champion("GOOG").id == 1


def test_a_better_challenger_replaces_the_champion_after_the_holdout(registry, bars) -> None:
    comparison = compare_on_holdout(registry, 3, 1, bars)
    assert comparison.passed and comparison.basis == HOLDOUT and comparison.rule == RULE
    assert (comparison.period_start, comparison.period_end[:10]) == (
        "2011-01-03 00:00:00",
        "2011-09-30",
    )
    better, champion = comparison.figures["challenger"], comparison.figures["champion"]
    assert better["excess_sharpe"] > champion["excess_sharpe"] > 0
    assert better["buy_hold_sharpe"] == champion["buy_hold_sharpe"]  # the same bars
    assert "entry 3 beats champion entry 1" in comparison.verdict
    retired, crowned = registry.promote(3, states.CHAMPION, "won the holdout")
    assert (retired.entry_id, retired.to_state, crowned.entry_id) == (1, states.RETIRED, 3)
    assert registry.champion("GOOG").id == 3
