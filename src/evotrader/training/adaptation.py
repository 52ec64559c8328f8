"""Adapting a meta-learned (MAML) policy to the period it is about to trade.

Before trading a split, the policy takes its inner-loop steps on episodes drawn from the
``adapt_bars`` bars just before that split, never from the split itself: adapting on the
test period would be look-ahead. The adapted copy trades; the meta-learned weights stay.
A portfolio MAML network (``portfolio_maml``) adapts the same way, on every symbol's bars
before the split, in the VectorPortfolioEnv.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import TypeVar, cast

import pandas as pd
import torch

from evotrader.agents.loading import policy_from_checkpoint
from evotrader.config import MAMLStageConfig
from evotrader.core.checkpoint import Checkpoint
from evotrader.core.policy import Policy
from evotrader.data import FeaturePipeline
from evotrader.data.universe_ref import UniverseRef
from evotrader.env import EnvSpec, PortfolioSpec, VectorMarketEnv, VectorPortfolioEnv
from evotrader.models.maml_model import Parameters, adapt_parameters, parameters_of
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.models.transformer_policy import TransformerPolicy
from evotrader.training.rollouts import VectorEnv, collect_rollout

PORTFOLIO_MAML_KIND = "portfolio_maml"  # one of evotrader.core.checkpoint.PORTFOLIO_KINDS

Net = TypeVar("Net", TransformerPolicy, PortfolioTransformer)


def maml_settings(hyperparameters: dict[str, object]) -> MAMLStageConfig:
    """The MAML settings saved in a checkpoint's hyperparameters (extra keys ignored)."""
    names = {f.name for f in fields(MAMLStageConfig)}
    return MAMLStageConfig(**{k: v for k, v in hyperparameters.items() if k in names})  # type: ignore[arg-type]


def history_before(
    bars: pd.DataFrame,
    split_start: pd.Timestamp,
    adapt_bars: int,
    pipeline: FeaturePipeline,
    window: int,
) -> pd.DataFrame:
    """The ``adapt_bars`` decision bars before ``split_start``, plus their feature warm-up."""
    before = bars.loc[bars.index < split_start]
    needed = adapt_bars + pipeline.warmup + window
    if len(before) < needed:
        raise ValueError(
            f"adapting before {split_start} needs {needed} bars of history (adapt_bars "
            f"{adapt_bars} + warm-up {pipeline.warmup} + window {window}), only {len(before)} exist"
        )
    return before.iloc[-needed:]


def _episode_steps(env: VectorEnv) -> int:
    """The env's episode length: adaptation rolls out whole episodes of a fixed length."""
    length = env.env_spec.episode_length
    if length is None:
        raise ValueError("adaptation needs an env with a fixed episode_length, got None")
    return length


def adaptation_path(
    policy: TransformerPolicy | PortfolioTransformer,
    env: VectorEnv,
    settings: MAMLStageConfig,
    seed: int,
) -> list[Parameters]:
    """Parameters after 0, 1, ..., ``inner_steps`` steps, each step on fresh episodes."""
    generator = torch.Generator().manual_seed(seed)
    path = [{name: value.detach() for name, value in parameters_of(policy).items()}]
    for step in range(settings.inner_steps):
        params = {name: value.requires_grad_() for name, value in path[-1].items()}
        support = collect_rollout(
            policy, params, env, _episode_steps(env), env_seed=seed + step, generator=generator
        )
        adapted = adapt_parameters(
            policy,
            params,
            support,
            inner_lr=settings.inner_lr,
            gamma=settings.gamma,
            first_order=True,
        )
        path.append({name: value.detach() for name, value in adapted.items()})
    return path


def adapted_before(
    policy: TransformerPolicy,
    bars: pd.DataFrame,
    split_start: pd.Timestamp,
    pipeline: FeaturePipeline,
    env: EnvSpec,
    settings: MAMLStageConfig,
    seed: int,
) -> TransformerPolicy:
    """A copy of ``policy`` adapted on the bars just before ``split_start``, in eval mode."""
    history = history_before(bars, split_start, settings.adapt_bars, pipeline, env.window)
    vector_env = VectorMarketEnv(history, settings.num_envs, pipeline, _adapt_spec(env, settings))
    return _adapted(policy, vector_env, settings, seed)


