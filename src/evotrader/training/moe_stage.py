"""stage_2_moe: PPO from Ray RLlib trains a Mixture of CoreTransformer experts.

Experts start from the earlier stage's donor policy (``training/warm_start.py``, the one
rule; here stage_1_ppo's policy) when it has the same shape, so the mixture begins where
PPO ended and the gate learns to split the work. TensorBoard gets expert utilisation, gate
entropy and the load-balancing loss next to PPO's scalars.
"""

from __future__ import annotations

import logging

import torch
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from evotrader.config import MoEStageConfig
from evotrader.models.moe_model import MoEPPOLearner, MoEPPOModule
from evotrader.models.moe_policy import MoEPolicy
from evotrader.training.pipeline import StageContext, StageResult
from evotrader.training.rllib_stage import RLlibStage, check_rllib_settings, run_rllib_stage
from evotrader.training.stages import register_stage
from evotrader.training.warm_start import warm_start_donor

log = logging.getLogger(__name__)


def moe_stage(ctx: StageContext) -> RLlibStage:
    settings = ctx.config.stage_2_moe
    return RLlibStage(
        kind="moe",
        settings=settings,
        module_spec=RLModuleSpec(
            module_class=MoEPPOModule,
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
    )


def check_settings(ctx: StageContext) -> None:
    """The gate's settings as MoEPolicy checks them (any input size will do), then PPO's."""
    settings = ctx.config.stage_2_moe
    MoEPolicy(
        ctx.config.model.with_input(1),
        len(ctx.config.env.positions),
        settings.num_experts,
        settings.top_k,
        settings.gate_hidden,
    )
    check_rllib_settings(ctx, moe_stage(ctx))


def run_moe_stage(ctx: StageContext) -> StageResult:
    stage = moe_stage(ctx)
    return run_rllib_stage(ctx, stage, warm_start_weights(ctx, stage))


def warm_start_weights(ctx: StageContext, stage: RLlibStage) -> dict[str, torch.Tensor] | None:
    """Mixture weights whose experts all copy the warm-start donor policy (``warm_start``),
    if there is one."""
    donated = warm_start_donor(ctx) if ctx.config.stage_2_moe.warm_start else None
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
    # Raises, naming both shapes, if the model config changed since the donor was trained.
    mixture.warm_start(donor, seed=ctx.config.seed)
    log.info(f"[{ctx.name}] experts warm-started from {donated.describe()}")
    return mixture.state_dict()


register_stage(
    "stage_2_moe",
    config=MoEStageConfig,
    run=run_moe_stage,
    check_settings=check_settings,
    checkpoint_kind="moe",
)
