"""Market envs for RLlib's env runners, built from a small JSON-able description.

Env runners may live in other processes or on other machines of a Ray cluster, so they
get the run's data reference narrowed to the split's time range, the fitted feature state
and the env spec as dicts, and load the bars themselves rather than receiving DataFrames.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from evotrader.config import data_reference
from evotrader.data import DataRef, FeaturePipeline
from evotrader.env import EnvSpec, VectorMarketEnv

if TYPE_CHECKING:
    from evotrader.training.pipeline import StageContext

ENV_NAME = "evotrader-vector-market"


def vector_env_config(ctx: StageContext, split: pd.DataFrame) -> dict[str, Any]:
    """Everything an env runner needs to rebuild the env over ``split``'s bars."""
    bars = replace(
        data_reference(ctx.config.data), start=str(split.index[0]), end=str(split.index[-1])
    )
    return {
        "data": bars.to_dict(),
        "pipeline": ctx.pipeline.state_dict(),
        "env": ctx.config.env.to_dict(),
    }


def make_vector_env(env_config: dict[str, Any]) -> VectorMarketEnv:
    """RLlib env creator: ``env_config`` from ``vector_env_config`` plus ``num_envs``."""
    return VectorMarketEnv(
        DataRef(**env_config["data"]).load(),
        int(env_config.get("num_envs", 1)),
        FeaturePipeline.from_state(env_config["pipeline"]),
        EnvSpec.from_dict(env_config["env"]),
    )
