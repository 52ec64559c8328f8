"""The model registry: which checkpoints exist, what state each is in, and why.

SQLAlchemy 2 over SQLite by default (``runs/registry.sqlite``, one database for every run
under ``runs/``); any SQLAlchemy URL works. Its tables carry a ``lifecycle_`` prefix, so the
registry may share a database with a strategy registry. ``runs/`` files stay the artefacts:
the registry is their index and the source of truth for what is traded.

An entry is one checkpoint file, recorded by path and content hash (recording it again is a
no-op; an overwritten file becomes a new entry) with its run, settings digest, data range,
validation and test figures, DSR/PBO/verdict and lineage, as the checkpoint itself says; or
one validated strategy of a strategy search's registry (``kind`` "strategy"), recorded by
that registry's path, its spec id and a hash of the spec and its validated parameters.
Every state change is a row of ``lifecycle_transitions`` with its time, reason and figures;
every challenger-vs-champion comparison a row of ``lifecycle_comparisons``. The database
holds at most one champion per symbol (a unique partial index, not only this code).
"""

from __future__ import annotations

import hashlib
import json
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
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    inspect,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from evotrader.core.checkpoint import Checkpoint, load_checkpoint
from evotrader.core.sql import database_url, open_engine, shown_url
from evotrader.lifecycle.states import (
    CANDIDATE,
    CHAMPION,
    RETIRED,
    LifecycleError,
    TransitionError,
    check_promotion,
    demotion_target,
)
from evotrader.strategies.registry import Registry as StrategyRegistry
from evotrader.strategies.registry import RegistryError, read_registered

SCHEMA_VERSION = 2  # 2 added strategy entries (``strategy_id``); 1 is migrated in place
REGISTRY_FILE = "registry.sqlite"  # under runs_dir
HOLDOUT, FORWARD = "holdout", "forward"  # what a comparison was run on
CHECKPOINT, STRATEGY = "checkpoint", "strategy"  # what an entry is


class RegistryStateError(LifecycleError):
    """The database cannot be read as a model registry (another layout, a newer version)."""


class _Base(DeclarativeBase):
    pass


class _SchemaVersion(_Base):
    __tablename__ = "lifecycle_schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)


class _Entry(_Base):
    __tablename__ = "lifecycle_entries"
    __table_args__ = (
        UniqueConstraint("path", "sha256"),
        Index(
            "lifecycle_one_champion_per_symbol",
            "symbol",
            unique=True,
            sqlite_where=text(f"state = '{CHAMPION}'"),
            postgresql_where=text(f"state = '{CHAMPION}'"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))  # CHECKPOINT or STRATEGY
    stage: Mapped[str] = mapped_column(String(100))
    symbol: Mapped[str] = mapped_column(String(100), index=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    run_name: Mapped[str] = mapped_column(String(200))
    settings_digest: Mapped[str] = mapped_column(String(100))
    data_range: Mapped[str] = mapped_column(Text)
    data: Mapped[str] = mapped_column(Text)
    validation: Mapped[str] = mapped_column(Text)
    test: Mapped[str] = mapped_column(Text)
    dsr: Mapped[float | None] = mapped_column(Float)
    pbo: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(Text)
    lineage: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(40))  # the checkpoint's own timestamp
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(20), index=True)
    strategy_id: Mapped[str | None] = mapped_column(String(100))  # a STRATEGY entry's spec id


class _Transition(_Base):
    __tablename__ = "lifecycle_transitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("lifecycle_entries.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(20))  # None: the entry was recorded
    to_state: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    figures: Mapped[str] = mapped_column(Text)


