"""The evolver: its explore/exploit and control rules (scripted fitness), the resumable
pause, one real search into a registry, and a search the generator runs dry."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import anthropic
import pandas as pd
import pytest
from tests.support.anthropic_server import AnthropicStandIn, error, strategies
from tests.unit.strategies.test_generator import screened

from evotrader.data import generate_synthetic
from evotrader.strategies.auditor import AuditLimits, audit
from evotrader.strategies.evolver import (
    STATE_FILE,
    Evolver,
    EvolverStateError,
    Judges,
    LoopState,
    SearchReport,
    plan_cycle,
)
from evotrader.strategies.generator import (
    Evaluated,
    GenerationRequest,
    LLMGenerator,
    OfflineGenerator,
    UniverseChoice,
)
from evotrader.strategies.registry import Registry
from evotrader.strategies.screening import screen
from evotrader.strategies.settings import (
    EvolverConfig,
    LLMConfig,
    ScreeningConfig,
    ValidationConfig,
)
from evotrader.strategies.spec import StrategyResult, StrategySpec
from evotrader.strategies.validation import validate

TSMOM = "momentum/time-series-momentum"
SEARCH_BARS = 600
UNIVERSES = [UniverseChoice.of(["AR1"], "synthetic"), UniverseChoice.of(["RW"], "synthetic")]


def entry(lookback: int, sharpe: float, trades: float = 30.0) -> Evaluated:
    spec = StrategySpec.build(TSMOM, ["X"], {"lookback": lookback})
    return Evaluated(spec, screened(spec, sharpe=sharpe, trades=trades))


def test_no_parent_means_the_whole_batch_explores() -> None:
    config = EvolverConfig(batch_size=6, explore_ratio=0.25)
    assert plan_cycle([], config).n_explore == 6
    losers = [entry(5, -0.3), entry(6, 0.0), entry(7, float("nan"))]
    plan = plan_cycle(losers, config)
    assert (plan.n_explore, plan.n_exploit, plan.parents) == (6, 0, ())


def test_parents_are_the_fittest_with_an_edge_and_the_batch_splits_by_ratio() -> None:
    pool = [entry(5, 0.4), entry(6, 0.9, trades=5), entry(7, 0.7), entry(8, -1.0), entry(9, 0.6)]
    plan = plan_cycle(pool, EvolverConfig(batch_size=6, top_n_screen=2, explore_ratio=0.5))
    assert (plan.n_explore, plan.n_exploit) == (3, 3)
    # 0.9 from 5 trades is worth 0.9 x 5/20 = 0.225 < 0.4: the few-trade luck ranks low
    assert [p.spec.parameters["lookback"] for p in plan.parents] == [7, 9]
    assert plan_cycle(pool, EvolverConfig(batch_size=5, explore_ratio=0.5)).n_explore == 3
    assert plan_cycle(pool, EvolverConfig(batch_size=4, explore_ratio=0.0)).n_exploit == 4
    only_new = plan_cycle(pool, EvolverConfig(batch_size=4, explore_ratio=1.0))
    assert (only_new.n_explore, only_new.n_exploit) == (4, 0)


@pytest.mark.parametrize(
    "bad",
    [
        {"batch_size": 0},
        {"explore_ratio": 1.5},
        {"exhaustion_cycles": 0},
        {"top_n_screen": 0},
        {"improving_cycles": 0},
        {"min_explore_ratio": -0.1},
        {"plateau_cycles": 5, "exhaustion_cycles": 5},
    ],
)
def test_invalid_evolver_config_is_rejected(bad) -> None:
    with pytest.raises(ValueError, match="evolver"):
        EvolverConfig(**bad)


def test_the_design_defaults() -> None:
    config = EvolverConfig()
    assert (config.batch_size, config.top_n_screen, config.explore_ratio) == (5, 3, 0.4)
    assert (config.max_cycles, config.improving_cycles, config.plateau_cycles) == (10, 3, 5)


# --- the control rules, driven by scripted fitness -------------------------------------------

CONTROL = EvolverConfig(
    batch_size=5,
    top_n_screen=3,
    explore_ratio=0.4,
    improving_cycles=3,
    plateau_cycles=5,
    exhaustion_cycles=7,
    max_cycles=20,
)
# new bests in cycles 0-3, then a plateau: after cycle 8 explore turns to new templates,
# after cycle 10 (7 cycles without a new best) the search pauses
SCRIPT = [0.5, 0.6, 0.7, 0.8] + [0.1] * 20


class Scripted:
    """A mapper that screens by script: cycle c's first spec gets Sharpe ``script[c]``,
    the next ones a little less; nothing passes the screen (no validation)."""

    def __init__(self, script: Sequence[float], cycle: int = 0) -> None:
        self.script, self.cycle = list(script), cycle

    def __call__(
        self, function: Callable[[StrategySpec], StrategyResult], specs: Sequence[StrategySpec]
    ) -> list[StrategyResult]:
        sharpe = self.script[self.cycle]
        self.cycle += 1
        return [screened(spec, sharpe=sharpe - 0.01 * i) for i, spec in enumerate(specs)]


def never(*args: object) -> StrategyResult:
    raise AssertionError("nothing passed the screen: nothing is validated or audited")


def scripted(
    registry: Registry, state: Path, config: EvolverConfig = CONTROL, cycle: int = 0
) -> tuple[Recording, Evolver]:
    generator = Recording(OfflineGenerator(UNIVERSES, seed=5))
    judges = Judges(screen=never, validate=never, audit=never, max_drawdown=0.3)
    evolver = Evolver(
        generator, judges, registry, config, mapper=Scripted(SCRIPT, cycle), state_path=state
    )
    return generator, evolver


def test_improving_cycles_shift_to_exploit_a_plateau_to_new_templates_exhaustion_pauses(
    tmp_path, caplog
) -> None:
    state = tmp_path / STATE_FILE
    with Registry(tmp_path / "r.sqlite") as registry, caplog.at_level(logging.INFO):
        generator, evolver = scripted(registry, state)
        report = evolver.run()
        asked = [(r.n_explore, r.n_exploit, r.new_templates) for r in generator.requests]
        cycle_of = {s.spec_id: registry.cycle_of(s.spec_id) for s in registry.specs()}
        specs = registry.specs()
    assert [c.improved for c in report.cycles] == [True] * 4 + [False] * 7
    assert asked[0] == (5, 0, False)  # no parent yet: all explore
    assert asked[1] == asked[2] == (2, 3, False)  # 5 x 0.4
    assert asked[3] == (1, 4, False)  # after 3 improving cycles the explore share halved
    assert asked[4:9] == [(1, 4, False)] * 5
    assert asked[9] == asked[10] == (2, 3, True)  # the plateau: more explore, new templates
    assert report.cycles[2].switches == (
        "3 improving cycles in a row: exploit more, explore share 0.40 -> 0.20",
    )
    assert report.cycles[8].switches == (
        "no new best in 5 cycles (plateau_cycles=5): explore new templates, explore share "
        "0.20 -> 0.40",
    )
    assert "cycle 2: 3 improving cycles in a row: exploit more" in caplog.text  # logged too
    assert "cycle 9: asked 2 explore (new templates) + 3 exploit" in report.cycles[9].line()
    assert report.paused and len(report.cycles) == 11
    assert report.stop_reason == "no new best in 7 cycles (exhaustion_cycles=7)"
    assert report.summary == (
        "paused after exhaustion at cycle 10: no new best in 7 cycles (exhaustion_cycles=7)"
    )
    assert report.cycles[10].switches[-1].startswith("pause: no new best in 7 cycles")
    # the new ideas of the plateau went to the templates tried least before it
    before = [s.template for s in specs if cycle_of[s.spec_id] < 9]
    counts = {t.id: before.count(t.id) for t in generator.inner.templates}
    fresh = [s for s in specs if cycle_of[s.spec_id] == 9 and s.parent is None]
    assert len(fresh) == 2
    assert all(counts[s.template] == min(counts.values()) for s in fresh)
    assert all("a new template" in s.rationale for s in fresh)
    saved = LoopState.load(state)
    assert (saved.status, saved.next_cycle, saved.stale, saved.best) == ("paused", 11, 7, 0.8)
    assert saved.explore_share == 0.4 and saved.new_templates
    assert saved.tried == [s.spec_id for s in specs]
    assert len(saved.parents) == 3


def test_a_paused_search_resumes_where_it_paused(tmp_path, caplog) -> None:
    state = tmp_path / STATE_FILE
    with Registry(tmp_path / "r.sqlite") as registry:
        scripted(registry, state)[1].run()
        paused = LoopState.load(state)
        config = EvolverConfig(**{**CONTROL.__dict__, "max_cycles": 13})
        generator, evolver = scripted(registry, state, config, cycle=11)
        with caplog.at_level(logging.INFO):
            report = evolver.run()
        first = generator.requests[0]
        assert set(first.tried) == set(paused.tried)
        assert [p.spec.spec_id for p in first.parents] == paused.parents
    assert "resuming the strategy search from" in caplog.text and "at cycle 11" in caplog.text
    assert [c.cycle for c in report.cycles] == [11, 12]
    assert (first.cycle, first.n_explore, first.n_exploit, first.new_templates) == (
        11,
        2,
        3,
        True,
    )
    assert not report.paused and report.summary == "stopped at max_cycles=13 (cycle 12)"
    resumed = LoopState.load(state)
    assert resumed.best == paused.best and resumed.stale == 2  # a fresh patience count
    assert resumed.tried[: len(paused.tried)] == paused.tried


def test_an_interrupted_search_resumed_makes_the_same_search(tmp_path) -> None:
    config = EvolverConfig(**{**CONTROL.__dict__, "max_cycles": 6})
    with Registry(tmp_path / "whole.sqlite") as registry:
        scripted(registry, tmp_path / "whole.json", config)[1].run()
        whole = [(s.spec_id, registry.cycle_of(s.spec_id)) for s in registry.specs()]
    cut = EvolverConfig(**{**CONTROL.__dict__, "max_cycles": 3})
    with Registry(tmp_path / "parts.sqlite") as registry:
        first = scripted(registry, tmp_path / "parts.json", cut)[1].run()
        assert first.summary == "stopped at max_cycles=3 (cycle 2)"
        scripted(registry, tmp_path / "parts.json", config, cycle=3)[1].run()
        parts = [(s.spec_id, registry.cycle_of(s.spec_id)) for s in registry.specs()]
    assert parts == whole
    a, b = LoopState.load(tmp_path / "whole.json"), LoopState.load(tmp_path / "parts.json")
    assert a == b


def test_a_state_that_cannot_be_resumed_is_refused(tmp_path) -> None:
    state = tmp_path / STATE_FILE
    with Registry(tmp_path / "r.sqlite") as registry:
        state.write_text("{not json")
        with pytest.raises(EvolverStateError, match="remove it to start over"):
            scripted(registry, state)[1].run()
        ghost = LoopState(explore_share=0.4, next_cycle=1, tried=["0123456789abcdef"])
        state.write_text(ghost.to_json())
        with pytest.raises(EvolverStateError, match="names spec 0123456789abcdef"):
            scripted(registry, state)[1].run()


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return {
        "AR1": generate_synthetic(800, seed=1, kind="ar1").bars,
        "RW": generate_synthetic(800, seed=1, kind="random_walk").bars,
    }


def judges(data: dict[str, pd.DataFrame]) -> Judges:
    """Real screen (first 600 bars), validation (the next 200) and audit, on synthetic bars."""
    config = ScreeningConfig(n_folds=2, grid_points=2, max_combinations=4, min_trades=10)
    start = data["AR1"].index[SEARCH_BARS]

    def part(spec: StrategySpec, rows: int) -> dict[str, pd.DataFrame]:
        return {s: data[s].iloc[:rows] for s in spec.universe.symbols}

    return Judges(
        screen=lambda spec: screen(spec, part(spec, SEARCH_BARS), config),
        validate=lambda spec, s: validate(
            spec, part(spec, 800), start=start, parameters=s.parameters, config=ValidationConfig()
        ),
        audit=lambda spec, s: audit(spec, s, part(spec, SEARCH_BARS), AuditLimits(min_trades=10)),
        max_drawdown=config.max_drawdown,
    )


class Recording:
    """The offline generator, with every request it was given kept for inspection."""

    def __init__(self, inner: OfflineGenerator) -> None:
        self.inner, self.name, self.requests = inner, inner.name, []

    def propose(self, request: GenerationRequest) -> list[StrategySpec]:
        self.requests.append(request)
        return self.inner.propose(request)


def search(data, path: Path, seed: int = 7) -> tuple[Recording, Registry, SearchReport]:
    generator = Recording(OfflineGenerator(UNIVERSES, seed=seed))
    registry = Registry(path)
    config = EvolverConfig(
        batch_size=4,
        top_n_screen=2,
        explore_ratio=0.5,
        plateau_cycles=1,
        exhaustion_cycles=2,
        max_cycles=3,
    )
    report = Evolver(generator, judges(data), registry, config).run()
    return generator, registry, report


@pytest.fixture(scope="module")
def searched(data, tmp_path_factory) -> Iterator[tuple[Recording, Registry, SearchReport]]:
    generator, registry, report = search(data, tmp_path_factory.mktemp("search") / "r.sqlite")
    yield generator, registry, report
    registry.close()


def test_a_search_explores_then_exploits_its_parents_and_promotes_by_the_rules(searched) -> None:
    generator, registry, report = searched
    requests = generator.requests
    assert len(requests) == len(report.cycles) >= 2
    assert (requests[0].n_explore, requests[0].n_exploit, requests[0].parents) == (4, 0, ())
    specs = {s.spec_id: s for s in registry.specs()}
    fitness = {i: Evaluated(s, registry.result(i, "screen")).fitness for i, s in specs.items()}
    exploited = 0
    for cycle, asked in enumerate(requests[1:], start=1):
        before = [i for i in specs if registry.cycle_of(i) < cycle]
        edge = sorted((i for i in before if fitness[i] > 0), key=lambda i: (-fitness[i], i))[:2]
        assert [p.spec.spec_id for p in asked.parents] == edge  # rule 1, from the registry
        plateau = any("plateau_cycles" in s for c in report.cycles[:cycle] for s in c.switches)
        expected = (4, 0) if not edge or plateau else (2, 2)  # a plateau doubles the share
        assert (asked.n_explore, asked.n_exploit) == expected  # rule 2
        assert asked.tried == frozenset(before)
        for spec in (s for s in specs.values() if registry.cycle_of(s.spec_id) == cycle):
            if spec.parent is not None:
                exploited += 1
                assert spec.parent in edge
                assert spec.generation == specs[spec.parent].generation + 1
                assert registry.ancestors(spec.spec_id)[0].spec_id == spec.parent
    assert exploited >= 2  # the planted AR(1) gave parents to refine
    for cycle in range(len(report.cycles)):  # promotion: the cycle's best screen passers
        ids = [i for i in specs if registry.cycle_of(i) == cycle]
        passers = sorted(
            (i for i in ids if registry.result(i, "screen").passed), key=lambda i: -fitness[i]
        )
        validated = [i for i in ids if registry.result(i, "validate") is not None]
        assert sorted(validated) == sorted(passers[:2])
        for i in validated:
            audited = registry.audit(i)
            assert (audited is not None) == registry.result(i, "validate").passed
            assert (i in {s.spec_id for s in registry.live_ready()}) == bool(
                audited and audited.passed
            )
    counts = registry.counts()
    assert counts["screen"][0] == sum(c.screened for c in report.cycles) == len(specs)
    assert counts["validate"][0] == sum(c.validated for c in report.cycles) >= 1
    registry.close()


def test_the_same_seed_gives_the_same_search(data, searched, tmp_path) -> None:
    first = searched[1]
    _, second, _ = search(data, tmp_path / "again.sqlite")
    ids = [s.spec_id for s in first.specs()]
    assert ids == [s.spec_id for s in second.specs()]
    for spec_id in ids:
        for phase in ("screen", "validate"):
            ours, theirs = first.result(spec_id, phase), second.result(spec_id, phase)
            assert (ours and ours.to_json()) == (theirs and theirs.to_json())
    second.close()


def test_the_search_pauses_when_the_generator_has_nothing_new(data, tmp_path) -> None:
    """Claude proposes once, then the API fails: a cycle with nothing new pauses the search."""
    first = {
        "template": TSMOM,
        "universe": "AR1",
        "parameters": {"lookback": 1, "threshold": 0.0},
        "rationale": "the AR(1) edge lives in the last bar",
    }
    replies = [strategies(first), error(500, "api_error", "down"), error(500, "api_error", "down")]
    with AnthropicStandIn(replies) as server:
        client = anthropic.Anthropic(api_key="sk-test", base_url=server.url, max_retries=0)
        generator = LLMGenerator(client, UNIVERSES, LLMConfig(model="claude-test", retries=0))
        with Registry(tmp_path / "llm.sqlite") as registry:
            config = EvolverConfig(batch_size=2, max_cycles=6)
            report = Evolver(generator, judges(data), registry, config).run()
            assert len(registry) == 1
    assert [c.improved for c in report.cycles] == [True, False]
    assert [c.proposed for c in report.cycles] == [1, 0]
    assert report.paused and report.stop_reason == "the generator had nothing new"
    assert report.summary == "paused after exhaustion at cycle 1: the generator had nothing new"
    assert report.cycles[1].n_exploit == 1  # its Sharpe > 0 made it a parent at once
