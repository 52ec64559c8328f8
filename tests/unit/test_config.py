"""The training config nests EnvSpec itself: YAML and overrides build it, and it checks them."""

from __future__ import annotations

import pytest

from evotrader.config import ConfigError, TrainingConfig, load_training_config
from evotrader.env import EnvSpec, ExecutionModel


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
