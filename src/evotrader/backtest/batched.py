"""Batched greedy decisions of a torch policy, equal to the decisions it makes one bar at a time.

The backtest engine decides a state-reading policy (``env.agent_state=true``) in batches
(``engine._targets_speculative``) when its decisions are row-wise; this module says when a
torch policy's are, and decides them.

Why the whole trunk runs on every (window, state) and is not split: the two agent-state
channels (target held, unrealised return) are input channels of every bar of the window, so
``CoreTransformer.input_proj`` adds the state to every token before the first LayerNorm,
attention and MLP, and the embedding depends on it non-linearly (PPO's ``TransformerPolicy``
and MAML's, which is the same network; in ``MoEPolicy`` the gate reads the state through the
window's last bar, mean and spread too). No part of the trunk after its input projection is
independent of the state, and even that projection is one matrix product over all channels,
whose float sums a split would reorder. Nor can the trunk be run for every possible state:
the position is one of a few targets, but the unrealised return is continuous and depends on
the entry fill. What is exact is deciding, in one batch, the observations the policy would
see if it kept its position, and keeping the decisions up to its first trade.

A batch forward is not bit for bit a batch-of-one forward: PyTorch's CPU kernels for one
row (matrix-vector) and for many (matrix-matrix) sum in different orders, so logits differ
in the last bits: at most 1.8e-7 over every GOOG window with random states on the
quick-profile PPO, MoE and MAML checkpoints (batches of 7 to 2000 rows agreed exactly with
each other), whose closest top-two gap was 1.5e-5. So that this can never change a decision,
every row whose two best logits lie within ``TIE_TOLERANCE`` (relative) of each other is
decided again with the policy's own one-row ``act``, which is what the per-bar path calls.

The batched forward runs on one torch thread (the caller's setting restored after), as the
live session does: a batch is at most a few hundred windows of a small model, and on busy
shared cores a second thread made every batch size 10-50x slower (quick-profile PPO, load 18
on 2 cores); what more threads would gain for a large model on idle cores is not measured.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from evotrader.core.policy import Policy, TorchPolicy
from evotrader.models.transformer_policy import PolicyHeads

TIE_TOLERANCE = 1e-4  # three orders of magnitude above the batch-size effect on logits


def torch_decisions(policy: Policy) -> Callable[[np.ndarray], np.ndarray] | None:
    """Batch decisions equal to ``policy.act`` row by row, or None when the policy is not a
    torch policy whose decisions are row-wise: a ``PolicyHeads`` network (TransformerPolicy,
    MoEPolicy, an adapted MAML policy) or a ``TorchPolicy``, in eval mode, with ``act``
    as defined there (greedy over the module's logits)."""
    module: torch.nn.Module
    if isinstance(policy, PolicyHeads) and type(policy).act is PolicyHeads.act:
        module = policy
    elif isinstance(policy, TorchPolicy) and type(policy).act is TorchPolicy.act:
        module = policy.module
    else:
        return None
    if module.training:  # dropout would make each call different
        return None
    device = next(module.parameters()).device

    @torch.no_grad()
    def decide(observations: np.ndarray) -> np.ndarray:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            logits = module(torch.as_tensor(observations, dtype=torch.float32, device=device))
        finally:
            torch.set_num_threads(threads)
        best = logits.topk(min(2, logits.shape[-1]), dim=-1).values  # one column: all "ties"
        near = best[:, 0] - best[:, -1] <= TIE_TOLERANCE * (1.0 + best[:, 0].abs())
        actions: np.ndarray = logits.argmax(dim=-1).cpu().numpy()
        for row in np.flatnonzero(near.cpu().numpy()):
            actions[row] = policy.act(observations[row : row + 1])[0]
        return actions

    return decide
