"""stage_2_moe: PPO from Ray RLlib trains a Mixture of CoreTransformer experts.

Experts start from the earlier stage's donor policy (``training/warm_start.py``, the one
rule; here stage_1_ppo's policy) when it has the same shape, so the mixture begins where
PPO ended and the gate learns to split the work. TensorBoard gets expert utilisation, gate
entropy and the load-balancing loss next to PPO's scalars.

In a portfolio run (env=portfolio) the mixture is a ``PortfolioMoE`` over the universe: the
shared per-asset trunk, then K experts of cross-asset blocks routed per asset by a gate on
the trunk's embedding (permutation-equivariant, as stage_1_ppo's network). Trunk, heads and
every expert start from the donated ``PortfolioTransformer`` (stage_1_ppo's), a donor of
another shape is refused naming both, and the checkpoint is a ``portfolio_moe``, traded by
``PortfolioCheckpoint`` and run_backtest.py like stage_1_ppo's ``portfolio_ppo``.
"""

from __future__ import annotations

import logging

import torch
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from evotrader.config import ConfigError, MoEStageConfig
from evotrader.models.moe_model import MoEPPOLearner, MoEPPOModule, PortfolioMoEModule
from evotrader.models.moe_policy import MoEPolicy, checked_top_k
from evotrader.models.portfolio_moe import PortfolioMoE
from evotrader.training.market_envs import UniverseInputs
from evotrader.training.pipeline import StageContext, StageResult
from evotrader.training.rllib_stage import RLlibStage, check_rllib_settings, run_rllib_stage
from evotrader.training.stages import register_stage
from evotrader.training.warm_start import portfolio_donor, warm_start_donor

log = logging.getLogger(__name__)

PORTFOLIO_KIND = "portfolio_moe"  # one of evotrader.core.checkpoint.PORTFOLIO_KINDS


def moe_stage(ctx: StageContext) -> RLlibStage:
    """The single-symbol mixture, or in a portfolio run the PortfolioMoE over
    ``data.universe``."""
    settings = ctx.config.stage_2_moe
    portfolio = ctx.universe is not None
    return RLlibStage(
        kind=PORTFOLIO_KIND if portfolio else "moe",
        settings=settings,
        module_spec=RLModuleSpec(
            module_class=PortfolioMoEModule if portfolio else MoEPPOModule,
            model_config={
                "encoder": ctx.config.model.to_dict(),
                "num_experts": settings.num_experts,
                "top_k": settings.top_k,
                "gate_hidden": settings.gate_hidden,
            },
        ),
        learner_class=MoEPPOLearner,
        learner_config={"load_balance_coeff": settings.load_balance_coeff},
        learner_scalars=(
            "load_balance_loss",
            "gate_entropy",
            *(f"expert_utilisation_{k}" for k in range(settings.num_experts)),
        ),
        universe=ctx.universe,
    )


def check_settings(ctx: StageContext) -> None:
    """The gate's settings (``ValueError`` naming the bad one), then PPO's."""
    settings = ctx.config.stage_2_moe
    checked_top_k(settings.num_experts, settings.top_k, settings.gate_hidden)
    check_rllib_settings(ctx, moe_stage(ctx))


def run_moe_stage(ctx: StageContext) -> StageResult:
    stage = moe_stage(ctx)
    return run_rllib_stage(ctx, stage, warm_start_weights(ctx, stage))


def warm_start_weights(ctx: StageContext, stage: RLlibStage) -> dict[str, torch.Tensor] | None:
    """Mixture weights whose experts all copy the warm-start donor policy (``warm_start``),
    if there is one."""
    if not ctx.config.stage_2_moe.warm_start:
        log.info(f"[{ctx.name}] experts start from scratch (warm_start is off)")
        return None
    if stage.universe is not None:
        return _portfolio_warm_start(ctx, stage, stage.universe)
    donated = warm_start_donor(ctx)
    if donated is None:
        log.info(f"[{ctx.name}] experts start from scratch")
        return None
    donor = donated.policy
    config = stage.module_spec.model_config
    assert isinstance(config, dict)  # moe_stage builds it as a dict
    mixture = MoEPolicy(
        donor.spec,
        donor.num_actions,
        config["num_experts"],
        config["top_k"],
        config["gate_hidden"],
    )
    mixture.warm_start(donor, seed=ctx.config.seed)
    log.info(f"[{ctx.name}] experts warm-started from {donated.describe()}")
    return mixture.state_dict()


def _portfolio_warm_start(
    ctx: StageContext, stage: RLlibStage, inputs: UniverseInputs
) -> dict[str, torch.Tensor] | None:
    """The PortfolioMoE this stage trains (the run's model over the universe's features),
    its trunk, heads and experts copied from the donated portfolio network; a donor of
    another shape is refused (``ConfigError`` naming both shapes)."""
    donated = portfolio_donor(ctx, inputs)
    if donated is None:
        log.info(f"[{ctx.name}] experts start from scratch")
        return None
    config = stage.module_spec.model_config
    assert isinstance(config, dict)  # moe_stage builds it as a dict
    mixture = PortfolioMoE(
        ctx.config.model.with_input(inputs.pipeline.num_features),
        len(ctx.config.env.positions),
        int(config.get("cross_layers", 1)),  # as PortfolioPPOModule reads it
        config["num_experts"],
        config["top_k"],
        config["gate_hidden"],
    )
    try:
        mixture.warm_start(donated.policy, seed=ctx.config.seed)
    except ValueError as error:
        raise ConfigError(
            f"{ctx.name}.warm_start: the {donated.describe()} does not fit: {error}"
        ) from error
    log.info(f"[{ctx.name}] trunk, heads and experts warm-started from {donated.describe()}")
    return mixture.state_dict()


register_stage(
    "stage_2_moe",
    config=MoEStageConfig,
    run=run_moe_stage,
    check_settings=check_settings,
    checkpoint_kind="moe",
    portfolio=True,
)
