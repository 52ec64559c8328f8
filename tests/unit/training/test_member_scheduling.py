"""Member scheduling: the cost estimate ranks genomes by their work, and longest-first
submission shortens a generation on two workers."""

from __future__ import annotations

import heapq
from typing import Any

import pytest

from evotrader.training.member_scheduling import job_cost, longest_first
from evotrader.training.population import agent_settings

BASE = {"model_dim": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 64, "window": 32}


def cost(augmentation: str = "none", epochs: int = 3, **genes: Any) -> float:
    architecture, hyperparameters = agent_settings(
        BASE | genes, 6, (-1.0, 0.0, 1.0), {}, {"epochs": epochs, "batch_size": 64}
    )
    return job_cost(architecture, hyperparameters, augmentation)


def makespan(costs: list[float], order: list[int], workers: int) -> float:
    """When the last job ends if each goes, in ``order``, to the first free worker (as Ray
    hands out queued tasks)."""
    free = [0.0] * workers
    for index in order:
        heapq.heappush(free, heapq.heappop(free) + costs[index])
    return max(free)


@pytest.mark.parametrize(
    "bigger",
    [
        {"model_dim": 64},
        {"num_layers": 2},
        {"ff_dim": 128},
        {"window": 48},
        {"batch_size": 32},  # more batches, each paying its fixed overhead
        {"epochs": 5},
    ],
)
def test_more_work_costs_more(bigger: dict[str, Any]) -> None:
    assert cost(**bigger) > cost()


def test_an_augmented_copy_doubles_the_training() -> None:
    assert cost("noise") == pytest.approx(2 * cost("none"))
    assert cost("block_bootstrap") == cost("noise")


def test_longest_first_orders_by_cost_then_index() -> None:
    assert longest_first([1.0, 5.0, 3.0, 5.0, 0.5]) == [1, 3, 2, 0, 4]
    assert longest_first([]) == []


def test_longest_first_ends_a_straggling_generation_sooner() -> None:
    # A long member bred last: in member order it starts when the short ones are done.
    costs = [4.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0]
    in_order = makespan(costs, list(range(len(costs))), workers=2)
    planned = makespan(costs, longest_first(costs), workers=2)
    assert planned == 7.0 == sum(costs) / 2  # perfectly balanced
    assert in_order == 9.0


def test_small_batches_and_deep_trunks_outweigh_width() -> None:
    # Measured on the quick profile: 19.5 s for the first, 4.2 s for the second (both
    # pre-trained on one augmented copy); a FLOP count alone ranks them the other way.
    deep = cost("noise", model_dim=16, num_layers=2, ff_dim=64, window=32, batch_size=32)
    wide = cost("noise", model_dim=64, num_layers=1, ff_dim=128, window=16, batch_size=128)
    assert deep > 2 * wide
