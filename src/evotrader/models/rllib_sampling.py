"""What every evotrader RLlib module shares: lean sampling on the env runners.

Two per-step costs of RLlib's defaults are as large as our small models' forward itself:
``TorchRLModule.forward_exploration`` switches the module to eval mode and back to train mode
around every call (walking every submodule twice), and RLlib's ``GetActions`` connector builds
a ``torch.distributions`` object per step to draw the actions. An env runner's module only
ever samples, so ours switches to eval mode once and stays there (``forward_train``, on the
learner's module, sets train mode itself), and a Discrete module draws its actions and their
log-probabilities itself, with the same arithmetic and random draws as ``TorchCategorical``:
the same seed samples the same actions as before.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.torch import TorchRLModule


class EvalModeSampling(TorchRLModule):
    """A ``TorchRLModule`` whose exploration and inference forwards run in eval mode, under
    ``torch.no_grad``, without switching back to train mode afterwards; exploring over a
    Discrete action space also returns the sampled actions and their log-probabilities."""

    def forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        output = self._sample(batch, **kwargs)
        if isinstance(self.action_space, gym.spaces.Discrete):
            logits = output[Columns.ACTION_DIST_INPUTS]
            output[Columns.ACTIONS], output[Columns.ACTION_LOGP] = sample_categorical(logits)
        return output

    def forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._sample(batch, **kwargs)

    def _sample(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if self.training:
            self.eval()
        with torch.no_grad():
            return self._forward(batch, **kwargs)


def sample_categorical(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions (B,) drawn from softmax(logits (B, A)) and their log-probabilities, exactly as
    ``TorchCategorical.from_logits(logits)``'s ``sample`` and ``logp`` compute them."""
    normalized = logits - logits.logsumexp(dim=-1, keepdim=True)
    actions = torch.multinomial(normalized.softmax(dim=-1), 1, True).squeeze(-1)
    return actions, normalized.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
