"""Market envs for RLlib's env runners, built from a small JSON-able description.

Env runners may live in other processes or on other machines of a Ray cluster, so they
get the run's data reference narrowed to the split's time range, the fitted feature state
and the env spec as dicts, and load the bars themselves rather than receiving DataFrames.
A portfolio run (``env=portfolio``: a non-empty ``portfolio`` section and ``data.universe``)
describes its universe the same way, by its ``UniverseRef``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from evotrader.config import (
    PROJECT_ROOT,
    ConfigError,
    TrainingConfig,
    config_errors,
    data_reference,
    pipeline_from,
    splits_from,
)
from evotrader.data import DataRef, FeaturePipeline, TimeSplits, data_roots
from evotrader.data.universe import Universe
from evotrader.data.universe_ref import UniverseRef
from evotrader.env import EnvSpec, PortfolioSpec, VectorMarketEnv, VectorPortfolioEnv

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


PORTFOLIO_ENV_NAME = "evotrader-vector-portfolio"


@dataclass(frozen=True, eq=False)
class UniverseInputs:
    """A portfolio run's data: the universe reference its checkpoints record, the aligned
    universe, its time splits (one calendar, so one split for every symbol), the feature
    pipeline fitted on every symbol's training bars pooled, and the action form."""

    ref: UniverseRef
    universe: Universe
    splits: TimeSplits
    pipeline: FeaturePipeline
    portfolio: PortfolioSpec

    @property
    def name(self) -> str:
        """The universe's symbols joined by "+": what its checkpoints and registry entries
        are named after (``A0+A1+A2``)."""
        return "+".join(self.universe.symbols)

    def bars(self, split: pd.DataFrame, history: bool = False) -> dict[str, pd.DataFrame]:
        """Every symbol's bars over ``split``'s dates (from the first bar with ``history``)."""
        first = None if history else split.index[0]
        return {
            s: self.universe.bars[s].loc[first : split.index[-1]] for s in self.universe.symbols
        }


def universe_inputs(config: TrainingConfig) -> UniverseInputs:
    """The universe ``data.universe`` names from ``data.source`` (with ``data.options``, start
    and end), split like single-symbol bars; ``ConfigError`` for a run that cannot use it."""
    if not config.data.universe:
        raise ConfigError("data.universe: a portfolio run (env=portfolio) needs its symbols")
    with config_errors("portfolio"):
        portfolio = PortfolioSpec.from_dict(config.portfolio)
    if config.env.agent_state:
        raise ConfigError(
            "env.agent_state: a portfolio policy trades from market history alone "
            "(History -> weights); set env.agent_state=false (env=portfolio does)"
        )
    if portfolio.action != "discrete":
        raise ConfigError(
            f"portfolio.action: PPO trains the 'discrete' form only, got {portfolio.action!r}"
        )
    raw = {
        "source": config.data.source,
        "symbols": list(config.data.universe),
        "options": dict(config.data.options),
        "start": config.data.start,
        "end": config.data.end,
    }
    with config_errors("data"):
        ref = UniverseRef.checked(raw, data_roots(PROJECT_ROOT))
        universe = ref.load()
        splits = splits_from(config.data, universe.bars[universe.symbols[0]])
    with config_errors("features"):
        train = [universe.bars[s].loc[: splits.train.index[-1]] for s in universe.symbols]
        pipeline = pipeline_from(config.features).fit(train)
    return UniverseInputs(ref, universe, splits, pipeline, portfolio)


def portfolio_env_config(
    ctx: StageContext, inputs: UniverseInputs, split: pd.DataFrame
) -> dict[str, Any]:
    """Everything an env runner needs to rebuild the portfolio env over ``split``'s dates."""
    ref = replace(inputs.ref, start=str(split.index[0]), end=str(split.index[-1]))
    return {
        "universe": ref.to_dict(),
        "pipeline": inputs.pipeline.state_dict(),
        "env": ctx.config.env.to_dict(),
        "portfolio": inputs.portfolio.to_dict(),
    }


def make_portfolio_vector_env(env_config: dict[str, Any]) -> VectorPortfolioEnv:
    """RLlib env creator: ``env_config`` from ``portfolio_env_config`` plus ``num_envs``."""
    universe = UniverseRef.checked(env_config["universe"], data_roots(PROJECT_ROOT)).load()
    return VectorPortfolioEnv(
        universe.bars,
        int(env_config.get("num_envs", 1)),
        FeaturePipeline.from_state(env_config["pipeline"]),
        EnvSpec.from_dict(env_config["env"]),
        PortfolioSpec.from_dict(env_config["portfolio"]),
    )
