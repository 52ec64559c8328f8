"""The registry on real SQLite files: round-trips, lineage, leaderboard, schema version."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from tests.unit.strategies.test_generator import screened

from evotrader.data import generate_synthetic
from evotrader.strategies.auditor import AuditCheck, AuditLimits, AuditReport, audit
from evotrader.strategies.registry import SCHEMA_VERSION, Registry, RegistryError
from evotrader.strategies.screening import screen
from evotrader.strategies.settings import ScreeningConfig, ValidationConfig
from evotrader.strategies.spec import StrategyResult, StrategySpec
from evotrader.strategies.validation import validate

TSMOM = "momentum/time-series-momentum"


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return {"X": generate_synthetic(700, seed=3, kind="ar1").bars}


@pytest.fixture(scope="module")
def verdicts(data) -> tuple[StrategySpec, StrategyResult, StrategyResult]:
    """A real screen and validation of one spec on synthetic bars."""
    spec = StrategySpec.build(TSMOM, ["X"], {"lookback": 3})
    config = ScreeningConfig(n_folds=2, grid_points=2, max_combinations=4)
    screened_result = screen(spec, {"X": data["X"].iloc[:500]}, config)
    validated = validate(spec, data, start=data["X"].index[520], config=ValidationConfig())
    return spec, screened_result, validated


def lineage_tree(registry: Registry) -> dict[str, StrategySpec]:
    """root -> a, b; a -> c; c -> d (registered parents first)."""
    root = StrategySpec.build(TSMOM, ["X"], {"lookback": 10})
    a = StrategySpec.build(TSMOM, ["X"], {"lookback": 11}, parent=root.spec_id, generation=1)
    b = StrategySpec.build(TSMOM, ["X"], {"lookback": 12}, parent=root.spec_id, generation=1)
    c = StrategySpec.build(TSMOM, ["X"], {"lookback": 13}, parent=a.spec_id, generation=2)
    d = StrategySpec.build(TSMOM, ["X"], {"lookback": 14}, parent=c.spec_id, generation=3)
    specs = {"root": root, "a": a, "b": b, "c": c, "d": d}
    for cycle, spec in enumerate(specs.values()):
        assert registry.add_spec(spec, cycle=cycle)
    return specs


def test_specs_results_and_audits_round_trip_through_a_file(tmp_path: Path, verdicts, data) -> None:
    spec, screen_result, validation = verdicts
    report = audit(spec, screen_result, data, AuditLimits(min_trades=5))
    path = tmp_path / "nested" / "strategies.sqlite"
    with Registry(path) as registry:
        assert registry.add_spec(spec, cycle=0)
        registry.record(screen_result)
        registry.record(validation)
        registry.record_audit(report)
        registry.set_meta("search", {"windows": {"test_start": "2012-01-02"}, "cash": 1e5})
    with Registry(f"sqlite:///{path}") as reopened:  # a path and its URL are the same database
        assert reopened.spec(spec.spec_id).to_json() == spec.to_json()
        assert reopened.result(spec.spec_id, "screen").to_json() == screen_result.to_json()
        assert reopened.result(spec.spec_id, "validate").to_json() == validation.to_json()
        assert reopened.audit(spec.spec_id).to_dict() == report.to_dict()
        assert reopened.meta("search")["cash"] == 1e5
        assert reopened.cycle_of(spec.spec_id) == 0
        assert [s.spec_id for s in reopened.live_ready()] == (
            [spec.spec_id] if report.passed else []
        )
        counts = reopened.counts()
    assert counts["screen"] == (1, int(screen_result.passed))
    assert counts["validate"] == (1, int(validation.passed))
    assert counts["audit"] == (1, int(report.passed))
    with sqlite3.connect(path) as raw:  # headline columns the leaderboard sorts on
        sharpe = raw.execute("select sharpe from results where phase = 'screen'").fetchone()[0]
    assert sharpe == pytest.approx(screen_result.metrics["sharpe"])


def test_a_spec_proposed_twice_is_stored_once_with_its_first_lineage(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.sqlite") as registry:
        first = StrategySpec.build(TSMOM, ["X"], created_by="offline", rationale="first")
        again = replace(first, created_by="llm:claude", rationale="second")
        assert registry.add_spec(first) and not registry.add_spec(again)
        assert len(registry) == 1 and registry.spec(first.spec_id).rationale == "first"


def test_lineage_queries_walk_the_tree(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.sqlite") as registry:
        tree = lineage_tree(registry)
        ids = {name: spec.spec_id for name, spec in tree.items()}
        assert [s.spec_id for s in registry.ancestors(ids["d"])] == [
            ids["c"],
            ids["a"],
            ids["root"],
        ]
        assert registry.ancestors(ids["root"]) == []
        below = [s.spec_id for s in registry.descendants(ids["root"])]
        assert below == [ids["a"], ids["b"], ids["c"], ids["d"]]  # generation by generation
        assert [s.spec_id for s in registry.descendants(ids["a"])] == [ids["c"], ids["d"]]
        assert registry.descendants(ids["d"]) == []
        assert [s.generation for s in registry.specs()] == [0, 1, 1, 2, 3]


def test_an_unregistered_parent_or_spec_is_refused(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.sqlite") as registry:
        orphan = StrategySpec.build(TSMOM, ["X"], parent="feedfacefeedface", generation=1)
        with pytest.raises(RegistryError, match="parent feedfacefeedface, which is not registered"):
            registry.add_spec(orphan)
        with pytest.raises(RegistryError, match="no spec 'nope'"):
            registry.ancestors("nope")
        stray = screened(StrategySpec.build(TSMOM, ["X"]))
        with pytest.raises(RegistryError, match="no spec"):
            registry.record(stray)
        with pytest.raises(RegistryError, match="screen or validate"):
            registry.result(stray.spec_id, "audit")


def test_leaderboard_ranks_live_ready_then_validated_then_by_sharpe(tmp_path: Path) -> None:
    with Registry(tmp_path / "r.sqlite") as registry:
        tree = lineage_tree(registry)
        verdicts = {  # name: (screen Sharpe, validation (passed, Sharpe) or None)
            "root": (0.9, None),
            "a": (0.4, (True, 0.5)),
            "b": (0.6, (False, 1.2)),
            "c": (0.3, (True, 0.9)),
            "d": (1.5, None),
        }
        for name, (screen_sharpe, validation) in verdicts.items():
            registry.record(screened(tree[name], sharpe=screen_sharpe, passed=True))
            if validation:
                result = screened(tree[name], sharpe=validation[1], passed=validation[0])
                registry.record(replace(result, phase="validate"))
        passing = audit_report(tree["a"].spec_id, passed=True)
        registry.record_audit(passing)
        board = registry.leaderboard()
        assert [row.spec.spec_id for row in board] == [
            tree[name].spec_id for name in ("a", "c", "b", "d", "root")
        ]
        assert board[0].live_ready and board[0].audit_passed
        assert board[3].validation is None and board[3].screen.metrics["sharpe"] == 1.5
        assert len(registry.leaderboard(limit=2)) == 2


def audit_report(spec_id: str, passed: bool) -> AuditReport:
    return AuditReport(spec_id, (AuditCheck("drawdown", passed, "max drawdown 10%"),), ())


def test_a_newer_schema_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    Registry(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("update schema_version set version = ?", (SCHEMA_VERSION + 1,))
        tables_before = raw.execute("select name from sqlite_master").fetchall()
    with pytest.raises(RegistryError, match=f"schema version {SCHEMA_VERSION + 1}.*newer"):
        Registry(path)
    with sqlite3.connect(path) as raw:
        assert raw.execute("select name from sqlite_master").fetchall() == tables_before


def test_any_sqlalchemy_url_works_and_a_bad_one_is_named_without_secrets(tmp_path: Path) -> None:
    with Registry("sqlite://") as memory:  # in-memory SQLite through a URL
        spec = StrategySpec.build(TSMOM, ["X"])
        memory.add_spec(spec)
        assert spec.spec_id in memory and "nope" not in memory
    with pytest.raises(RegistryError, match="not a database URL") as caught:
        Registry("postgresql://user:hunter2@host:notaport/db")
    assert "hunter2" not in str(caught.value)


def test_missing_metadata_is_named(tmp_path: Path) -> None:
    with (
        Registry(tmp_path / "r.sqlite") as registry,
        pytest.raises(RegistryError, match="'search'"),
    ):
        registry.meta("search")