def portfolio_adapted_before(
    net: PortfolioTransformer,
    bars: Mapping[str, pd.DataFrame],
    split_start: pd.Timestamp,
    pipeline: FeaturePipeline,
    env: EnvSpec,
    portfolio: PortfolioSpec,
    settings: MAMLStageConfig,
    seed: int,
) -> PortfolioTransformer:
    """A copy of ``net`` adapted on every symbol's bars just before ``split_start``, in eval
    mode: ``adapted_before`` over a universe."""
    history = {
        symbol: history_before(frame, split_start, settings.adapt_bars, pipeline, env.window)
        for symbol, frame in bars.items()
    }
    spec = _adapt_spec(env, settings)
    vector_env = VectorPortfolioEnv(history, settings.num_envs, pipeline, spec, portfolio)
    return _adapted(net, vector_env, settings, seed)


def _adapt_spec(env: EnvSpec, settings: MAMLStageConfig) -> EnvSpec:
    """Episodes that fit in the ``adapt_bars`` decision bars."""
    return replace(env, episode_length=min(settings.episode_length, settings.adapt_bars - 1))


def _adapted(policy: Net, env: VectorEnv, settings: MAMLStageConfig, seed: int) -> Net:
    """A copy of ``policy`` holding the end of its adaptation path in ``env``, in eval mode."""
    final = adaptation_path(policy, env, settings, seed)[-1]
    adapted = copy.deepcopy(policy)
    with torch.no_grad():
        for name, value in final.items():
            adapted.get_parameter(name).copy_(value)
    return adapted.eval()


def trading_policy(checkpoint: Checkpoint, bars: pd.DataFrame, start: pd.Timestamp) -> Policy:
    """The checkpoint's policy, ready to trade from ``start``: MAML adapts on the bars before.

    Every other kind trades its weights as saved. Adaptation is seeded by the checkpoint's
    own seed, so the same checkpoint and bars always give the same adapted policy.
    """
    policy = policy_from_checkpoint(checkpoint)
    if checkpoint.kind != "maml":
        return cast(Policy, policy)  # every BUILDERS policy implements act
    assert isinstance(policy, TransformerPolicy)  # what BUILDERS["maml"] builds
    return adapted_before(
        policy,
        bars,
        start,
        FeaturePipeline.from_state(checkpoint.feature_pipeline),
        EnvSpec.from_dict(checkpoint.env),
        maml_settings(checkpoint.hyperparameters),
        int(checkpoint.hyperparameters.get("seed", 0)),
    )


def portfolio_trading_net(
    checkpoint: Checkpoint,
    net: PortfolioTransformer,
    universe: UniverseRef | Mapping[str, pd.DataFrame],
    start: pd.Timestamp,
    pipeline: FeaturePipeline,
    env: EnvSpec,
    portfolio: PortfolioSpec,
) -> PortfolioTransformer:
    """A portfolio checkpoint's network ready to trade from ``start``: a ``portfolio_maml``
    one adapts on every symbol's bars before it (the universe's, loaded only then, or the
    bars given, e.g. a broker's history; seeded by the checkpoint's own seed, as
    ``trading_policy``); every other kind trades ``net`` as saved."""
    if checkpoint.kind != PORTFOLIO_MAML_KIND:
        return net
    return portfolio_adapted_before(
        net,
        universe.load().bars if isinstance(universe, UniverseRef) else universe,
        start,
        pipeline,
        env,
        portfolio,
        maml_settings(checkpoint.hyperparameters),
        int(checkpoint.hyperparameters.get("seed", 0)),
    )


def adaptation_curve(
    policy: TransformerPolicy, env: VectorMarketEnv, settings: MAMLStageConfig, seed: int
) -> list[float]:
    """Mean episode return after 0, 1, ..., ``inner_steps`` adaptation steps.

    Each point is scored on fresh episodes (start bars and action draws distinct from the
    support episodes the steps learned from), so the curve measures adaptation, not recall.
    """
    curve = []
    for params in adaptation_path(policy, env, settings, seed):
        evaluation = collect_rollout(
            policy,
            params,
            env,
            _episode_steps(env),
            env_seed=seed + 10_000,
            generator=torch.Generator().manual_seed(seed + 10_000),
        )
        curve.append(evaluation.mean_episode_return)
    return curve
