"""Checkpoint -> a policy that runs without Ray, whatever stage produced it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from evotrader.core.checkpoint import Checkpoint, CheckpointError
from evotrader.core.registry import Registry
from evotrader.models.moe_policy import MoEPolicy
from evotrader.models.transformer_policy import TransformerPolicy


def _autonomous_agent(architecture: dict[str, Any]) -> nn.Module:
    """The AutonomousAgent: not an nn.Module but the same duck type (load_state_dict, eval)
    plus the Policy contract's act; imported on use, as it pulls in Faiss and the reasoning."""
    from evotrader.agents import AutonomousAgent

    return AutonomousAgent.from_architecture(architecture)  # type: ignore[return-value]


# Checkpoint kind -> the builder of its network from the checkpoint's architecture.
BUILDERS: Registry[Callable[[dict[str, Any]], nn.Module]] = Registry(
    "checkpoint kind", error=CheckpointError
)
BUILDERS.register("ppo", TransformerPolicy.from_architecture)
BUILDERS.register("moe", MoEPolicy.from_architecture)
BUILDERS.register("maml", TransformerPolicy.from_architecture)  # the meta-learned initial weights
BUILDERS.register("autonomous", _autonomous_agent)


def policy_from_checkpoint(checkpoint: Checkpoint) -> nn.Module:
    """Rebuild the network from its architecture and load its weights, in eval mode."""
    builder = BUILDERS.get(checkpoint.kind)
    try:
        policy = builder(checkpoint.architecture)
        policy.load_state_dict(checkpoint.state_dict)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"checkpoint weights do not fit its {checkpoint.kind!r} architecture: {error}"
        ) from error
    return policy.eval()
