"""The strategy track's settings are its runtime classes: an override reaches them, and a bad
value stops the run as its config loads, naming the section and the key."""

from __future__ import annotations

import pytest

from evotrader.backtest.costs import IBCosts
from evotrader.config import ConfigError, load_training_config
from evotrader.strategies.settings import (
    SP500_REGIMES,
    EvolverConfig,
    LLMConfig,
    RegimePeriod,
    ScreeningConfig,
    ValidationConfig,
)


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


def test_validation_overrides_reach_its_settings_and_costs() -> None:
    config = load_training_config(
        [
            "strategy_search.validation.min_positive_regimes=3",
            "strategy_search.validation.costs.per_share=0.01",
            "strategy_search.validation.capacity_grid=[1e4,1e6]",
        ]
    ).strategy_search.validation
    assert isinstance(config, ValidationConfig) and config.min_positive_regimes == 3
    assert isinstance(config.costs, IBCosts) and config.costs == IBCosts(per_share=0.01)
    assert config.capacity_grid == (1e4, 1e6)  # a tuple again, as OmegaConf hands over lists
    assert config.regimes == SP500_REGIMES and isinstance(config.regimes[0], RegimePeriod)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("strategy_search.screening.n_folds=0", "screening.n_folds must be >= 1, got 0"),
        ("strategy_search.screening.max_drawdown=1.5", "screening.max_drawdown must lie in"),
        ("strategy_search.evolver.explore_ratio=2.0", "evolver.explore_ratio must lie in"),
        ("strategy_search.llm.max_tokens=10", "llm.max_tokens must be >= 256, got 10"),
        (
            "strategy_search.validation.min_positive_regimes=5",
            "validation.min_positive_regimes must lie in \\[0, 4\\]",
        ),
        (
            "strategy_search.validation.capacity_grid=[1e5,1e4]",
            "validation.capacity_grid must be positive and increasing",
        ),
        (
            "strategy_search.validation.costs.minimum=-1",
            "costs.minimum must be finite and >= 0, got -1.0",
        ),
    ],
)
def test_a_bad_value_stops_the_config_naming_its_section(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^strategy_search: {message}"):
        load_training_config([override])


def test_an_unknown_key_is_refused_by_the_schema() -> None:
    with pytest.raises(ConfigError, match="screen_folds"):
        load_training_config(["strategy_search.screening.screen_folds=2"])
