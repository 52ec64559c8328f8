"""The NAS "Lego box": the genes an agent's genome is made of, and what keeps genomes valid.

A genome is a flat dict of gene name -> value: architecture genes (CoreTransformer sizes,
heads, layers, pooling, window, memory k, ...) and hyperparameter genes (learning rate,
batch size, risk scale, ...), all declared in config. Every genome that leaves this module
has been validated: values in range, and the cross-gene constraints (model_dim divisible by
num_heads) hold, so no invalid combination ever reaches torch.

Cross-asset genes (``CROSS_ASSET_GENES``) shape what only a portfolio agent has: the
attention blocks across a universe's assets (``PortfolioTransformer``'s ``cross_layers``).
They are declared in config like the others (configs/env/portfolio.yaml adds them), and the
autonomous stage refuses them in a single-symbol run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Genome = dict[str, Any]
KINDS = ("choice", "int", "float", "log_float")
GROUPS = ("architecture", "hyperparameter")
MAX_REPAIRS = 100
CROSS_ASSET_GENES = ("cross_layers",)  # attention blocks across assets (portfolio runs only)


class GenomeError(ValueError):
    """A genome or a gene definition is invalid; the message names the gene."""


@dataclass(frozen=True)
class Gene:
    """One searchable setting: a list of choices, or an int/float range (log-uniform if asked)."""

    name: str
    kind: str
    group: str = "hyperparameter"
    values: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise GenomeError(f"gene {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.group not in GROUPS:
            raise GenomeError(f"gene {self.name!r}: group must be one of {GROUPS}")
        if self.kind == "choice" and not self.values:
            raise GenomeError(f"gene {self.name!r}: a choice gene needs values")
        if self.kind != "choice" and not self.low <= self.high:
            raise GenomeError(f"gene {self.name!r}: low {self.low} > high {self.high}")
        if self.kind == "log_float" and self.low <= 0:
            raise GenomeError(f"gene {self.name!r}: a log_float gene needs low > 0")
        object.__setattr__(self, "values", tuple(self.values))

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.values[int(rng.integers(len(self.values)))]
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.kind == "float":
            return float(rng.uniform(self.low, self.high))
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def perturb(self, value: Any, rng: np.random.Generator, scale: float) -> Any:
        """A nearby value (PBT's explore): the next choice, or a multiplicative step."""
        if self.kind == "choice":
            index = self.values.index(value) + int(rng.choice((-1, 1)))
            return self.values[min(max(index, 0), len(self.values) - 1)]
        factor = float(rng.choice((1.0 - scale, 1.0 + scale)))
        if self.kind == "int":
            step = max(1, round(abs(value) * scale))
            return int(np.clip(value + step * np.sign(factor - 1.0), self.low, self.high))
        return float(np.clip(value * factor, self.low, self.high))

    def check(self, value: Any) -> Any:
        """``value`` as this gene's type, or a GenomeError naming the gene."""
        if self.kind == "choice":
            if value not in self.values:
                raise GenomeError(f"gene {self.name!r}: {value!r} is not one of {self.values}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise GenomeError(f"gene {self.name!r}: {value!r} is not a number")
        if self.kind == "int" and float(value) != int(value):
            raise GenomeError(f"gene {self.name!r}: {value!r} is not an integer")
        if not self.low <= value <= self.high:
            raise GenomeError(f"gene {self.name!r}: {value} outside [{self.low}, {self.high}]")
        return int(value) if self.kind == "int" else float(value)


def _divisible(genome: Genome) -> str | None:
    if genome["model_dim"] % genome["num_heads"]:
        return (
            f"model_dim {genome['model_dim']} is not divisible by num_heads {genome['num_heads']}"
        )
    return None


CONSTRAINTS = (_divisible,)


class SearchSpace:
    """The genes, and sampling, mutation and crossover that only ever produce valid genomes."""

    def __init__(self, genes: Sequence[Gene]) -> None:
        names = [gene.name for gene in genes]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise GenomeError(f"genes defined twice: {duplicates}")
        missing = {"model_dim", "num_heads"} - set(names)
        if missing:
            raise GenomeError(f"the search space needs the genes {sorted(missing)}")
        self.genes = {gene.name: gene for gene in genes}

    @classmethod
    def from_config(cls, genes: Mapping[str, Mapping[str, Any]]) -> SearchSpace:
        """Build from config: ``{name: {kind, group, values | low, high}}``."""
        built = []
        for name, spec in genes.items():
            unknown = set(spec) - {"kind", "group", "values", "low", "high"}
            if unknown:
                raise GenomeError(f"gene {name!r}: unknown keys {sorted(unknown)}")
            built.append(Gene(name=name, **{**spec, "values": tuple(spec.get("values", ()))}))
        return cls(built)

    def only(self, names: Sequence[str]) -> SearchSpace:
        """The space with just the genes named (in this space's order)."""
        return SearchSpace([gene for name, gene in self.genes.items() if name in names])

    def names(self, group: str) -> list[str]:
        return [name for name, gene in self.genes.items() if gene.group == group]

    def validate(self, genome: Mapping[str, Any]) -> Genome:
        """The genome with every value checked and typed; raises naming the first problem."""
        missing = sorted(set(self.genes) - set(genome))
        unknown = sorted(set(genome) - set(self.genes))
        if missing or unknown:
            raise GenomeError(f"genome has missing genes {missing} and unknown genes {unknown}")
        checked = {name: gene.check(genome[name]) for name, gene in self.genes.items()}
        for constraint in CONSTRAINTS:
            problem = constraint(checked)
            if problem:
                raise GenomeError(f"invalid genome: {problem}")
        return checked

    def sample(self, rng: np.random.Generator) -> Genome:
        return self._repaired(lambda: {n: g.sample(rng) for n, g in self.genes.items()})

    def mutate(
        self,
        genome: Genome,
        rng: np.random.Generator,
        *,
        rate: float,
        scale: float,
        groups: Sequence[str] = GROUPS,
    ) -> Genome:
        """Perturb each gene of ``groups`` with probability ``rate`` (always at least one)."""
        candidates = [name for name in self.genes if self.genes[name].group in groups]

        def draw() -> Genome:
            child = dict(genome)
            chosen = [name for name in candidates if rng.random() < rate]
            for name in chosen or [candidates[int(rng.integers(len(candidates)))]]:
                child[name] = self.genes[name].perturb(child[name], rng, scale)
            return child

        return self._repaired(draw)

    def crossover(self, first: Genome, second: Genome, rng: np.random.Generator) -> Genome:
        """Uniform crossover: each gene from either parent with equal probability."""
        return self._repaired(
            lambda: {n: (first if rng.random() < 0.5 else second)[n] for n in self.genes}
        )

    def _repaired(self, make: Callable[[], Genome]) -> Genome:
        """Draw until the genome is valid; the bound makes an impossible space an error."""
        for _ in range(MAX_REPAIRS):
            try:
                return self.validate(make())
            except GenomeError:
                continue
        raise GenomeError(f"no valid genome in {MAX_REPAIRS} draws: check the search space")
