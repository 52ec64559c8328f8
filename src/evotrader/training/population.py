"""The autonomous stage's bookkeeping: genomes into agents, members' jobs and outcomes, their
fitness, and the resumable archive.

A genome's genes map onto the agent by name: CoreTransformer fields shape the world model's
trunk, ``window`` the observation window, and AgentHyperparameters fields its knobs. In a
portfolio run the same genes shape a portfolio agent's shared per-asset trunk, the cross-asset
genes (``CROSS_ASSET_GENES``) its attention across assets, and ``PORTFOLIO_KNOBS`` its
training; the other hyperparameter genes (memory, risk scale) shape nothing there yet and are
left out of its search space (``portfolio_space``). The
archive holds every member ever evaluated (fitness, metrics, validation returns, lineage)
and the offspring waiting for the next generation; it is rewritten atomically after each
generation, so a crash costs at most the generation in progress. Only whole generations are
saved (every one done has members), so a failed stage never leaves an archive that breaks the
next run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from evotrader.agents import AgentArchitecture, AgentHyperparameters
from evotrader.config import ConfigError, FitnessConfig
from evotrader.core.atomic import write_atomic
from evotrader.models.core_transformer import TransformerSpec
from evotrader.nas import CROSS_ASSET_GENES, Genome, Offspring, SearchSpace

if TYPE_CHECKING:
    from evotrader.core.checkpoint import Checkpoint
    from evotrader.data import TimeSplits

ENCODER_GENES = {f.name for f in fields(TransformerSpec)} - {"input_dim", "output_dim", "max_len"}
HYPERPARAMETER_GENES = {f.name for f in fields(AgentHyperparameters)}
# What trains a portfolio agent (``portfolio_autonomous.train_portfolio_agent``).
PORTFOLIO_KNOBS = (
    "lr",
    "batch_size",
    "epochs",
    "weight_decay",
    "policy_lr",
    "policy_batch",
    "policy_epochs",
    "turnover_penalty",
)
ARCHIVE_VERSION = 1


def check_genes(space: SearchSpace, portfolio: bool = False) -> None:
    """Every gene must shape something: the trunk, the window, a hyperparameter or (in a
    portfolio run only) the attention across assets; ``ConfigError`` naming the genes."""
    cross = sorted(set(space.genes) & set(CROSS_ASSET_GENES))
    if cross and not portfolio:
        raise ConfigError(
            f"stage_4_autonomous.genes {cross} are cross-asset genes: they shape a portfolio "
            "agent only; use them in a portfolio run (env=portfolio data.universe=[...])"
        )
    known = ENCODER_GENES | HYPERPARAMETER_GENES | {"window"} | set(CROSS_ASSET_GENES)
    unknown = sorted(set(space.genes) - known)
    if unknown:
        raise ConfigError(
            f"stage_4_autonomous.genes {unknown} map onto nothing; genes must be CoreTransformer "
            f"fields {sorted(ENCODER_GENES)}, window, AgentHyperparameters fields, or in a "
            f"portfolio run the cross-asset genes {list(CROSS_ASSET_GENES)}"
        )


def portfolio_space(space: SearchSpace) -> tuple[SearchSpace, list[str]]:
    """A portfolio run's search space: ``space`` less the genes that shape nothing in a
    portfolio agent (returned, for the run log), with every cross-asset gene present."""
    missing = sorted(set(CROSS_ASSET_GENES) - set(space.genes))
    if missing:
        raise ConfigError(
            f"stage_4_autonomous.genes: a portfolio run searches the cross-asset genes "
            f"{missing} too; declare them (configs/env/portfolio.yaml does)"
        )
    kept = ENCODER_GENES | {"window"} | set(CROSS_ASSET_GENES) | set(PORTFOLIO_KNOBS)
    dropped = [name for name in space.genes if name not in kept]
    return space.only([name for name in space.genes if name in kept]), dropped


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


@dataclass(frozen=True)
class Job:
    """One member to train and score; ``parent`` is the weight donor's agent or trunk state."""

    member_id: int
    genome: dict[str, Any]
    seed: int
    augmentation: str
    parent: dict[str, Any] | None


@dataclass(frozen=True)
class Outcome:
    member_id: int
    fitness: float
    metrics: dict[str, float]
    returns: list[float]  # per bar on the validation split, after costs
    benchmark_returns: list[float]  # buy-and-hold (a portfolio: equal weight) on the same bars
    architecture: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    seconds: float  # the task's wall time on its worker (for scheduling reports only)


@dataclass(frozen=True)
class TestLook:
    """The champion's one look at the test split, after costs."""

    excess: np.ndarray  # per bar over the benchmark
    numbers: dict[str, float]  # its headline figures
    report: str  # what the run log shows of it
    benchmark: str  # "buy-and-hold" (one symbol) or "equal weight" (a universe)


@dataclass(frozen=True)
class MemberForm:
    """What a member is, as the generation loop sees it: one symbol's AutonomousAgent
    (``autonomous_trainer``) or a universe's portfolio agent (``portfolio_autonomous``)."""

    space: SearchSpace
    submit: Callable[[Job], Any]  # the member's Ray task (an ObjectRef of its Outcome)
    cost: Callable[[Job], float]  # relative cost, to submit the longest first
    checkpoint: Callable[[Member, Outcome], Checkpoint]
    test: Callable[[Checkpoint, Path], TestLook]  # the saved champion and its path
    splits: TimeSplits  # the splits its figures are annualised on
    augmentations: tuple[str, ...]  # taken in turn by the members
    trunk: dict[str, Any] | None  # the earlier stage's weights for members without a parent


def fitness(metrics: dict[str, float], config: FitnessConfig) -> float:
    """Sharpe after costs, less penalties for drawdown past the limit and too few trades."""
    excess = max(0.0, abs(metrics["max_drawdown"]) - config.drawdown_limit)
    missing = max(0.0, config.min_trades - metrics["n_trades"]) / max(config.min_trades, 1)
    value = metrics["sharpe"] - config.drawdown_penalty * excess - config.trades_penalty * missing
    return float(value) if np.isfinite(value) else -1e9


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
