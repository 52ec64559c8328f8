"""Neural architecture search: the search space, the controllers, weight inheritance."""

from evotrader.nas.inheritance import inherit_weights
from evotrader.nas.search_controller import (
    CONTROLLERS,
    Evolution,
    Individual,
    Offspring,
    RandomSearch,
    SearchController,
    make_controller,
)
from evotrader.nas.search_space import (
    CROSS_ASSET_GENES,
    Gene,
    Genome,
    GenomeError,
    SearchSpace,
)

__all__ = [
    "CONTROLLERS",
    "CROSS_ASSET_GENES",
    "Evolution",
    "Gene",
    "Genome",
    "GenomeError",
    "Individual",
    "Offspring",
    "RandomSearch",
    "SearchController",
    "SearchSpace",
    "inherit_weights",
    "make_controller",
]