class _Comparison(_Base):
    __tablename__ = "lifecycle_comparisons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    challenger_id: Mapped[int] = mapped_column(ForeignKey("lifecycle_entries.id"), index=True)
    champion_id: Mapped[int] = mapped_column(ForeignKey("lifecycle_entries.id"))
    basis: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(Text)
    period_start: Mapped[str] = mapped_column(String(40))
    period_end: Mapped[str] = mapped_column(String(40))
    figures: Mapped[str] = mapped_column(Text)
    passed: Mapped[bool] = mapped_column(Boolean)
    verdict: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Entry:
    """One recorded checkpoint, its figures as its file states them, and its state."""

    id: int
    kind: str
    stage: str
    symbol: str
    path: str
    sha256: str
    run_name: str
    settings_digest: str
    data_range: dict[str, str]
    data: dict[str, Any]
    validation: dict[str, float]  # the split it was selected on: optimistic
    test: dict[str, float]  # only a champion of stage_4_autonomous has these
    dsr: float | None
    pbo: float | None
    verdict: str
    lineage: list[Any]
    created_at: str
    recorded_at: datetime
    state: str
    strategy_id: str | None = None  # a STRATEGY entry's spec id in the registry at ``path``

    @property
    def name(self) -> str:
        """How the operator and the bot name it: the file, or the strategy and its registry."""
        return f"strategy {self.strategy_id} in {self.path}" if self.strategy_id else self.path

    def figures(self) -> dict[str, Any]:
        """What a promotion records as the evidence it was taken on."""
        return {
            "validation": self.validation,
            "test": self.test,
            "dsr": self.dsr,
            "pbo": self.pbo,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class Transition:
    """One state change: when, from what to what, why, and the figures behind it."""

    id: int
    entry_id: int
    from_state: str | None
    to_state: str
    at: datetime
    reason: str
    figures: dict[str, Any]


@dataclass(frozen=True)
class Comparison:
    """A challenger against the champion on bars neither was selected on, with the verdict."""

    id: int
    challenger_id: int
    champion_id: int
    basis: str  # HOLDOUT (bars after both test splits) or FORWARD (a paper period)
    rule: str
    period_start: str
    period_end: str
    figures: dict[str, Any]
    passed: bool
    verdict: str
    at: datetime


class ModelRegistry:
    """Entries, their state changes and comparisons in the database at ``url`` (a path
    means SQLite)."""

    def __init__(self, url: str | Path) -> None:
        self.url = database_url(url, LifecycleError)
        self.engine: Engine = open_engine(self.url)
        self._check_schema()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def shown_url(self) -> str:
        return shown_url(self.url)

    # --- recording -----------------------------------------------------------------------

    def record_checkpoint(self, path: str | Path, reason: str = "recorded") -> Entry:
        """Record the checkpoint at ``path`` as a candidate; the entry already there when
        this file (same path, same bytes) was recorded before. Read with the safe loader."""
        path = Path(path).resolve()
        digest = file_sha256(path)
        with Session(self.engine) as session, session.begin():
            found = session.scalar(
                select(_Entry).where(_Entry.path == str(path), _Entry.sha256 == digest)
            )
            if found is not None:
                return _entry(found)
        row = _row_of(load_checkpoint(path), path, digest)
        with Session(self.engine) as session, session.begin():
            session.add(row)
            session.flush()
            session.add(_change(row.id, None, CANDIDATE, reason, _entry(row).figures()))
            return _entry(row)

    def record_strategy(
        self, strategies: str | Path, spec_id: str, reason: str = "recorded"
    ) -> Entry:
        """Record strategy ``spec_id`` of the strategy registry at ``strategies`` as a
        candidate, if it passed validation; the entry already there when this spec with these
        parameters was recorded from that registry before."""
        path = Path(strategies).resolve()
        row = _strategy_row(path, spec_id)
        with Session(self.engine) as session, session.begin():
            found = session.scalar(
                select(_Entry).where(_Entry.path == row.path, _Entry.sha256 == row.sha256)
            )
            if found is not None:
                return _entry(found)
            session.add(row)
            session.flush()
            session.add(_change(row.id, None, CANDIDATE, reason, _entry(row).figures()))
            return _entry(row)

    def record_strategies(self, strategies: str | Path, reason: str = "recorded") -> list[Entry]:
        """Record every strategy that passed validation in the strategy registry at
        ``strategies`` (a strategy search's ``strategies.sqlite``), in registration order."""
        path = Path(strategies)
        try:
            with StrategyRegistry(path) as found:
                validated = [
                    spec.spec_id
                    for spec in found.specs()
                    if (result := found.result(spec.spec_id, "validate")) and result.passed
                ]
        except RegistryError as error:
            raise LifecycleError(f"strategy registry {path}: {error}") from error
        return [self.record_strategy(path, spec_id, reason) for spec_id in validated]

    def find(self, path: str | Path, strategy_id: str | None = None) -> Entry | None:
        """The entry of the checkpoint file at ``path`` as its bytes are now (or of strategy
        ``strategy_id`` in the strategy registry at ``path``), if it was recorded."""
        path = Path(path).resolve()
        query = select(_Entry).where(_Entry.path == str(path)).order_by(_Entry.id.desc())
        if strategy_id is not None:
            query = query.where(_Entry.strategy_id == strategy_id)
        else:
            query = query.where(_Entry.sha256 == file_sha256(path))
        with Session(self.engine) as session:
            found = session.scalar(query)
            return _entry(found) if found is not None else None

    def record_comparison(
        self,
        challenger_id: int,
        champion_id: int,
        *,
        basis: str,
        rule: str,
        period: tuple[str, str],
        figures: dict[str, Any],
        passed: bool,
        verdict: str,
    ) -> Comparison:
        """Store a challenger-vs-champion comparison; ``holdout.compare_on_holdout`` calls it
        with basis HOLDOUT, the paper monitor (``monitor.against_champion``) with FORWARD."""
        if basis not in (HOLDOUT, FORWARD):
            raise LifecycleError(f"a comparison is on {HOLDOUT} or {FORWARD} bars, not {basis!r}")
        if challenger_id == champion_id:
            raise LifecycleError(f"entry {challenger_id} cannot be compared with itself")
        with Session(self.engine) as session, session.begin():
            challenger = self._row(session, challenger_id)
            champion = self._row(session, champion_id)
            if challenger.symbol != champion.symbol:
                raise LifecycleError(
                    f"entry {challenger_id} trades {challenger.symbol}, entry {champion_id} "
                    f"{champion.symbol}: a champion is replaced only by one of its own symbol"
                )
            row = _Comparison(
                challenger_id=challenger_id,
                champion_id=champion_id,
                basis=basis,
                rule=rule,
                period_start=period[0],
                period_end=period[1],
                figures=_json(figures),
                passed=passed,
                verdict=verdict,
                at=datetime.now(UTC),
            )
            session.add(row)
            session.flush()
            return _comparison(row)

    # --- state changes -------------------------------------------------------------------

    def promote(
        self,
        entry_id: int,
        to: str,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
    ) -> list[Transition]:
        """Move ``entry_id`` one step up. Replacing a champion needs the latest comparison
        of the pair, on bars neither was selected on, to have passed; the old champion
        retires in the same transaction. ``evidence`` (the paper monitor's figures) is
        stored with the change. Returns the changes made, oldest first."""
        with Session(self.engine) as session, session.begin():
            row = self._row(session, entry_id)
            check_promotion(entry_id, row.state, to)
            figures = _entry(row).figures()
            changes = []
            if to == CHAMPION:
                current = session.scalar(
                    select(_Entry).where(_Entry.symbol == row.symbol, _Entry.state == CHAMPION)
                )
                if current is not None:
                    comparison = self._passing(session, row, current)
                    figures = {"comparison": comparison.id, **_comparison(comparison).figures}
                    changes.append(
                        self._move(
                            session,
                            current,
                            RETIRED,
                            f"replaced by entry {row.id} ({comparison.basis} comparison "
                            f"{comparison.id}: {comparison.verdict})",
                            figures,
                        )
                    )
                    session.flush()  # the old champion leaves before the new one arrives
            if evidence:
                figures = figures | {"evidence": evidence}
            changes.append(self._move(session, row, to, reason or f"promoted to {to}", figures))
            return changes

    def demote(
        self,
        entry_id: int,
        reason: str,
        to: str | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> Transition:
        """Move ``entry_id`` one step down (or to ``to`` where that is allowed); a reason is
        required, since a demotion is a judgement the figures alone do not record.
        ``evidence`` (the paper monitor's figures) is stored with the change."""
        if not reason.strip():
            raise TransitionError(f"demoting entry {entry_id} needs a reason (--why TEXT)")
        with Session(self.engine) as session, session.begin():
            row = self._row(session, entry_id)
            target = demotion_target(entry_id, row.state, to)
            figures = _entry(row).figures()
            if evidence:
                figures = figures | {"evidence": evidence}
            return self._move(session, row, target, reason, figures)

    # --- queries -------------------------------------------------------------------------

    def entry(self, entry_id: int) -> Entry:
        with Session(self.engine) as session:
            return _entry(self._row(session, entry_id))

    def entries(self, symbol: str | None = None, state: str | None = None) -> list[Entry]:
        """Every entry (of ``symbol``, in ``state``), in the order they were recorded."""
        query = select(_Entry).order_by(_Entry.id)
        if symbol is not None:
            query = query.where(_Entry.symbol == symbol)
        if state is not None:
            query = query.where(_Entry.state == state)
        with Session(self.engine) as session:
            return [_entry(row) for row in session.scalars(query)]

    def champion(self, symbol: str) -> Entry | None:
        """What is traded for ``symbol``, if anything has been promoted that far."""
        found = self.entries(symbol, CHAMPION)
        return found[0] if found else None

    def history(self, entry_id: int | None = None) -> list[Transition]:
        """Every state change (of ``entry_id``), oldest first."""
        query = select(_Transition).order_by(_Transition.id)
        with Session(self.engine) as session:
            if entry_id is not None:
                self._row(session, entry_id)
                query = query.where(_Transition.entry_id == entry_id)
            return [_transition(row) for row in session.scalars(query)]

    def comparisons(self, entry_id: int | None = None) -> list[Comparison]:
        """Every comparison (that ``entry_id`` took part in), oldest first."""
        query = select(_Comparison).order_by(_Comparison.id)
        with Session(self.engine) as session:
            if entry_id is not None:
                self._row(session, entry_id)
                query = query.where(
                    (_Comparison.challenger_id == entry_id) | (_Comparison.champion_id == entry_id)
                )
            return [_comparison(row) for row in session.scalars(query)]

    def verify(self, entry: Entry) -> Path:
        """The entry's file, refused when its bytes (a strategy: its spec and validated
        parameters) are no longer the ones recorded."""
        path = Path(entry.path)
        if not path.is_file():
            raise LifecycleError(f"entry {entry.id}: its file {path} is gone")
        if entry.strategy_id is not None:
            if _strategy_row(path, entry.strategy_id).sha256 != entry.sha256:
                raise LifecycleError(
                    f"entry {entry.id}: strategy {entry.strategy_id} in {path} changed since "
                    "it was recorded; record it again as a new entry"
                )
            return path
        if file_sha256(path) != entry.sha256:
            raise LifecycleError(
                f"entry {entry.id}: {path} changed since it was recorded (sha256 differs); "
                "record the new file as a new entry"
            )
        return path

    # --- internals -----------------------------------------------------------------------

    def _check_schema(self) -> None:
        """Refuse another layout version before creating anything; migrate version 1 (it
        lacks strategy entries' one column); stamp a new database."""
        if inspect(self.engine).has_table(_SchemaVersion.__tablename__):
            with Session(self.engine) as session:
                version = max(session.scalars(select(_SchemaVersion.version)), default=None)
            if version == 1:
                with self.engine.begin() as connection:
                    connection.execute(
                        text("ALTER TABLE lifecycle_entries ADD COLUMN strategy_id VARCHAR(100)")
                    )
                    connection.execute(text("DELETE FROM lifecycle_schema_version"))
                version = None
            if version is not None and version != SCHEMA_VERSION:
                raise RegistryStateError(
                    f"model registry {self.shown_url} has schema version {version}, this "
                    f"evotrader reads version {SCHEMA_VERSION}"
                    + ("; upgrade evotrader to read it" if version > SCHEMA_VERSION else "")
                )
        _Base.metadata.create_all(self.engine)
        with Session(self.engine) as session, session.begin():
            if session.get(_SchemaVersion, SCHEMA_VERSION) is None:
                session.add(_SchemaVersion(version=SCHEMA_VERSION))

    def _row(self, session: Session, entry_id: int) -> _Entry:
        row = session.get(_Entry, entry_id)
        if row is None:
            raise LifecycleError(f"no entry {entry_id} in model registry {self.shown_url}")
        return row

    def _passing(self, session: Session, challenger: _Entry, champion: _Entry) -> _Comparison:
        """The pair's latest comparison, which must have passed."""
        latest = session.scalar(
            select(_Comparison)
            .where(
                _Comparison.challenger_id == challenger.id,
                _Comparison.champion_id == champion.id,
            )
            .order_by(_Comparison.id.desc())
        )
        if latest is not None and latest.passed:
            return latest
        found = (
            f"its latest comparison {latest.id} failed: {latest.verdict}"
            if latest is not None
            else "no comparison of the two is recorded"
        )
        raise TransitionError(
            f"entry {challenger.id} cannot replace champion entry {champion.id} of "
            f"{challenger.symbol}: {found}. A champion is replaced only on bars neither was "
            f"selected on: `python -m evotrader registry compare {challenger.id}` (a holdout "
            "after both test splits) or a forward (paper) comparison"
        )

    def _move(
        self, session: Session, row: _Entry, to: str, reason: str, figures: dict[str, Any]
    ) -> Transition:
        change = _change(row.id, row.state, to, reason, figures)
        row.state = to
        session.add(change)
        session.flush()
        return _transition(change)


def _change(
    entry_id: int, before: str | None, after: str, reason: str, figures: dict[str, Any]
) -> _Transition:
    return _Transition(
        entry_id=entry_id,
        from_state=before,
        to_state=after,
        at=datetime.now(UTC),
        reason=reason,
        figures=_json(figures),
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise LifecycleError(f"cannot read {path}: {error}") from error
    return digest.hexdigest()


def _row_of(checkpoint: Checkpoint, path: Path, digest: str) -> _Entry:
    """A new candidate entry from what the checkpoint says about itself."""
    extra, metrics = checkpoint.extra, checkpoint.metrics
    found = extra.get("run")
    run: dict[str, Any] = found if isinstance(found, dict) else {}
    test = {k.removeprefix("test_"): v for k, v in metrics.items() if k.startswith("test_")}
    validation = {
        k.removeprefix("validation_"): v for k, v in metrics.items() if not k.startswith("test_")
    }
    return _Entry(
        kind=CHECKPOINT,
        stage=str(extra.get("stage", checkpoint.kind)),
        symbol=checkpoint.symbol,
        path=str(path),
        sha256=digest,
        run_name=str(run.get("name", "")),
        settings_digest=str(run.get("fingerprint", "")),
        data_range=_json(checkpoint.data_range),
        data=_json(extra.get("data", {})),
        validation=_json(validation),
        test=_json(test),
        dsr=metrics.get("validation_dsr"),
        pbo=metrics.get("pbo"),
        verdict=str(extra.get("verdict", "")),
        lineage=_json(extra.get("lineage", [])),
        created_at=checkpoint.created_at,
        recorded_at=datetime.now(UTC),
        state=CANDIDATE,
    )


def _strategy_row(path: Path, spec_id: str) -> _Entry:
    """A new candidate entry from what the strategy registry at ``path`` holds of
    ``spec_id``: refused unless it passed validation (only validated strategies trade)."""
    if not path.is_file():
        raise LifecycleError(f"strategy registry {path}: no such file")
    try:
        found = read_registered(path, spec_id)
    except RegistryError as error:
        raise LifecycleError(str(error)) from error  # it names the registry
    spec, validation, meta = found.spec, found.validation, found.meta
    if validation is None or not validation.passed:
        raise LifecycleError(
            f"strategy {spec_id} in {path} did not pass validation; only validated "
            "strategies are recorded in the model registry"
        )
    content = {"spec": spec.to_dict(), "parameters": dict(validation.parameters)}
    digest = hashlib.sha256(_json(content).encode()).hexdigest()
    windows = meta.get("windows", {})
    return _Entry(
        kind=STRATEGY,
        stage=f"strategy {spec.template}",
        symbol=",".join(spec.universe.symbols),
        path=str(path),
        sha256=digest,
        run_name=path.parent.name,
        settings_digest="",
        data_range=_json(windows),
        data=_json(meta.get("data", {})),
        validation=_json(dict(validation.metrics)),
        test=_json({}),
        dsr=validation.metrics.get("dsr"),
        pbo=validation.metrics.get("pbo"),
        verdict="passed validation",
        lineage=_json(list(found.ancestors)),
        created_at=str(windows.get("test_end", "")),
        recorded_at=datetime.now(UTC),
        state=CANDIDATE,
        strategy_id=spec_id,
    )


def _entry(row: _Entry) -> Entry:
    return Entry(
        id=row.id,
        kind=row.kind,
        stage=row.stage,
        symbol=row.symbol,
        path=row.path,
        sha256=row.sha256,
        run_name=row.run_name,
        settings_digest=row.settings_digest,
        data_range=json.loads(row.data_range),
        data=json.loads(row.data),
        validation=json.loads(row.validation),
        test=json.loads(row.test),
        dsr=row.dsr,
        pbo=row.pbo,
        verdict=row.verdict,
        lineage=json.loads(row.lineage),
        created_at=row.created_at,
        recorded_at=_utc(row.recorded_at),
        state=row.state,
        strategy_id=row.strategy_id,
    )


def _transition(row: _Transition) -> Transition:
    return Transition(
        row.id,
        row.entry_id,
        row.from_state,
        row.to_state,
        _utc(row.at),
        row.reason,
        json.loads(row.figures),
    )


def _comparison(row: _Comparison) -> Comparison:
    return Comparison(
        row.id,
        row.challenger_id,
        row.champion_id,
        row.basis,
        row.rule,
        row.period_start,
        row.period_end,
        json.loads(row.figures),
        row.passed,
        row.verdict,
        _utc(row.at),
    )


def _json(value: Any) -> str:
    """JSON text; inf and NaN (a Sortino without losses) stay readable by Python's json."""
    return json.dumps(value, sort_keys=True)


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
