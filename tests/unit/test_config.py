"""The training config nests the runtime specs themselves (EnvSpec, TransformerShape): YAML and
overrides build them, and they check the values."""

from __future__ import annotations

import pytest

from evotrader.config import ConfigError, TrainingConfig, load_training_config
from evotrader.env import EnvSpec, ExecutionModel
from evotrader.models.core_transformer import TransformerShape


def test_the_env_section_is_the_spec_the_envs_take() -> None:
    env = load_training_config(["env.positions=[0,1]", "env.execution.fill=close"]).env
    assert isinstance(env, EnvSpec) and isinstance(env.execution, ExecutionModel)
    assert env.positions == (0.0, 1.0)
    assert env.execution.fill == "close"
    assert TrainingConfig().env == EnvSpec()


def test_env_yaml_files_load() -> None:
    assert load_training_config(["env=long_only"]).env.positions == (0.0, 0.5, 1.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("env.execution.fill=bogus", "env: execution fill must be one of"),
        ("env.window=0", "env: window must be >= 1, got 0"),
        ("env.positions=[1]", "env: positions need at least two targets"),
        ("env.reward=profit", "env: reward must be one of"),
    ],
)
def test_a_bad_env_value_stops_the_run_naming_env(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_training_config([override])


def test_the_model_section_is_the_shape_the_stages_size() -> None:
    config = load_training_config(["model=base", "model.num_layers=3"])
    assert config.model == TransformerShape(
        model_dim=64, num_layers=3, ff_dim=128, output_dim=64, dropout=0.1, pooling="attention"
    )
    assert config.model.with_input(7).input_dim == 7
    with pytest.raises(ConfigError, match=r"^model: model_dim \(30\) must be divisible"):
        load_training_config(["model.model_dim=30"])


def test_an_override_reaches_a_field_inside_a_list_of_frozen_settings() -> None:
    config = load_training_config(["strategy_search.validation.regimes.0.note=edited"])
    assert config.strategy_search.validation.regimes[0].note == "edited"
    with pytest.raises(ConfigError, match="must start before it ends"):
        load_training_config(["strategy_search.validation.regimes.0.start=2030-01-01"])
