"""stage_1_ppo: PPO from Ray RLlib trains the TransformerPolicy on the training split (or,
with env=portfolio, the PortfolioTransformer over the universe's training split)."""

from __future__ import annotations

from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from evotrader.config import PPOStageConfig
from evotrader.models.portfolio_ppo_model import PortfolioPPOModule
from evotrader.models.ppo_model import TransformerPPOModule
from evotrader.training.pipeline import StageContext, StageResult
from evotrader.training.rllib_stage import RLlibStage, check_rllib_settings, run_rllib_stage
from evotrader.training.stages import register_stage

PORTFOLIO_KIND = "portfolio_ppo"  # one of evotrader.core.checkpoint.PORTFOLIO_KINDS


def ppo_stage(ctx: StageContext) -> RLlibStage:
    """The single-symbol stage, or in a portfolio run (env=portfolio) the portfolio
    transformer over ``data.universe``."""
    encoder = {"encoder": ctx.config.model.to_dict()}
    if ctx.universe is not None:
        return RLlibStage(
            kind=PORTFOLIO_KIND,
            settings=ctx.config.stage_1_ppo,
            module_spec=RLModuleSpec(module_class=PortfolioPPOModule, model_config=encoder),
            universe=ctx.universe,
        )
    return RLlibStage(
        kind="ppo",
        settings=ctx.config.stage_1_ppo,
        module_spec=RLModuleSpec(module_class=TransformerPPOModule, model_config=encoder),
    )


def check_settings(ctx: StageContext) -> None:
    check_rllib_settings(ctx, ppo_stage(ctx))


def run_ppo_stage(ctx: StageContext) -> StageResult:
    return run_rllib_stage(ctx, ppo_stage(ctx))


register_stage(
    "stage_1_ppo",
    config=PPOStageConfig,
    run=run_ppo_stage,
    check_settings=check_settings,
    checkpoint_kind="ppo",
    portfolio=True,
)
