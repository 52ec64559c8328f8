"""The explore/exploit loop: generate specs, screen them, validate the best, audit survivors.

Each cycle asks the generator for ``batch_size`` specs, split by these rules:

1. Parents are the screened specs with positive fitness (``Evaluated.fitness``: the
   walk-forward Sharpe, scaled down when short of the screen's minimum trades), a
   walk-forward edge worth refining; best first, at most ``top_n_screen``.
2. With no parent the whole batch explores. Otherwise ``round(batch_size x explore share)``
   specs explore and the rest exploit the parents in turn. The share starts at
   ``explore_ratio`` and moves by the control rules:
3. After ``improving_cycles`` cycles in a row with a new best fitness the share halves
   (exploit more; never below ``min_explore_ratio``). After ``plateau_cycles`` without one
   it doubles (at least back to ``explore_ratio``) and explore asks for templates not tried
   yet, or least tried, until a new best comes.
4. After ``exhaustion_cycles`` without a new best, or a cycle in which the generator had
   nothing new, the search pauses; after ``max_cycles`` it stops.

Every switch is logged with its reason and recorded in the cycle's report. After every
cycle the loop's state (next cycle, best fitness, streaks, explore share, tried spec ids,
parents, and whether it paused) is written atomically to ``state_path``; an evolver given
a path that holds a state resumes from it (a paused search gets a fresh patience count,
still exploring new templates) instead of starting over, reading the tried specs' verdicts
back from the registry.

Every new spec is registered with its lineage and screened. The cycle's ``top_n_screen``
best specs that passed the screen are validated; those that pass validation are audited,
and only an audit pass marks a spec live-ready. Each verdict, with its diagnostics, goes to
the registry and back to the generator in the next request. Given a deterministic
generator (the offline one with a seed, seeded per cycle) the whole search is
deterministic, resumed or not.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from evotrader.core.atomic import write_atomic
from evotrader.strategies.auditor import AuditReport
from evotrader.strategies.generator import Evaluated, GenerationRequest, Generator
from evotrader.strategies.registry import Registry
from evotrader.strategies.settings import EvolverConfig
from evotrader.strategies.spec import StrategyResult, StrategySpec

log = logging.getLogger(__name__)

STATE_FILE = "evolver_state.json"
STATE_VERSION = 1
RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"

Mapper = Callable[
    [Callable[[StrategySpec], StrategyResult], Sequence[StrategySpec]], Iterable[StrategyResult]
]


class EvolverStateError(ValueError):
    """A saved evolver state cannot be resumed: unreadable, or naming specs the registry lacks."""


@dataclass(frozen=True)
class CyclePlan:
    n_explore: int
    n_exploit: int
    parents: tuple[Evaluated, ...]


def plan_cycle(
    evaluated: Iterable[Evaluated], config: EvolverConfig, explore_share: float | None = None
) -> CyclePlan:
    """Rules 1 and 2: who the parents are and how the batch splits (``explore_share``
    defaults to ``config.explore_ratio``)."""
    parents = sorted(
        (e for e in evaluated if e.fitness > 0), key=lambda e: (-e.fitness, e.spec.spec_id)
    )[: config.top_n_screen]
    if not parents:
        return CyclePlan(config.batch_size, 0, ())
    share = config.explore_ratio if explore_share is None else explore_share
    n_explore = math.floor(config.batch_size * share + 0.5)
    return CyclePlan(n_explore, config.batch_size - n_explore, tuple(parents))


@dataclass
class LoopState:
    """What the loop carries from cycle to cycle, and what a resumed search starts from.

    ``improving`` and ``stale`` count the cycles in a row with and without a new best;
    ``new_templates`` is on from a plateau until the next new best; ``tried`` holds the
    evaluated spec ids in order and ``parents`` the next cycle's parents.
    """

    explore_share: float
    next_cycle: int = 0
    best: float = -math.inf
    improving: int = 0
    stale: int = 0
    new_templates: bool = False
    tried: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    status: str = RUNNING
    reason: str = ""

    def after(self, improved: bool, best: float, config: EvolverConfig) -> list[str]:
        """Rule 3 after a cycle: update the streaks and the share; the switches made, each
        with its reason."""
        switches = []
        if improved:
            self.best, self.improving, self.stale = best, self.improving + 1, 0
            if self.new_templates:
                self.new_templates = False
                switches.append("a new best: explore is free to pick any template again")
            if self.improving >= config.improving_cycles:
                self.improving = 0
                share = max(
                    self.explore_share / 2, min(config.min_explore_ratio, self.explore_share)
                )
                if share < self.explore_share:
                    switches.append(
                        f"{config.improving_cycles} improving cycles in a row: exploit more, "
                        f"explore share {self.explore_share:.2f} -> {share:.2f}"
                    )
                    self.explore_share = share
        else:
            self.improving, self.stale = 0, self.stale + 1
            if self.stale == config.plateau_cycles:
                share = min(1.0, max(config.explore_ratio, 2 * self.explore_share))
                switches.append(
                    f"no new best in {self.stale} cycles (plateau_cycles="
                    f"{config.plateau_cycles}): explore new templates, explore share "
                    f"{self.explore_share:.2f} -> {share:.2f}"
                )
                self.explore_share, self.new_templates = share, True
        return switches

    def to_json(self) -> str:
        payload: dict[str, Any] = {"version": STATE_VERSION, **asdict(self)}
        payload["best"] = self.best if math.isfinite(self.best) else None
        return json.dumps(payload, indent=1) + "\n"

    @classmethod
    def load(cls, path: Path) -> LoopState:
        try:
            raw = json.loads(path.read_text())
            if raw.pop("version") != STATE_VERSION:
                raise ValueError(f"version is not {STATE_VERSION}")
            best = raw.pop("best")
            return cls(best=-math.inf if best is None else float(best), **raw)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise EvolverStateError(
                f"evolver state {path} cannot be resumed ({error}); remove it to start over"
            ) from error


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
    """What one cycle did, in numbers, and the control switches made after it."""

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
    new_templates: bool = False
    switches: tuple[str, ...] = ()

    def line(self) -> str:
        return (
            f"cycle {self.cycle}: asked {self.n_explore} explore"
            + (" (new templates)" if self.new_templates else "")
            + f" + {self.n_exploit} exploit, "
            f"{self.proposed} proposed, {self.screened} new screened, {self.passed_screen} passed "
            f"the screen, {self.validated} validated ({self.passed_validation} passed), "
            f"{self.live_ready} live-ready; best fitness {self.best_fitness:.2f}"
            + (" (new best)" if self.improved else "")
        )  # the switches are logged by the evolver, each on its own line


@dataclass(frozen=True)
class SearchReport:
    """The cycles this run made, why the search ended and every evaluated spec.

    ``paused`` is True when it paused after exhaustion (a later run resumes it);
    ``summary`` says so, or that it stopped at ``max_cycles``."""

    cycles: tuple[CycleReport, ...]
    stop_reason: str
    evaluated: tuple[Evaluated, ...]
    paused: bool = False
    summary: str = ""


class Evolver:
    """Runs cycles of generate -> screen -> validate -> audit into a registry.

    ``mapper`` screens a batch (``map`` by default; a Ray mapper spreads it over a
    cluster) and must return results in the order of the specs. ``on_cycle`` hears each
    cycle's report (progress lines). ``state_path`` (optional) is where the loop's state
    is saved after every cycle and resumed from.
    """

    def __init__(
        self,
        generator: Generator,
        judges: Judges,
        registry: Registry,
        config: EvolverConfig | None = None,
        mapper: Mapper = map,
        on_cycle: Callable[[CycleReport], None] | None = None,
        state_path: Path | None = None,
    ) -> None:
        self.generator = generator
        self.judges = judges
        self.registry = registry
        self.config = config or EvolverConfig()
        self.mapper = mapper
        self.on_cycle = on_cycle
        self.state_path = state_path

    def run(self) -> SearchReport:
        config = self.config
        state, evaluated = self.start()
        reports: list[CycleReport] = []
        while state.status == RUNNING and state.next_cycle < config.max_cycles:
            cycle = state.next_cycle
            report = self.cycle(cycle, evaluated, state)
            state.tried = list(evaluated)
            state.next_cycle = cycle + 1
            switches = state.after(report.improved, report.best_fitness, config)
            if report.screened == 0:
                state.status, state.reason = PAUSED, "the generator had nothing new"
            elif state.stale >= config.exhaustion_cycles:
                state.status = PAUSED
                state.reason = (
                    f"no new best in {state.stale} cycles (exhaustion_cycles="
                    f"{config.exhaustion_cycles})"
                )
            elif state.next_cycle >= config.max_cycles:
                state.status, state.reason = STOPPED, f"reached max_cycles={config.max_cycles}"
            if state.status == PAUSED:
                switches.append(f"pause: {state.reason}")
            for switch in switches:
                log.info("strategy search cycle %d: %s", cycle, switch)
            state.parents = [p.spec.spec_id for p in plan_cycle(evaluated.values(), config).parents]
            report = replace(report, switches=tuple(switches))
            reports.append(report)
            self.save(state)
            log.debug(report.line())
            if self.on_cycle is not None:
                self.on_cycle(report)
        if state.status == RUNNING:  # resumed with no cycle left
            state.status, state.reason = STOPPED, f"reached max_cycles={config.max_cycles}"
            self.save(state)
        paused = state.status == PAUSED
        last = state.next_cycle - 1
        summary = (
            f"paused after exhaustion at cycle {last}: {state.reason}"
            if paused
            else f"stopped at max_cycles={config.max_cycles} (cycle {last})"
        )
        return SearchReport(
            tuple(reports), state.reason, tuple(evaluated.values()), paused, summary
        )

    def start(self) -> tuple[LoopState, dict[str, Evaluated]]:
        """A fresh state, or the saved one with its evaluated specs read from the registry."""
        fresh = LoopState(explore_share=self.config.explore_ratio)
        if self.state_path is None or not self.state_path.exists():
            return fresh, {}
        state = LoopState.load(self.state_path)
        evaluated = {}
        for spec_id in state.tried:
            screened = self.registry.result(spec_id, "screen") if spec_id in self.registry else None
            if screened is None:
                raise EvolverStateError(
                    f"evolver state {self.state_path} names spec {spec_id}, which registry "
                    f"{self.registry.shown_url} has no screen of; remove the state to start over"
                )
            evaluated[spec_id] = Evaluated(
                self.registry.spec(spec_id), screened, self.registry.result(spec_id, "validate")
            )
        log.info(
            "resuming the strategy search from %s at cycle %d (%s; %d specs tried, best "
            "fitness %.2f)",
            self.state_path,
            state.next_cycle,
            f"{state.status}: {state.reason}" if state.reason else state.status,
            len(evaluated),
            state.best,
        )
        if state.status == PAUSED:  # lifted: a fresh patience count, still exploring anew
            state.status, state.reason, state.stale = RUNNING, "", 0
        elif state.status == STOPPED and state.next_cycle < self.config.max_cycles:
            state.status, state.reason = RUNNING, ""  # max_cycles was raised
        return state, evaluated

    def save(self, state: LoopState) -> None:
        if self.state_path is not None:
            write_atomic(self.state_path, state.to_json())

    def cycle(self, cycle: int, evaluated: dict[str, Evaluated], state: LoopState) -> CycleReport:
        """One generate -> screen -> validate -> audit round; ``evaluated`` grows in place."""
        plan = plan_cycle(evaluated.values(), self.config, state.explore_share)
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
            new_templates=state.new_templates,
            template_counts=Counter(e.spec.template for e in evaluated.values()),
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
            best_fitness=max(state.best, cycle_best),
            improved=cycle_best > state.best,
            new_templates=state.new_templates,
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
