"""Children inherit their parent's weights wherever the shapes allow."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def inherit_weights(child: nn.Module, parent_state: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy every parent tensor whose name and shape match the child's; returns their names.

    A mutated layer (another width, another depth) keeps the child's fresh initialisation;
    everything else starts where the parent ended.
    """
    state = child.state_dict()
    copied = [
        name
        for name, tensor in parent_state.items()
        if name in state and state[name].shape == tensor.shape
    ]
    child.load_state_dict({**state, **{name: parent_state[name] for name in copied}})
    return copied
