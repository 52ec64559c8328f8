"""The explore/exploit loop: generate specs, screen them, validate the best, audit survivors.

Each cycle asks the generator for ``batch_size`` specs, split by these rules:

1. Parents are the screened specs with positive fitness (``Evaluated.fitness``: the
   walk-forward Sharpe, scaled down when short of the screen's minimum trades), a
   walk-forward edge worth refining; best first, at most ``top_n_screen``.
2. With no parent the whole batch explores. Otherwise ``round(batch_size x explore_ratio)``
   specs explore and the rest exploit the parents in turn.
3. The search stops after ``exhaustion_cycles`` cycles in a row without a new best
   fitness, or after ``max_cycles``.

Every new spec is registered with its lineage and screened. The cycle's ``top_n_screen``
best specs that passed the screen are validated; those that pass validation are audited,
and only an audit pass marks a spec live-ready. Each verdict, with its analyst-style notes,
goes to the registry and back to the generator in the next request. Given a deterministic
generator (the offline one with a seed) the whole search is deterministic.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from evotrader.strategies.auditor import AuditReport
from evotrader.strategies.generator import Evaluated, GenerationRequest, Generator
from evotrader.strategies.registry import Registry
from evotrader.strategies.settings import EvolverConfig
from evotrader.strategies.spec import StrategyResult, StrategySpec

log = logging.getLogger(__name__)

Mapper = Callable[
    [Callable[[StrategySpec], StrategyResult], Sequence[StrategySpec]], Iterable[StrategyResult]
]


@dataclass(frozen=True)
class CyclePlan:
    n_explore: int
    n_exploit: int
    parents: tuple[Evaluated, ...]


def plan_cycle(evaluated: Iterable[Evaluated], config: EvolverConfig) -> CyclePlan:
    """Rules 1 and 2: who the parents are and how the batch splits."""
    parents = sorted(
        (e for e in evaluated if e.fitness > 0), key=lambda e: (-e.fitness, e.spec.spec_id)
    )[: config.top_n_screen]
    if not parents:
        return CyclePlan(config.batch_size, 0, ())
    n_explore = math.floor(config.batch_size * config.explore_ratio + 0.5)
    return CyclePlan(n_explore, config.batch_size - n_explore, tuple(parents))


@dataclass(frozen=True)
class Judges:
    """The verdicts the evolver asks for, each bound to its data and settings by the caller.

    ``max_drawdown`` is the screen's drawdown limit, passed on to the generator.
    """

    screen: Callable[[StrategySpec], StrategyResult]
    validate: Callable[[StrategySpec, StrategyResult], StrategyResult]
    audit: Callable[[StrategySpec, StrategyResult], AuditReport]
    max_drawdown: float


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did, in numbers."""

    cycle: int
    n_explore: int
    n_exploit: int
    proposed: int
    screened: int
    passed_screen: int
    validated: int
    passed_validation: int
    live_ready: int
    best_fitness: float
    improved: bool

    def line(self) -> str:
        return (
            f"cycle {self.cycle}: asked {self.n_explore} explore + {self.n_exploit} exploit, "
            f"{self.proposed} proposed, {self.screened} new screened, {self.passed_screen} passed "
            f"the screen, {self.validated} validated ({self.passed_validation} passed), "
            f"{self.live_ready} live-ready; best fitness {self.best_fitness:.2f}"
            + (" (new best)" if self.improved else "")
        )


@dataclass(frozen=True)
class SearchReport:
    cycles: tuple[CycleReport, ...]
    stop_reason: str
    evaluated: tuple[Evaluated, ...]


class Evolver:
    """Runs cycles of generate -> screen -> validate -> audit into a registry.

    ``mapper`` screens a batch (``map`` by default; a Ray mapper spreads it over a
    cluster) and must return results in the order of the specs. ``on_cycle`` hears each
    cycle's report (progress lines).
    """

    def __init__(
        self,
        generator: Generator,
        judges: Judges,
        registry: Registry,
        config: EvolverConfig | None = None,
        mapper: Mapper = map,
        on_cycle: Callable[[CycleReport], None] | None = None,
    ) -> None:
        self.generator = generator
        self.judges = judges
        self.registry = registry
        self.config = config or EvolverConfig()
        self.mapper = mapper
        self.on_cycle = on_cycle

    def run(self) -> SearchReport:
        config = self.config
        evaluated: dict[str, Evaluated] = {}
        reports: list[CycleReport] = []
        best, stale = -math.inf, 0
        stop = f"reached max_cycles={config.max_cycles}"
        for cycle in range(config.max_cycles):
            report = self.cycle(cycle, evaluated, best)
            reports.append(report)
            log.debug(report.line())
            if self.on_cycle is not None:
                self.on_cycle(report)
            if report.improved:
                best, stale = report.best_fitness, 0
            else:
                stale += 1
            if stale >= config.exhaustion_cycles:
                stop = (
                    f"no new best in {stale} cycles (exhaustion_cycles={config.exhaustion_cycles})"
                )
                break
        return SearchReport(tuple(reports), stop, tuple(evaluated.values()))

    def cycle(self, cycle: int, evaluated: dict[str, Evaluated], best: float) -> CycleReport:
        """One generate -> screen -> validate -> audit round; ``evaluated`` grows in place."""
        plan = plan_cycle(evaluated.values(), self.config)
        history = (
            tuple(evaluated.values())[-self.config.history_size :]
            if self.config.history_size
            else ()
        )
        request = GenerationRequest(
            cycle=cycle,
            n_explore=plan.n_explore,
            n_exploit=plan.n_exploit,
            parents=plan.parents,
            history=history,
            tried=frozenset(evaluated),
            max_drawdown=self.judges.max_drawdown,
        )
        proposed = self.generator.propose(request)
        fresh = list({s.spec_id: s for s in proposed if s.spec_id not in evaluated}.values())
        for spec in fresh:
            self.registry.add_spec(spec, cycle)
        screened = list(self.mapper(self.judges.screen, fresh))
        batch = []
        for spec, result in zip(fresh, screened, strict=True):
            self.registry.record(result)
            evaluated[spec.spec_id] = Evaluated(spec, result)
            batch.append(evaluated[spec.spec_id])
        promoted = sorted(
            (e for e in batch if e.screen.passed), key=lambda e: (-e.fitness, e.spec.spec_id)
        )[: self.config.top_n_screen]
        passed_validation = live_ready = 0
        for entry in promoted:
            validated, audited = self.promote(entry)
            evaluated[entry.spec.spec_id] = validated
            passed_validation += bool(validated.validation and validated.validation.passed)
            live_ready += bool(audited and audited.passed)
        cycle_best = max((e.fitness for e in batch), default=-math.inf)
        return CycleReport(
            cycle=cycle,
            n_explore=plan.n_explore,
            n_exploit=plan.n_exploit,
            proposed=len(proposed),
            screened=len(fresh),
            passed_screen=sum(e.screen.passed for e in batch),
            validated=len(promoted),
            passed_validation=passed_validation,
            live_ready=live_ready,
            best_fitness=max(best, cycle_best),
            improved=cycle_best > best,
        )

    def promote(self, entry: Evaluated) -> tuple[Evaluated, AuditReport | None]:
        """Validate a screened spec and, if it passes, audit it; both go to the registry."""
        validation = self.judges.validate(entry.spec, entry.screen)
        self.registry.record(validation)
        report = None
        if validation.passed:
            report = self.judges.audit(entry.spec, entry.screen)
            self.registry.record_audit(report)
        return Evaluated(entry.spec, entry.screen, validation), report
