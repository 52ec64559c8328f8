"""Opening a SQLAlchemy database the way every evotrader store does (strategy and model
registries): a path means SQLite with foreign keys on, a URL is checked without ever echoing
its password, and any URL can be shown in messages with the password masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def database_url(url: str | Path, error: type[Exception]) -> str:
    """``url`` as a SQLAlchemy URL; a path becomes SQLite (its folder created). A malformed
    URL raises ``error`` without repeating it, since it may hold a password."""
    if isinstance(url, Path) or "://" not in str(url):
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    try:
        make_url(str(url))
    except (ArgumentError, ValueError):
        raise error("not a database URL: expected dialect[+driver]://...") from None
    return str(url)


def open_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite enforces foreign keys, as other databases do."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_foreign_keys)
    return engine


def shown_url(url: str | Path) -> str:
    """``url`` with any password masked (safe for messages and logs); a path as it is."""
    if isinstance(url, Path) or "://" not in str(url):
        return str(url)
    try:
        return make_url(str(url)).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(not a database URL)"


def _sqlite_foreign_keys(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
