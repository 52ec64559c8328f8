"""Warm start from an earlier stage: one function, one rule, used by every stage that starts
from an earlier one (stage_2_moe, stage_3_maml, stage_4_autonomous).

The rule. The donor is the best earlier stage's checkpoint
(``StageContext.best_previous_checkpoint``: the best validation Sharpe). It donates one
``TransformerPolicy``:

- ``ppo`` or ``maml``: the policy as saved (its CoreTransformer encoder and its heads);
- ``moe``: its busiest expert, with the mixture's shared heads (``MoEPolicy.expert_policy``).
  Busiest means the largest mean gate weight (``MoEPolicy.utilisation``) over the
  observation windows of the run's training split (``training_windows``), so the choice
  never looks at validation or test bars;
- any other kind donates nothing.

Each stage then takes what it needs: the MoE stage copies the whole donor into every expert
(plus seeded noise, ``MoEPolicy.warm_start``); MAML and the autonomous stage take its
encoder, the CoreTransformer, and start their own heads.

A portfolio run (env=portfolio) follows the same rule with its own kinds
(``portfolio_donor``): ``portfolio_ppo`` and ``portfolio_maml`` donate their
``PortfolioTransformer`` as saved, ``portfolio_moe`` its busiest expert
(``PortfolioMoE.expert_policy``, busiest over every asset's windows of the universe's
training split), and any other kind nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import torch
from torch import nn

from evotrader.core.checkpoint import Checkpoint, load_checkpoint
from evotrader.env import MarketData
from evotrader.env.portfolio_data import PortfolioData
from evotrader.models.moe_policy import MoEPolicy
from evotrader.models.portfolio_moe import PortfolioMoE
from evotrader.models.portfolio_transformer import PortfolioTransformer
from evotrader.models.transformer_policy import TransformerPolicy
from evotrader.training.guards import portfolio_network

if TYPE_CHECKING:
    from evotrader.training.market_envs import UniverseInputs
    from evotrader.training.pipeline import StageContext

logger = logging.getLogger(__name__)

DONOR_KINDS = ("ppo", "maml", "moe")
PORTFOLIO_DONOR_KINDS = ("portfolio_ppo", "portfolio_maml", "portfolio_moe")

DonatedPolicy = TypeVar("DonatedPolicy", bound=nn.Module)


@dataclass(frozen=True)
class Donor(Generic[DonatedPolicy]):
    """What an earlier stage donates: a policy (a ``TransformerPolicy``, or in a portfolio run
    a ``PortfolioTransformer``), where it came from, and for a MoE which expert it is."""

    policy: DonatedPolicy
    source: Path
    kind: str
    expert: int | None = None

    def describe(self) -> str:
        if self.expert is None:
            return f"{self.kind} policy of {self.source}"
        return f"expert {self.expert} (the busiest) of the {self.kind} in {self.source}"


def busiest_expert(mixture: MoEPolicy | PortfolioMoE, windows: torch.Tensor) -> int:
    """The expert with the largest mean gate weight over ``windows`` (ties: the lowest)."""
    with torch.no_grad():
        return int(mixture.utilisation(windows).argmax())


def donor_policy(
    checkpoint: Checkpoint, windows: Callable[[], torch.Tensor]
) -> tuple[TransformerPolicy, int | None] | None:
    """The policy ``checkpoint`` donates under the rule, and the expert for a MoE;
    ``windows`` (called only for a MoE) gives the training split's observation windows."""
    if checkpoint.kind == "moe":
        mixture = MoEPolicy.from_architecture(checkpoint.architecture)
        mixture.load_state_dict(checkpoint.state_dict)
        expert = busiest_expert(mixture, windows())
        return mixture.expert_policy(expert), expert
    if checkpoint.kind in ("ppo", "maml"):
        policy = TransformerPolicy.from_architecture(checkpoint.architecture)
        policy.load_state_dict(checkpoint.state_dict)
        return policy, None
    return None


PORTFOLIO_DONORS = ("portfolio_ppo", "portfolio_maml", "portfolio_moe")


def portfolio_donor_policy(
    checkpoint: Checkpoint, windows: Callable[[], torch.Tensor]
) -> tuple[PortfolioTransformer, int | None] | None:
    """``donor_policy`` for the portfolio kinds: the network ``checkpoint`` donates and the
    expert for a ``portfolio_moe``; ``windows`` (called only for one) gives the training
    split's (windows, assets, window, channels) observations."""
    if checkpoint.kind not in PORTFOLIO_DONORS:
        return None
    network = portfolio_network(checkpoint)
    if isinstance(network, PortfolioMoE):
        expert = busiest_expert(network, windows())
        return network.expert_policy(expert), expert
    return network, None


def warm_start_donor(ctx: StageContext) -> Donor[TransformerPolicy] | None:
    """The best earlier stage's donor policy under the rule, or None (no earlier policy
    stage, or one of a kind that donates nothing)."""
    return _donor(ctx, lambda checkpoint: donor_policy(checkpoint, lambda: training_windows(ctx)))


def portfolio_donor(
    ctx: StageContext, inputs: UniverseInputs
) -> Donor[PortfolioTransformer] | None:
    """``warm_start_donor`` in a portfolio run over ``inputs``: the best earlier stage's
    portfolio network under the rule, or None."""
    return _donor(
        ctx,
        lambda checkpoint: portfolio_donor_policy(
            checkpoint, lambda: portfolio_training_windows(ctx, inputs)
        ),
    )


def _donor(
    ctx: StageContext,
    donate: Callable[[Checkpoint], tuple[DonatedPolicy, int | None] | None],
) -> Donor[DonatedPolicy] | None:
    source = ctx.best_previous_checkpoint()
    if source is None:
        logger.info("[%s] no earlier policy stage: nothing to warm-start from", ctx.name)
        return None
    checkpoint = load_checkpoint(source)
    donated = donate(checkpoint)
    if donated is None:
        logger.info(
            "[%s] best earlier stage is %r, which donates nothing", ctx.name, checkpoint.kind
        )
        return None
    policy, expert = donated
    donor = Donor(policy, source, checkpoint.kind, expert)
    logger.info("[%s] warm start from %s", ctx.name, donor.describe())
    return donor


def training_windows(ctx: StageContext) -> torch.Tensor:
    """Observation windows of the training split (agent-state channels zero)."""
    env = ctx.config.env
    market = MarketData.build(
        ctx.splits.train, ctx.pipeline, env.window, env.execution, env.agent_state
    )
    return torch.tensor(market.windows(), dtype=torch.float32)  # a copy: the view is read-only


def portfolio_training_windows(ctx: StageContext, inputs: UniverseInputs) -> torch.Tensor:
    """Observation windows (windows, assets, window, channels) of the universe's training
    split, as PortfolioEnv shows them to a weights policy (no agent state)."""
    env = ctx.config.env
    data = PortfolioData.build(
        inputs.bars(inputs.splits.train), inputs.pipeline, env.window, env.execution, False
    )
    return torch.tensor(data.windows(), dtype=torch.float32)  # a copy: the view is read-only
