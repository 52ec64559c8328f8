"""Market envs for RLlib's env runners, built from a small JSON-able description.

Env runners may live in other processes or on other machines of a Ray cluster, so they
get the data source, the split's time range, the fitted feature state and the env
spec as a dict (``EnvSpec.to_dict``), and load the bars themselves rather than receiving
DataFrames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from evotrader.data import FeaturePipeline, load_bars
from evotrader.env import EnvSpec, VectorMarketEnv

if TYPE_CHECKING:
    from evotrader.training.pipeline import StageContext

ENV_NAME = "evotrader-vector-market"


def vector_env_config(ctx: StageContext, split: pd.DataFrame) -> dict[str, Any]:
    """Everything an env runner needs to rebuild the env over ``split``'s bars."""
    data = ctx.config.data
    return {
        "source": data.source,
        "symbol": data.symbol,
        "options": dict(data.options),
        "start": str(split.index[0]),
        "end": str(split.index[-1]),
        "pipeline": ctx.pipeline.state_dict(),
        "env": ctx.config.env.to_dict(),
    }


def make_vector_env(env_config: dict[str, Any]) -> VectorMarketEnv:
    """RLlib env creator: ``env_config`` from ``vector_env_config`` plus ``num_envs``."""
    bars = load_bars(
        env_config["source"],
        env_config["symbol"],
        env_config["start"],
        env_config["end"],
        **env_config["options"],
    )
    return VectorMarketEnv(
        bars,
        int(env_config.get("num_envs", 1)),
        FeaturePipeline.from_state(env_config["pipeline"]),
        EnvSpec.from_dict(env_config["env"]),
    )
