"""The model registry's record, lifecycle and champion rules (no backtests here)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from tests.unit.lifecycle.helpers import DATA_RANGE, lifecycle_checkpoint
from tests.unit.live.helpers import make_strategy_registry

from evotrader.lifecycle.states import (
    CANDIDATE,
    CHAMPION,
    PAPER,
    RETIRED,
    LifecycleError,
    TransitionError,
)
from evotrader.lifecycle.store import HOLDOUT, STRATEGY, ModelRegistry, RegistryStateError
from evotrader.strategies.registry import Registry as StrategyRegistry
from evotrader.strategies.spec import StrategySpec


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("checkpoints")
    return {
        name: lifecycle_checkpoint(folder / f"{name}.pth", seed) for seed, name in enumerate("abc")
    }


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    with ModelRegistry(tmp_path / "registry.sqlite") as opened:
        yield opened


def _comparison(registry: ModelRegistry, challenger: int, champion: int, passed: bool) -> int:
    return registry.record_comparison(
        challenger,
        champion,
        basis=HOLDOUT,
        rule="test rule",
        period=("2011-01-03", "2011-09-30"),
        figures={"challenger": {"excess_sharpe": 1.0}, "champion": {"excess_sharpe": 0.5}},
        passed=passed,
        verdict="beats" if passed else "does not beat",
    ).id


def test_record_reads_the_checkpoint_and_is_idempotent(tmp_path: Path, registry) -> None:
    path = lifecycle_checkpoint(
        tmp_path / "GOOG_autonomous_final.pth",
        0,
        metrics={"validation_sharpe": 1.2, "test_sharpe": 0.4, "validation_dsr": 0.7, "pbo": 0.3},
        extra={
            "stage": "stage_4_autonomous",
            "data": {"source": "embedded", "symbol": "GOOG", "options": {}},
            "run": {"name": "GOOG-quick-seed0", "fingerprint": "abc123"},
            "lineage": [{"id": 3}, {"id": 1}],
            "verdict": "edge over buy-and-hold: not significant (p=0.412, ...)",
        },
    )
    entry = registry.record_checkpoint(path)
    assert (entry.state, entry.symbol, entry.stage) == (CANDIDATE, "GOOG", "stage_4_autonomous")
    assert (entry.run_name, entry.settings_digest) == ("GOOG-quick-seed0", "abc123")
    assert entry.validation == {"sharpe": 1.2, "dsr": 0.7, "pbo": 0.3}
    assert entry.test == {"sharpe": 0.4}
    assert (entry.dsr, entry.pbo) == (0.7, 0.3)
    assert entry.lineage == [{"id": 3}, {"id": 1}]
    assert entry.verdict.startswith("edge over buy-and-hold")
    assert entry.data_range == DATA_RANGE
    assert registry.record_checkpoint(path) == entry  # same path, same bytes: the same entry
    assert [change.to_state for change in registry.history(entry.id)] == [CANDIDATE]

    lifecycle_checkpoint(path, 1)  # the file is overwritten: a new entry
    again = registry.record_checkpoint(path)
    assert again.id != entry.id and again.sha256 != entry.sha256
    with pytest.raises(LifecycleError, match="changed since it was recorded"):
        registry.verify(entry)


def test_only_the_allowed_transitions(files, registry) -> None:
    entry = registry.record_checkpoint(files["a"]).id
    with pytest.raises(TransitionError, match="candidate: not promotable to champion"):
        registry.promote(entry, CHAMPION)
    registry.promote(entry, PAPER, "validation looks sane")
    with pytest.raises(TransitionError, match="paper: not promotable to paper"):
        registry.promote(entry, PAPER)
    with pytest.raises(TransitionError, match="needs a reason"):
        registry.demote(entry, "  ")
    registry.demote(entry, "paper fills drifted from the backtest")
    assert registry.entry(entry).state == CANDIDATE
    registry.promote(entry, PAPER)
    registry.promote(entry, CHAMPION, "first champion of GOOG")  # no champion to beat yet
    with pytest.raises(TransitionError, match="demotion goes to retired, not candidate"):
        registry.demote(entry, "why not", to=CANDIDATE)
    registry.demote(entry, "superseded by a new data vendor")
    assert registry.entry(entry).state == RETIRED
    with pytest.raises(TransitionError, match="retired: it cannot be demoted"):
        registry.demote(entry, "again")
    with pytest.raises(TransitionError, match="retired: not promotable"):
        registry.promote(entry, PAPER)
    with pytest.raises(LifecycleError, match="no entry 99"):
        registry.promote(99, PAPER)


def test_a_champion_is_replaced_only_through_a_passing_comparison(files, registry) -> None:
    old, new = (registry.record_checkpoint(files[name]).id for name in "ab")
    for entry in (old, new):
        registry.promote(entry, PAPER)
    registry.promote(old, CHAMPION, "first champion")

    with pytest.raises(TransitionError, match="no comparison of the two is recorded"):
        registry.promote(new, CHAMPION)  # newer is not better by itself
    failed = _comparison(registry, new, old, passed=False)
    with pytest.raises(TransitionError, match=f"latest comparison {failed} failed"):
        registry.promote(new, CHAMPION)
    _comparison(registry, new, old, passed=True)
    _comparison(registry, new, old, passed=False)  # the latest comparison decides
    with pytest.raises(TransitionError, match="failed"):
        registry.promote(new, CHAMPION)
    assert registry.champion("GOOG").id == old

    passed = _comparison(registry, new, old, passed=True)
    retired, crowned = registry.promote(new, CHAMPION, "beat the champion on the holdout")
    assert (retired.entry_id, retired.from_state, retired.to_state) == (old, CHAMPION, RETIRED)
    assert f"replaced by entry {new} ({HOLDOUT} comparison {passed}" in retired.reason
    assert (crowned.entry_id, crowned.to_state) == (new, CHAMPION)
    assert crowned.figures["comparison"] == passed
    assert crowned.figures["challenger"] == {"excess_sharpe": 1.0}
    assert registry.champion("GOOG").id == new
    assert [entry.id for entry in registry.entries(state=CHAMPION)] == [new]


def test_the_database_itself_holds_one_champion_per_symbol(files, tmp_path, registry) -> None:
    first, second = (registry.record_checkpoint(files[name]).id for name in "ab")
    registry.promote(first, PAPER)
    registry.promote(first, CHAMPION)
    with (
        sqlite3.connect(tmp_path / "registry.sqlite") as raw,
        pytest.raises(sqlite3.IntegrityError, match="UNIQUE"),
    ):
        raw.execute("UPDATE lifecycle_entries SET state = 'champion' WHERE id = ?", (second,))


def test_comparisons_are_between_two_entries_of_one_symbol(files, registry) -> None:
    entry = registry.record_checkpoint(files["a"]).id
    with pytest.raises(LifecycleError, match="compared with itself"):
        _comparison(registry, entry, entry, passed=True)
    with pytest.raises(LifecycleError, match="on holdout or forward bars"):
        registry.record_comparison(
            entry,
            entry + 1,
            basis="test",
            rule="",
            period=("", ""),
            figures={},
            passed=True,
            verdict="",
        )


def test_history_holds_every_change_with_time_and_reason(files, registry) -> None:
    entry = registry.record_checkpoint(files["c"], "recorded by run GOOG-quick-seed2").id
    registry.promote(entry, PAPER, "DSR 0.97 over 44 trials")
    registry.demote(entry, "paper Sharpe -1.2 over 30 days", to=RETIRED)
    changes = registry.history(entry)
    assert [(c.from_state, c.to_state) for c in changes] == [
        (None, CANDIDATE),
        (CANDIDATE, PAPER),
        (PAPER, RETIRED),
    ]
    assert [c.reason for c in changes] == [
        "recorded by run GOOG-quick-seed2",
        "DSR 0.97 over 44 trials",
        "paper Sharpe -1.2 over 30 days",
    ]
    assert all(c.at.tzinfo is not None for c in changes)
    assert changes[0].at <= changes[1].at <= changes[2].at
    assert set(changes[1].figures) == {"validation", "test", "dsr", "pbo", "verdict"}
    assert registry.history() == changes


def test_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    ModelRegistry(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE lifecycle_schema_version SET version = 99")
    with pytest.raises(RegistryStateError, match=r"schema version 99.*upgrade evotrader"):
        ModelRegistry(path)


def test_a_validated_strategy_is_an_entry_an_unvalidated_one_is_refused(tmp_path, registry) -> None:
    spec = StrategySpec.build("momentum/volatility-scaled-momentum", ["GOOG"])
    validated = make_strategy_registry(tmp_path / "a" / "strategies.sqlite", spec)
    entry = registry.record_strategy(validated, spec.spec_id)
    assert (entry.kind, entry.strategy_id, entry.symbol, entry.state) == (
        STRATEGY,
        spec.spec_id,
        "GOOG",
        CANDIDATE,
    )
    assert registry.record_strategy(validated, spec.spec_id) == entry  # idempotent
    assert registry.find(validated, spec.spec_id) == entry
    assert registry.verify(entry) == validated.resolve()
    registry.promote(entry.id, PAPER, "validated on its own split")
    assert registry.entries("GOOG", PAPER)[0].name == f"strategy {spec.spec_id} in {validated}"
    screened = make_strategy_registry(tmp_path / "b" / "s.sqlite", spec, validated=False)
    with pytest.raises(LifecycleError, match="did not pass validation"):
        registry.record_strategy(screened, spec.spec_id)
    with pytest.raises(LifecycleError, match="is not in the registry"):
        registry.record_strategy(validated, "0123456789abcdef")


def test_a_strategy_whose_parameters_changed_is_not_the_recorded_entry(tmp_path, registry) -> None:
    spec = StrategySpec.build("momentum/volatility-scaled-momentum", ["GOOG"])
    path = make_strategy_registry(tmp_path / "strategies.sqlite", spec)
    entry = registry.record_strategy(path, spec.spec_id)
    with StrategyRegistry(path) as strategies:  # a later validation settled on other values
        again = strategies.result(spec.spec_id, "validate")
        assert again is not None
        strategies.record(replace(again, parameters={**again.parameters, "lookback": 99}))
    with pytest.raises(LifecycleError, match="changed since it was recorded"):
        registry.verify(entry)


def test_a_version_1_registry_is_migrated_in_place(files, tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    with ModelRegistry(path) as registry:
        entry = registry.record_checkpoint(files["a"])
    with sqlite3.connect(path) as raw:  # the layout session 4 wrote
        raw.execute("ALTER TABLE lifecycle_entries DROP COLUMN strategy_id")
        raw.execute("UPDATE lifecycle_schema_version SET version = 1")
    with ModelRegistry(path) as registry:
        assert registry.entry(entry.id) == entry
        assert registry.find(files["a"]) == entry
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version FROM lifecycle_schema_version").fetchall() == [(2,)]
