"""Named static universes shipped as data files: who is in the list, as of when, and why that
date matters.

Each ``lists/<name>.yaml`` (package data) holds the list's ``name``, a ``title``, the data
``source`` its bars come from, the ``as_of`` date on which its membership was fixed, the
``symbols`` and a ``survivorship`` note. A list fixed on a date after a backtest starts was
picked knowing which companies survived until then; the strategy audit fails such a
backtest unless the user accepts the list explicitly. Every file is checked when read and
the first problem raises ``DataError`` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from evotrader.data.errors import DataError

_KEYS = ("name", "title", "source", "as_of", "symbols", "survivorship")


@dataclass(frozen=True)
class NamedList:
    """One named static universe (see the module docstring)."""

    name: str
    title: str
    source: str
    as_of: pd.Timestamp
    symbols: tuple[str, ...]
    survivorship: str

    def chosen_after(self, start: pd.Timestamp) -> bool:
        """Was the membership fixed after ``start`` (so a backtest from there sees survivors)?"""
        return bool(self.as_of > pd.Timestamp(start))


def lists_folder() -> Path:
    return Path(str(resources.files("evotrader") / "data" / "lists"))


@cache
def named_lists() -> dict[str, NamedList]:
    """Every shipped list by name, read and validated once per process."""
    found = {}
    for path in sorted(lists_folder().glob("*.yaml")):
        named = _read(path)
        found[named.name] = named
    return found


def named_list(name: str) -> NamedList:
    """The shipped list called ``name``; an unknown name lists the known ones."""
    known = named_lists()
    if name not in known:
        raise DataError(f"unknown universe list {name!r}; known lists: {', '.join(known)}")
    return known[name]


def _read(path: Path) -> NamedList:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise DataError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict) or sorted(raw) != sorted(_KEYS):
        keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise DataError(f"{path}: needs exactly the keys {list(_KEYS)}, got {keys}")
    if raw["name"] != path.stem:
        raise DataError(f"{path}: name {raw['name']!r} must equal the file name {path.stem!r}")
    for key in ("title", "source", "survivorship"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise DataError(f"{path}: {key!r} must be a non-empty string")
    symbols = raw["symbols"]
    if not isinstance(symbols, list) or not symbols:
        raise DataError(f"{path}: 'symbols' must be a non-empty list")
    if not all(isinstance(s, str) and s for s in symbols) or len(set(symbols)) != len(symbols):
        raise DataError(f"{path}: 'symbols' must be distinct non-empty strings")
    try:
        as_of = pd.Timestamp(str(raw["as_of"]))
    except ValueError:
        raise DataError(f"{path}: 'as_of' must be a date, got {raw['as_of']!r}") from None
    return NamedList(
        name=raw["name"],
        title=raw["title"].strip(),
        source=raw["source"],
        as_of=as_of,
        symbols=tuple(symbols),
        survivorship=" ".join(raw["survivorship"].split()),
    )
