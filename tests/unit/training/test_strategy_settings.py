"""The strategy track's settings are its runtime classes: an override reaches them, and a bad
value stops the run as its config loads, naming the section and the key."""

from __future__ import annotations

import pytest

from evotrader.config import ConfigError, load_training_config
from evotrader.strategies.settings import EvolverConfig, LLMConfig, ScreeningConfig


def test_overrides_reach_the_runtime_settings() -> None:
    config = load_training_config(
        [
            "strategy_search.screening.min_sharpe=0.3",
            "strategy_search.evolver.batch_size=3",
            "strategy_search.llm.model=claude-test",
        ]
    ).strategy_search
    assert isinstance(config.screening, ScreeningConfig) and config.screening.min_sharpe == 0.3
    assert isinstance(config.evolver, EvolverConfig) and config.evolver.batch_size == 3
    assert isinstance(config.llm, LLMConfig) and config.llm.model == "claude-test"
    assert config.screening.n_folds == 3  # configs/stage/strategy_search.yaml, not the default


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("strategy_search.screening.n_folds=0", "screening.n_folds must be >= 1, got 0"),
        ("strategy_search.screening.max_drawdown=1.5", "screening.max_drawdown must lie in"),
        ("strategy_search.evolver.explore_ratio=2.0", "evolver.explore_ratio must lie in"),
        ("strategy_search.llm.max_tokens=10", "llm.max_tokens must be >= 256, got 10"),
    ],
)
def test_a_bad_value_stops_the_config_naming_its_section(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^strategy_search: {message}"):
        load_training_config([override])


def test_an_unknown_key_is_refused_by_the_schema() -> None:
    with pytest.raises(ConfigError, match="screen_folds"):
        load_training_config(["strategy_search.screening.screen_folds=2"])
