"""Which member job to start first, and gathering results as they finish.

A generation is over when its slowest worker is, so jobs are handed out longest first (the
LPT rule: a long job started last leaves every other worker idle while it runs). A job's cost
is estimated from its genome alone: the world model's passes over the training split (one per
augmented copy, plus the real one), each costing the batches' fixed overhead plus the
Transformer's work per window. The estimate only orders the jobs; results never depend on it,
nor on the order in which they come back: ``as_completed`` yields each with its index, and the
stage assembles them by member.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import ray

from evotrader.agents import AgentArchitecture, AgentHyperparameters

# One batch's fixed cost per layer (optimiser step, Python, small kernels) in trunk
# multiply-adds: fitted by least squares on 16 members' wall times (quick profile, GOOG, one
# worker), where it took ranks from Spearman 0.60 (at 2e6) to 0.91 (3e7 to 1e8 all do).
# Tiny CPU Transformers are overhead-bound: small batches and deep trunks cost most.
BATCH_OVERHEAD = 3.0e7
# Frozen-trunk passes (memory fusion) run the trunk forward only: about a third of training.
FROZEN_SHARE = 1.0 / 3.0


def job_cost(
    architecture: AgentArchitecture, hyperparameters: AgentHyperparameters, augmentation: str
) -> float:
    """Relative cost of training a member: its learning passes times the work of one epoch
    per training sample (a batch's overhead shared by its samples, plus the trunk's
    multiply-adds over the window: projections, feed-forward and attention)."""
    spec, window = architecture.encoder, architecture.window
    d, layers = spec.model_dim, spec.num_layers
    per_window = window * layers * (4 * d * d + 2 * d * spec.ff_dim + 2 * window * d)
    per_sample = per_window + BATCH_OVERHEAD * layers / hyperparameters.batch_size
    epochs = hyperparameters.epochs + FROZEN_SHARE * hyperparameters.memory_epochs
    passes = 1 if augmentation == "none" else 2
    return float(passes * epochs * per_sample)


def longest_first(costs: Sequence[float]) -> list[int]:
    """Indices of ``costs``, costliest first (lower index first on ties): the order to
    submit jobs in so that the short ones fill the gaps at the end."""
    return sorted(range(len(costs)), key=lambda index: (-costs[index], index))


def as_completed(refs: Sequence[ray.ObjectRef[Any]]) -> Iterator[tuple[int, Any]]:
    """``(index, result)`` for each of ``refs`` as it finishes, so the driver works on the
    first results while workers still run the rest. Completion order is arbitrary: callers
    must place each result by its index."""
    index = {ref: position for position, ref in enumerate(refs)}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            yield index[ref], ray.get(ref)
