"""The trade journal: SQLite in WAL mode, written before anything leaves the bot.

Every order is inserted as PENDING before it is sent and updated when the broker answers,
so after a crash the journal knows every order that might exist at the broker, and a
restart reconciles instead of guessing. Fills are keyed by the broker's execution id, so
replaying the broker's fill list records each fill once. Each write is its own transaction
with ``synchronous=FULL``: what a call wrote survives a crash of the process or the machine.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evotrader.core import trading

SCHEMA_VERSION = 1
OPEN_STATUSES = (
    trading.OrderStatus.PENDING,
    trading.OrderStatus.SUBMITTED,
    trading.OrderStatus.PARTIALLY_FILLED,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY, run_id INTEGER, bar TEXT NOT NULL, decided_at TEXT NOT NULL,
    action INTEGER, target REAL NOT NULL, price REAL NOT NULL, equity REAL NOT NULL,
    detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    client_ref TEXT PRIMARY KEY, run_id INTEGER, bar TEXT NOT NULL, created_at TEXT NOT NULL,
    symbol TEXT NOT NULL, asset_class TEXT NOT NULL, exchange TEXT NOT NULL,
    currency TEXT NOT NULL, broker_id TEXT, side TEXT NOT NULL, quantity REAL NOT NULL,
    order_type TEXT NOT NULL, limit_price REAL, target_weight REAL, status TEXT NOT NULL,
    broker_order_id TEXT, filled_quantity REAL NOT NULL DEFAULT 0,
    remaining_quantity REAL NOT NULL DEFAULT 0, avg_fill_price REAL,
    reason TEXT NOT NULL DEFAULT '', updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status);
CREATE TABLE IF NOT EXISTS fills (
    exec_id TEXT PRIMARY KEY, client_ref TEXT NOT NULL, broker_order_id TEXT,
    symbol TEXT NOT NULL, side TEXT NOT NULL, quantity REAL NOT NULL, price REAL NOT NULL,
    cost REAL NOT NULL, timestamp TEXT NOT NULL, recorded_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    symbol TEXT PRIMARY KEY, quantity REAL NOT NULL, avg_cost REAL NOT NULL,
    updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS risk_events (
    id INTEGER PRIMARY KEY, run_id INTEGER, at TEXT NOT NULL, kind TEXT NOT NULL,
    detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY, run_id INTEGER, at TEXT NOT NULL, status TEXT NOT NULL,
    detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class JournalError(RuntimeError):
    """The journal file cannot be opened or is not an evotrader journal."""


@dataclass(frozen=True)
class JournalOrder:
    """An order as journaled: what was asked, on which bar, and its last known state."""

    request: trading.OrderRequest
    bar: str
    state: trading.OrderState


class Journal:
    """One bot's durable memory. ``session_id`` is fixed when the file is created, so
    client references built from it stay the same across restarts of the same bot."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise JournalError(f"journal {self.path}: cannot open: {error}") from error
        if mode.lower() != "wal":
            raise JournalError(f"journal {self.path}: WAL mode unavailable (got {mode!r})")
        with self.transaction():
            version = self._meta("schema_version")
            if version is None:
                self._set_meta("schema_version", str(SCHEMA_VERSION))
                self._set_meta("session_id", secrets.token_hex(4))
            elif version != str(SCHEMA_VERSION):
                raise JournalError(
                    f"journal {self.path}: schema version {version}, this code reads "
                    f"{SCHEMA_VERSION}"
                )
        self.session_id = str(self._meta("session_id"))
        self.run_id: int | None = None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs, decisions, events -------------------------------------------------------

    def start_run(self, at: pd.Timestamp, info: dict[str, Any]) -> int:
        cursor = self._db.execute(
            "INSERT INTO runs (started_at, info) VALUES (?, ?)", (_iso(at), _json(info))
        )
        if cursor.lastrowid is None:  # sqlite3 always sets it after an INSERT
            raise RuntimeError("journal: INSERT INTO runs returned no row id")
        self.run_id = int(cursor.lastrowid)
        return self.run_id

    def record_decision(
        self,
        bar: pd.Timestamp,
        at: pd.Timestamp,
        action: int | None,
        target: float,
        price: float,
        equity: float,
        detail: dict[str, Any],
    ) -> None:
        self._db.execute(
            "INSERT INTO decisions (run_id, bar, decided_at, action, target, price, equity, "
            "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.run_id, _iso(bar), _iso(at), action, target, price, equity, _json(detail)),
        )

    def record_risk_event(self, at: pd.Timestamp, kind: str, detail: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO risk_events (run_id, at, kind, detail) VALUES (?, ?, ?, ?)",
            (self.run_id, _iso(at), kind, _json(detail)),
        )

    def record_health(self, at: pd.Timestamp, status: str, detail: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO health (run_id, at, status, detail) VALUES (?, ?, ?, ?)",
            (self.run_id, _iso(at), status, _json(detail)),
        )

    def decisions(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM decisions ORDER BY id")

    def risk_events(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM risk_events ORDER BY id")

    def health(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM health ORDER BY id")

    # -- orders ------------------------------------------------------------------------

    def record_order(
        self, request: trading.OrderRequest, bar: pd.Timestamp, at: pd.Timestamp
    ) -> None:
        """Journal an order as PENDING; must happen before it is sent. A reference that is
        already journaled is refused, because sending it again could duplicate it."""
        instrument = request.instrument
        try:
            self._db.execute(
                "INSERT INTO orders (client_ref, run_id, bar, created_at, symbol, asset_class, "
                "exchange, currency, broker_id, side, quantity, order_type, limit_price, "
                "target_weight, status, remaining_quantity, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request.client_ref,
                    self.run_id,
                    _iso(bar),
                    _iso(at),
                    instrument.symbol,
                    instrument.asset_class,
                    instrument.exchange,
                    instrument.currency,
                    instrument.broker_id,
                    str(request.side),
                    request.quantity,
                    str(request.order_type),
                    request.limit_price,
                    request.target_weight,
                    str(trading.OrderStatus.PENDING),
                    request.quantity,
                    _iso(at),
                ),
            )
        except sqlite3.IntegrityError:
            raise JournalError(
                f"journal {self.path}: order {request.client_ref!r} is already journaled"
            ) from None

    def update_order(self, state: trading.OrderState, at: pd.Timestamp) -> None:
        """Record the broker's answer; unknown references are an error (journal first)."""
        cursor = self._db.execute(
            "UPDATE orders SET status = ?, broker_order_id = COALESCE(?, broker_order_id), "
            "filled_quantity = ?, remaining_quantity = ?, avg_fill_price = ?, reason = ?, "
            "updated_at = ? WHERE client_ref = ?",
            (
                str(state.status),
                state.broker_order_id,
                state.filled_quantity,
                state.remaining_quantity,
                state.avg_fill_price,
                state.reason,
                _iso(state.updated_at if state.updated_at is not None else at),
                state.client_ref,
            ),
        )
        if cursor.rowcount != 1:
            raise JournalError(f"journal {self.path}: no journaled order {state.client_ref!r}")

    def order(self, client_ref: str) -> JournalOrder | None:
        cursor = self._db.execute("SELECT * FROM orders WHERE client_ref = ?", (client_ref,))
        found = cursor.fetchone()
        return _order(self._named(cursor, found)) if found else None

    def orders(self) -> list[JournalOrder]:
        return [_order(row) for row in self._rows("SELECT * FROM orders ORDER BY rowid")]

    def open_orders(self) -> list[JournalOrder]:
        marks = ", ".join("?" * len(OPEN_STATUSES))
        return [
            _order(row)
            for row in self._rows(
                f"SELECT * FROM orders WHERE status IN ({marks}) ORDER BY rowid",
                tuple(map(str, OPEN_STATUSES)),
            )
        ]

    # -- fills and positions -----------------------------------------------------------

    def record_fill(self, fill: trading.Fill, at: pd.Timestamp) -> bool:
        """Record a fill once; returns False when its execution id is already journaled."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO fills (exec_id, client_ref, broker_order_id, symbol, side, "
            "quantity, price, cost, timestamp, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fill.exec_id,
                fill.client_ref,
                fill.broker_order_id,
                fill.symbol,
                str(fill.side),
                fill.quantity,
                fill.price,
                fill.cost,
                _iso(fill.timestamp),
                _iso(at),
            ),
        )
        return cursor.rowcount == 1

    def fill_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT exec_id FROM fills")}

    def fills(self) -> list[trading.Fill]:
        return [
            trading.Fill(
                exec_id=row["exec_id"],
                client_ref=row["client_ref"],
                broker_order_id=row["broker_order_id"],
                symbol=row["symbol"],
                side=trading.Side(row["side"]),
                quantity=row["quantity"],
                price=row["price"],
                cost=row["cost"],
                timestamp=pd.Timestamp(row["timestamp"]),
            )
            for row in self._rows("SELECT * FROM fills ORDER BY rowid")
        ]

    def set_positions(self, positions: dict[str, trading.Position], at: pd.Timestamp) -> None:
        """Replace the position snapshot with the broker's (the broker is the truth)."""
        with self.transaction():
            self._db.execute("DELETE FROM positions")
            self._db.executemany(
                "INSERT INTO positions (symbol, quantity, avg_cost, updated_at) "
                "VALUES (?, ?, ?, ?)",
                [(p.symbol, p.quantity, p.avg_cost, _iso(at)) for p in positions.values()],
            )

    def positions(self) -> dict[str, trading.Position]:
        return {
            row["symbol"]: trading.Position(row["symbol"], row["quantity"], row["avg_cost"])
            for row in self._rows("SELECT * FROM positions")
        }

    # -- key/value state (risk engine, bot) --------------------------------------------

    def set_state(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, _json(value)),
        )

    def get_state(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    # -- plumbing ----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit (one fsync); never wrap an order that is about to
        be sent, which must be committed on its own first. Nested use joins the outer one."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cursor = self._db.execute(sql, params)
        return [self._named(cursor, row) for row in cursor.fetchall()]

    @staticmethod
    def _named(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
        return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _order(row: dict[str, Any]) -> JournalOrder:
    instrument = trading.Instrument(
        symbol=row["symbol"],
        asset_class=row["asset_class"],
        exchange=row["exchange"],
        currency=row["currency"],
        broker_id=row["broker_id"],
    )
    request = trading.OrderRequest(
        client_ref=row["client_ref"],
        instrument=instrument,
        side=trading.Side(row["side"]),
        quantity=row["quantity"],
        order_type=trading.OrderType(row["order_type"]),
        limit_price=row["limit_price"],
        target_weight=row["target_weight"],
    )
    state = trading.OrderState(
        client_ref=row["client_ref"],
        status=trading.OrderStatus(row["status"]),
        broker_order_id=row["broker_order_id"],
        filled_quantity=row["filled_quantity"],
        remaining_quantity=row["remaining_quantity"],
        avg_fill_price=row["avg_fill_price"],
        reason=row["reason"],
        updated_at=pd.Timestamp(row["updated_at"]),
    )
    return JournalOrder(request=request, bar=row["bar"], state=state)


def _iso(when: pd.Timestamp) -> str:
    return str(pd.Timestamp(when).isoformat())


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)
