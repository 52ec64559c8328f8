"""The autonomous stage's bookkeeping: genomes into agents, members, and the resumable archive.

A genome's genes map onto the agent by name: CoreTransformer fields shape the world model's
trunk, ``window`` the observation window, and AgentHyperparameters fields its knobs. The
archive holds every member ever evaluated (fitness, metrics, validation returns, lineage)
and the offspring waiting for the next generation; it is rewritten atomically after each
generation, so a crash costs at most the generation in progress. Only whole generations are
saved (every one done has members), so a failed stage never leaves an archive that breaks the
next run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from evotrader.agents import AgentArchitecture, AgentHyperparameters
from evotrader.core.atomic import write_atomic
from evotrader.models.core_transformer import TransformerSpec
from evotrader.nas import Genome, Offspring, SearchSpace

ENCODER_GENES = {f.name for f in fields(TransformerSpec)} - {"input_dim", "output_dim", "max_len"}
HYPERPARAMETER_GENES = {f.name for f in fields(AgentHyperparameters)}
ARCHIVE_VERSION = 1


def check_genes(space: SearchSpace) -> None:
    """Every gene must shape something: the trunk, the window or a hyperparameter."""
    unknown = sorted(set(space.genes) - ENCODER_GENES - HYPERPARAMETER_GENES - {"window"})
    if unknown:
        raise ValueError(
            f"stage_4_autonomous.genes {unknown} map onto nothing; genes must be CoreTransformer "
            f"fields {sorted(ENCODER_GENES)}, window, or AgentHyperparameters fields"
        )


def agent_settings(
    genome: Genome,
    input_dim: int,
    positions: tuple[float, ...],
    fixed_architecture: dict[str, Any],
    fixed_hyperparameters: dict[str, Any],
) -> tuple[AgentArchitecture, AgentHyperparameters]:
    """The agent a genome describes, on top of the configured fixed settings."""
    encoder = {k: v for k, v in genome.items() if k in ENCODER_GENES}
    window = int(genome.get("window", fixed_architecture.get("window", 32)))
    spec = TransformerSpec(
        input_dim=input_dim,
        output_dim=int(genome["model_dim"]),
        max_len=max(window, 64),
        **encoder,
    )
    architecture = AgentArchitecture.from_dict(
        {
            **fixed_architecture,
            "encoder": spec.to_dict(),
            "window": window,
            "positions": list(positions),
        }
    )
    knobs = {k: v for k, v in genome.items() if k in HYPERPARAMETER_GENES}
    return architecture, AgentHyperparameters.from_dict({**fixed_hyperparameters, **knobs})


@dataclass
class Member:
    """One agent of one generation, as the driver sees it (its weights live on disk)."""

    id: int
    generation: int
    genome: Genome
    parents: tuple[int, ...]
    origin: str
    fitness: float = float("nan")
    metrics: dict[str, float] = field(default_factory=dict)
    returns: list[float] = field(default_factory=list)  # validation per-bar returns


@dataclass
class Archive:
    """Everything evaluated so far and the offspring the next generation will train."""

    members: list[Member] = field(default_factory=list)
    offspring: list[Offspring] = field(default_factory=list)
    adaptations: list[dict[str, Any]] = field(default_factory=list)
    generations_done: int = 0

    @property
    def next_id(self) -> int:
        return max((m.id for m in self.members), default=-1) + 1

    def member(self, member_id: int) -> Member:
        return next(m for m in self.members if m.id == member_id)

    def generation(self, index: int) -> list[Member]:
        return [m for m in self.members if m.generation == index]

    def champion(self) -> Member:
        """Best validation fitness over every member ever evaluated (lowest id on ties)."""
        return min(self.members, key=lambda m: (-m.fitness, m.id))

    def lineage(self, member_id: int) -> list[dict[str, Any]]:
        """The member and its first-parent ancestors, newest first."""
        chain, current = [], self.member(member_id)
        while True:
            chain.append(
                {"id": current.id, "generation": current.generation, "origin": current.origin}
            )
            if not current.parents:
                return chain
            current = self.member(current.parents[0])

    def save(self, path: Path) -> None:
        """Write the archive atomically; refuses one with a finished generation left empty."""
        empty = [g for g in range(self.generations_done) if not self.generation(g)]
        if empty:
            raise ValueError(f"{path}: generations {empty} have no members; not saved")
        payload = {
            "version": ARCHIVE_VERSION,
            "generations_done": self.generations_done,
            "members": [asdict(m) for m in self.members],
            "offspring": [asdict(o) for o in self.offspring],
            "adaptations": self.adaptations,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(payload))

    @classmethod
    def load(cls, path: Path) -> Archive:
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
            if raw["version"] != ARCHIVE_VERSION:
                raise ValueError(f"archive version {raw['version']}, expected {ARCHIVE_VERSION}")
            members = [Member(**{**m, "parents": tuple(m["parents"])}) for m in raw["members"]]
            offspring = [
                Offspring(o["genome"], tuple(o["parents"]), o["origin"]) for o in raw["offspring"]
            ]
            return cls(members, offspring, raw["adaptations"], raw["generations_done"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{path}: unreadable population archive ({error}); move it away to restart "
                "the stage"
            ) from error
