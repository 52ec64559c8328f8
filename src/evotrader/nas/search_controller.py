"""Controllers: a population with fitness in, the next population's genomes out.

The autonomous trainer only ever calls ``initial`` and ``next_generation``, so a new search
algorithm (regularised evolution, DARTS, ...) is one more class registered in ``CONTROLLERS``.
Every genome a controller returns comes from the SearchSpace, hence is valid. Offspring name
the parents whose weights they inherit (the first parent donates them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evotrader.core.registry import Registry
from evotrader.nas.search_space import Genome, SearchSpace


@dataclass(frozen=True)
class Individual:
    """An evaluated agent: its genome, its validation fitness and where it came from."""

    id: int
    genome: Genome
    fitness: float


@dataclass(frozen=True)
class Offspring:
    """A genome for the next generation; ``parents[0]``, if any, donates its weights."""

    genome: Genome
    parents: tuple[int, ...]
    origin: str  # "random", "elite", "mutation" or "crossover"


class SearchController(ABC):
    """Proposes genomes from a search space; subclasses decide how."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def initial(self, size: int, rng: np.random.Generator) -> list[Offspring]:
        return [Offspring(self.space.sample(rng), (), "random") for _ in range(size)]

    @abstractmethod
    def next_generation(
        self, population: Sequence[Individual], size: int, rng: np.random.Generator
    ) -> list[Offspring]: ...

    def redesign(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """A new architecture for an agent whose design is failing; its hyperparameters stay."""
        return self.space.mutate(genome, rng, rate=0.5, scale=0.5, groups=("architecture",))


class RandomSearch(SearchController):
    """The baseline every smarter controller must beat: fresh random genomes each time."""

    def next_generation(
        self, population: Sequence[Individual], size: int, rng: np.random.Generator
    ) -> list[Offspring]:
        return self.initial(size, rng)


class Evolution(SearchController):
    """Elitism, tournament selection, uniform crossover and PBT-style mutation.

    The ``elitism`` best survive unchanged. Every other child picks a parent by tournament
    (exploit the better), crosses it with a second one with probability ``crossover_rate``,
    then perturbs hyperparameters (rate ``mutation_rate``, multiplicative ``mutation_scale``;
    explore around them) and, less often, architecture genes (``architecture_rate``).
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        tournament_size: int = 3,
        elitism: int = 1,
        crossover_rate: float = 0.3,
        mutation_rate: float = 0.3,
        mutation_scale: float = 0.2,
        architecture_rate: float = 0.2,
    ) -> None:
        super().__init__(space)
        if tournament_size < 1 or elitism < 0:
            raise ValueError("tournament_size must be >= 1 and elitism >= 0")
        for name, rate in (
            ("crossover_rate", crossover_rate),
            ("mutation_rate", mutation_rate),
            ("architecture_rate", architecture_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {rate}")
        self.tournament_size, self.elitism = tournament_size, elitism
        self.crossover_rate, self.mutation_rate = crossover_rate, mutation_rate
        self.mutation_scale, self.architecture_rate = mutation_scale, architecture_rate

    def next_generation(
        self, population: Sequence[Individual], size: int, rng: np.random.Generator
    ) -> list[Offspring]:
        ranked = sorted(population, key=lambda agent: (-agent.fitness, agent.id))
        children = [
            Offspring(agent.genome, (agent.id,), "elite") for agent in ranked[: self.elitism]
        ]
        while len(children) < size:
            parent = self._tournament(ranked, rng)
            genome, origin = parent.genome, "mutation"
            parents: tuple[int, ...] = (parent.id,)
            if rng.random() < self.crossover_rate and len(ranked) > 1:
                other = self._tournament([a for a in ranked if a.id != parent.id], rng)
                genome = self.space.crossover(genome, other.genome, rng)
                parents, origin = (parent.id, other.id), "crossover"
            genome = self.space.mutate(
                genome,
                rng,
                rate=self.mutation_rate,
                scale=self.mutation_scale,
                groups=("hyperparameter",),
            )
            if rng.random() < self.architecture_rate:
                genome = self.space.mutate(
                    genome, rng, rate=self.mutation_rate, scale=0.5, groups=("architecture",)
                )
            children.append(Offspring(genome, parents, origin))
        return children

    def _tournament(self, ranked: Sequence[Individual], rng: np.random.Generator) -> Individual:
        picks = rng.choice(len(ranked), size=min(self.tournament_size, len(ranked)), replace=False)
        return ranked[int(picks.min())]  # ranked best-first: the lowest index wins


CONTROLLERS: Registry[type[SearchController]] = Registry("NAS controller")
CONTROLLERS.register("evolution", Evolution)
CONTROLLERS.register("random", RandomSearch)


def make_controller(name: str, space: SearchSpace, **options: Any) -> SearchController:
    """The controller registered as ``name``, with its options from config."""
    return CONTROLLERS.get(name)(space, **options)
