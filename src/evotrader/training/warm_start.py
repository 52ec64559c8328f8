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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from evotrader.core.checkpoint import Checkpoint, load_checkpoint
from evotrader.env import MarketData
from evotrader.models.moe_policy import MoEPolicy
from evotrader.models.transformer_policy import TransformerPolicy

if TYPE_CHECKING:
    from evotrader.training.pipeline import StageContext

logger = logging.getLogger(__name__)

DONOR_KINDS = ("ppo", "maml", "moe")


@dataclass(frozen=True)
class Donor:
    """What an earlier stage donates: a policy, where it came from, and for a MoE which
    expert it is."""

    policy: TransformerPolicy
    source: Path
    kind: str
    expert: int | None = None

    def describe(self) -> str:
        if self.expert is None:
            return f"{self.kind} policy of {self.source}"
        return f"expert {self.expert} (the busiest) of the {self.kind} in {self.source}"


def busiest_expert(mixture: MoEPolicy, windows: torch.Tensor) -> int:
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


def warm_start_donor(ctx: StageContext) -> Donor | None:
    """The best earlier stage's donor policy under the rule, or None (no earlier policy
    stage, or one of a kind that donates nothing)."""
    source = ctx.best_previous_checkpoint()
    if source is None:
        logger.info("[%s] no earlier policy stage: nothing to warm-start from", ctx.name)
        return None
    checkpoint = load_checkpoint(source)
    donated = donor_policy(checkpoint, lambda: training_windows(ctx))
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
