"""The strategy registry: every spec, its lineage and its verdicts, in one SQL database.

SQLAlchemy 2 over SQLite by default (``runs/<run_name>/strategies.sqlite``); any SQLAlchemy
URL works. A spec is stored once under its content hash (``spec_id``), with the lineage it
was first proposed with, so lineage forms a tree: a parent must be registered before its
children. Each phase (``screen``, ``validate``, ``audit``) keeps one verdict per spec as
the JSON of a ``StrategyResult`` (an ``AuditReport`` for the audit) next to the headline
numbers the leaderboard sorts on. ``schema_version`` holds the layout's version: a
database written by a newer evotrader is refused before anything is touched.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    func,
    inspect,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from evotrader.core.sql import database_url, open_engine, shown_url
from evotrader.strategies.auditor import AuditCheck, AuditReport
from evotrader.strategies.spec import StrategyResult, StrategySpec

SCHEMA_VERSION = 1
SEARCH_META = "search"  # the meta key a search records its windows, data, costs and cash under
PHASES: tuple[str, ...] = ("screen", "validate", "audit")


class RegistryError(ValueError):
    """The registry cannot be opened or a request contradicts what it holds."""


@dataclass(frozen=True)
class Registered:
    """One registered strategy as those who trade or record it read it."""

    spec: StrategySpec
    validation: StrategyResult | None
    screen: StrategyResult | None
    live_ready: bool
    meta: dict[str, Any]  # the search's windows, data, costs and cash (SEARCH_META)
    ancestors: tuple[str, ...]  # spec ids, root first

    @property
    def validated(self) -> bool:
        return self.validation is not None and self.validation.passed


def read_registered(path: Path, spec_id: str) -> Registered:
    """Strategy ``spec_id`` of the registry file at ``path``, read in one go; a
    ``RegistryError`` when the file cannot be read or does not hold it."""
    with Registry(path) as found:
        if spec_id not in found:
            raise RegistryError(f"strategy {spec_id} is not in the registry {path}")
        return Registered(
            spec=found.spec(spec_id),
            validation=found.result(spec_id, "validate"),
            screen=found.result(spec_id, "screen"),
            live_ready=any(spec.spec_id == spec_id for spec in found.live_ready()),
            meta=found.meta(SEARCH_META) or {},
            ancestors=tuple(parent.spec_id for parent in found.ancestors(spec_id)),
        )


class _Base(DeclarativeBase):
    pass


class _SchemaVersion(_Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)


class _Meta(_Base):
    __tablename__ = "metadata"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class _Spec(_Base):
    __tablename__ = "specs"
    spec_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, unique=True)  # registration order
    template: Mapped[str] = mapped_column(String(200), index=True)
    parent: Mapped[str | None] = mapped_column(ForeignKey("specs.spec_id"), index=True)
    generation: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    cycle: Mapped[int | None] = mapped_column(Integer)
    live_ready: Mapped[bool] = mapped_column(Boolean, default=False)
    spec_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _Result(_Base):
    __tablename__ = "results"
    spec_id: Mapped[str] = mapped_column(ForeignKey("specs.spec_id"), primary_key=True)
    phase: Mapped[str] = mapped_column(String(20), primary_key=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    sharpe: Mapped[float | None] = mapped_column(Float)
    max_drawdown: Mapped[float | None] = mapped_column(Float)
    total_return: Mapped[float | None] = mapped_column(Float)
    n_trades: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class LeaderboardRow:
    """One registered spec with the headline numbers of each phase it reached."""

    spec: StrategySpec
    cycle: int | None
    live_ready: bool
    screen: StrategyResult | None
    validation: StrategyResult | None
    audit_passed: bool | None


class Registry:
    """Specs, lineage and verdicts in the database at ``url`` (a path means SQLite)."""

    def __init__(self, url: str | Path) -> None:
        self.url = database_url(url, RegistryError)
        self.engine: Engine = open_engine(self.url)
        self._check_schema()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def shown_url(self) -> str:
        """The URL with any password masked (safe for messages and logs)."""
        return shown_url(self.url)

    # --- specs and lineage ---------------------------------------------------------------

    def add_spec(self, spec: StrategySpec, cycle: int | None = None) -> bool:
        """Register ``spec``; False (and nothing changes) when its spec_id is already there."""
        with Session(self.engine) as session, session.begin():
            if session.get(_Spec, spec.spec_id) is not None:
                return False
            if spec.parent is not None and session.get(_Spec, spec.parent) is None:
                raise RegistryError(
                    f"spec {spec.spec_id} names parent {spec.parent}, which is not registered"
                )
            registered = session.scalar(select(func.count()).select_from(_Spec))
            session.add(
                _Spec(
                    spec_id=spec.spec_id,
                    position=registered,
                    template=spec.template,
                    parent=spec.parent,
                    generation=spec.generation,
                    created_by=spec.created_by,
                    cycle=cycle,
                    live_ready=False,
                    spec_json=spec.to_json(),
                    created_at=datetime.now(UTC),
                )
            )
            return True

    def spec(self, spec_id: str) -> StrategySpec:
        with Session(self.engine) as session:
            return StrategySpec.from_json(self._row(session, spec_id).spec_json)

    def specs(self) -> list[StrategySpec]:
        """Every registered spec, in registration order."""
        with Session(self.engine) as session:
            rows = session.scalars(select(_Spec).order_by(_Spec.position))
            return [StrategySpec.from_json(row.spec_json) for row in rows]

    def __contains__(self, spec_id: object) -> bool:
        with Session(self.engine) as session:
            return isinstance(spec_id, str) and session.get(_Spec, spec_id) is not None

    def __len__(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(_Spec)) or 0

    def ancestors(self, spec_id: str) -> list[StrategySpec]:
        """The parent, its parent and so on up to the root (nearest first)."""
        found = []
        with Session(self.engine) as session:
            row = self._row(session, spec_id)
            while row.parent is not None:
                row = self._row(session, row.parent)
                found.append(StrategySpec.from_json(row.spec_json))
        return found

    def descendants(self, spec_id: str) -> list[StrategySpec]:
        """Every spec derived from ``spec_id``, generation by generation (breadth first)."""
        found = []
        with Session(self.engine) as session:
            frontier = [self._row(session, spec_id).spec_id]
            while frontier:
                children = session.scalars(
                    select(_Spec).where(_Spec.parent.in_(frontier)).order_by(_Spec.position)
                ).all()
                found += [StrategySpec.from_json(child.spec_json) for child in children]
                frontier = [child.spec_id for child in children]
        return found

    def cycle_of(self, spec_id: str) -> int | None:
        with Session(self.engine) as session:
            return self._row(session, spec_id).cycle

    # --- verdicts ------------------------------------------------------------------------

    def record(self, result: StrategyResult) -> None:
        """Store (or replace) ``result`` as its spec's verdict for ``result.phase``."""
        if result.phase not in ("screen", "validate"):
            raise RegistryError(f"results are screen or validate, got phase {result.phase!r}")
        self._put(
            result.spec_id,
            result.phase,
            result.passed,
            result.metrics,
            result.failure_reason or str(result.diagnostics.get("summary", "")),
            result.to_json(),
        )

    def record_audit(self, report: AuditReport) -> None:
        """Store the audit and mark the spec live-ready exactly when the audit passed."""
        self._put(
            report.spec_id,
            "audit",
            report.passed,
            {},
            report.summary(),
            json.dumps(report.to_dict(), sort_keys=True),
        )
        with Session(self.engine) as session, session.begin():
            self._row(session, report.spec_id).live_ready = report.passed

    def result(self, spec_id: str, phase: str) -> StrategyResult | None:
        """The spec's screen or validate verdict, or None if it never reached that phase."""
        if phase not in ("screen", "validate"):
            raise RegistryError(f"results are screen or validate, got phase {phase!r}")
        row = self._result_row(spec_id, phase)
        return StrategyResult.from_json(row.payload) if row else None

    def audit(self, spec_id: str) -> AuditReport | None:
        row = self._result_row(spec_id, "audit")
        if row is None:
            return None
        raw = json.loads(row.payload)
        checks = tuple(AuditCheck(c["name"], c["passed"], c["detail"]) for c in raw["checks"])
        return AuditReport(raw["spec_id"], checks, tuple(raw["notes"]))

    def live_ready(self) -> list[StrategySpec]:
        with Session(self.engine) as session:
            rows = session.scalars(select(_Spec).where(_Spec.live_ready).order_by(_Spec.position))
            return [StrategySpec.from_json(row.spec_json) for row in rows]

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per phase: (specs judged, specs passed)."""
        with Session(self.engine) as session:
            counts = {}
            for phase in PHASES:
                passed = session.scalars(select(_Result.passed).where(_Result.phase == phase))
                values = list(passed)
                counts[phase] = (len(values), sum(values))
            return counts

    def leaderboard(self, limit: int | None = 10) -> list[LeaderboardRow]:
        """Best first: live-ready, then passed validation, then validation Sharpe, then
        screen Sharpe (specs not validated rank below every validated one)."""
        with Session(self.engine) as session:
            specs = {row.spec_id: row for row in session.scalars(select(_Spec))}
            results: dict[tuple[str, str], _Result] = {
                (row.spec_id, row.phase): row for row in session.scalars(select(_Result))
            }

        def key(spec_id: str) -> tuple[Any, ...]:
            screen, validation = (
                results.get((spec_id, "screen")),
                results.get((spec_id, "validate")),
            )
            return (
                not specs[spec_id].live_ready,
                not (validation and validation.passed),
                validation is None,
                -_number(validation.sharpe if validation else None),
                -_number(screen.sharpe if screen else None),
                spec_id,
            )

        ranked = sorted(specs, key=key)[:limit]
        rows = []
        for spec_id in ranked:
            screen, validation = (
                results.get((spec_id, "screen")),
                results.get((spec_id, "validate")),
            )
            audit = results.get((spec_id, "audit"))
            rows.append(
                LeaderboardRow(
                    spec=StrategySpec.from_json(specs[spec_id].spec_json),
                    cycle=specs[spec_id].cycle,
                    live_ready=specs[spec_id].live_ready,
                    screen=StrategyResult.from_json(screen.payload) if screen else None,
                    validation=StrategyResult.from_json(validation.payload) if validation else None,
                    audit_passed=audit.passed if audit else None,
                )
            )
        return rows

    # --- run metadata --------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON-able value under ``key`` (periods, data source, costs of a search)."""
        text = json.dumps(value, sort_keys=True, allow_nan=False)
        with Session(self.engine) as session, session.begin():
            session.merge(_Meta(key=key, value=text))

    def meta(self, key: str) -> Any:
        with Session(self.engine) as session:
            row = session.get(_Meta, key)
            if row is None:
                raise RegistryError(f"registry {self.shown_url} holds no {key!r} metadata")
            return json.loads(row.value)

    # --- internals -----------------------------------------------------------------------

    def _check_schema(self) -> None:
        """Refuse a newer layout before creating anything; stamp a new database."""
        if inspect(self.engine).has_table(_SchemaVersion.__tablename__):
            with Session(self.engine) as session:
                found = session.scalars(select(_SchemaVersion.version)).all()
            version = max(found, default=None)
            if version is not None and version != SCHEMA_VERSION:
                newer = (
                    "a newer evotrader; upgrade to read it"
                    if version > SCHEMA_VERSION
                    else ("an older layout with no migration to this one")
                )
                raise RegistryError(
                    f"registry {self.shown_url} has schema version {version}, this evotrader "
                    f"reads version {SCHEMA_VERSION}: it was written by {newer}"
                )
        _Base.metadata.create_all(self.engine)
        with Session(self.engine) as session, session.begin():
            if session.get(_SchemaVersion, SCHEMA_VERSION) is None:
                session.add(_SchemaVersion(version=SCHEMA_VERSION))

    def _row(self, session: Session, spec_id: str) -> _Spec:
        row = session.get(_Spec, spec_id)
        if row is None:
            raise RegistryError(f"no spec {spec_id!r} in registry {self.shown_url}")
        return row

    def _result_row(self, spec_id: str, phase: str) -> _Result | None:
        with Session(self.engine) as session:
            self._row(session, spec_id)
            return session.get(_Result, (spec_id, phase))

    def _put(
        self,
        spec_id: str,
        phase: str,
        passed: bool,
        metrics: Mapping[str, float],
        summary: str,
        payload: str,
    ) -> None:
        with Session(self.engine) as session, session.begin():
            self._row(session, spec_id)
            session.merge(
                _Result(
                    spec_id=spec_id,
                    phase=phase,
                    passed=passed,
                    sharpe=_finite(metrics.get("sharpe")),
                    max_drawdown=_finite(metrics.get("max_drawdown")),
                    total_return=_finite(metrics.get("total_return")),
                    n_trades=_finite(metrics.get("n_trades")),
                    summary=summary,
                    payload=payload,
                    recorded_at=datetime.now(UTC),
                )
            )


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _number(value: float | None) -> float:
    return value if value is not None else -math.inf
