"""A checkpoint's data reference: how to load its bars again, checked before anything is read.

A checkpoint names its bars as a registered source, a symbol, that source's options and the
date range the run read (``start``/``end``, either open), the one description every reader
loads bars from: training, its Ray workers, run_backtest.py and the live bot. The
file may come from anywhere and may have been edited, so the reference is untrusted input:
it may only name a source in the registry (``load_bars``' sources) with options that source
takes, and every option that names a file or folder (a CSV/Parquet ``path``, the yfinance
``cache_dir``) must resolve, symlinks followed, inside one of the data roots. An edited path
to ``/etc/passwd`` or ``~/.ssh`` is refused with a ``DataError`` before the file is opened.

The data roots are evotrader's cache folder (``$EVOTRADER_CACHE``, else
``~/.cache/evotrader``, where yfinance bars are cached), the project's ``data/`` folder when
an entry point names its project, and every folder listed in ``$EVOTRADER_DATA_DIRS``
(separated like ``PATH``). A relative path resolves against the current directory, as it did
when training read it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from evotrader.data.errors import DataError
from evotrader.data.loader import load_bars, source_options
from evotrader.data.sources.yahoo import default_cache_dir

DATA_DIRS_ENV = "EVOTRADER_DATA_DIRS"
_FIELDS = ("source", "symbol", "options")
_RANGE = ("start", "end")  # optional: references written before they were recorded read all bars


def data_roots(project: Path | None = None) -> tuple[Path, ...]:
    """The folders a data reference's files may lie in, resolved (see the module doc)."""
    listed = [Path(entry) for entry in os.environ.get(DATA_DIRS_ENV, "").split(os.pathsep) if entry]
    roots = [default_cache_dir().parent, *([project / "data"] if project else []), *listed]
    return tuple(dict.fromkeys(root.expanduser().resolve() for root in roots))


@dataclass(frozen=True)
class DataRef:
    """A registered source, a symbol, that source's options with file paths resolved, and the
    first and last bar to read (``None``: from the first / to the last the source has)."""

    source: str
    symbol: str
    options: Mapping[str, Any] = field(default_factory=dict)
    start: str | None = None
    end: str | None = None

    @classmethod
    def checked(cls, raw: Any, roots: Sequence[Path]) -> DataRef:
        """The reference ``raw`` (a checkpoint's ``extra["data"]``) if it is one, else a
        ``DataError`` naming what is wrong."""
        if not isinstance(raw, Mapping):
            raise DataError(
                f"data reference must be a mapping of {', '.join(_FIELDS)}, "
                f"found {type(raw).__name__}"
            )
        missing, unexpected = set(_FIELDS) - set(raw), set(raw) - {*_FIELDS, *_RANGE}
        if missing or unexpected:
            raise DataError(
                f"data reference must have the fields {list(_FIELDS)} (and optionally "
                f"{list(_RANGE)}); missing {sorted(missing)}, "
                f"unexpected {sorted(map(str, unexpected))}"
            )
        source, symbol, options = (raw[name] for name in _FIELDS)
        start, end = (_bound(name, raw.get(name)) for name in _RANGE)
        if not isinstance(source, str) or not isinstance(symbol, str) or not symbol:
            raise DataError(f"data reference source and symbol must be strings: {dict(raw)}")
        if not isinstance(options, Mapping):
            raise DataError(f"data reference options must be a mapping, found {options!r:.80}")
        takes, paths = source_options(source)  # an unknown source is a DataError already
        unknown = sorted(set(options) - takes)
        if unknown:
            raise DataError(
                f"data source {source!r} takes no option {unknown}; it takes {sorted(takes)}"
            )
        inside = {name: str(_inside(name, options[name], roots)) for name in paths & set(options)}
        return cls(source, symbol, {**options, **inside}, start, end)

    def __hash__(self) -> int:
        """By value, so a worker can cache the bars it loads per reference."""
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form checkpoints and env-runner configs carry; ``checked`` reads it back."""
        return {
            "source": self.source,
            "symbol": self.symbol,
            "options": dict(self.options),
            "start": self.start,
            "end": self.end,
        }

    def for_symbol(self, symbol: str) -> DataRef:
        """The same source and options for another symbol's bars. A reference to a file
        holds that file's symbol only, so it cannot be mapped."""
        if symbol == self.symbol:
            return self
        _, paths = source_options(self.source)
        files = [self.options[name] for name in paths & set(self.options)]
        if any(Path(name).is_file() for name in files):
            raise DataError(
                f"the bars of {self.symbol} come from the file {files[0]}, which holds no "
                f"{symbol}; a {self.source} source cannot be mapped to another symbol"
            )
        return replace(self, symbol=symbol)

    def load(self) -> pd.DataFrame:
        return load_bars(self.source, self.symbol, self.start, self.end, **self.options)


def _bound(name: str, value: Any) -> str | None:
    """A date bound as the reference stores it: ``None`` or a string pandas reads as a date."""
    if value is None:
        return None
    try:
        pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise DataError(
            f"data reference {name} must be a date or null, found {value!r:.80}"
        ) from error
    return str(value)


def _inside(name: str, value: Any, roots: Sequence[Path]) -> Path:
    """``value`` resolved (symlinks followed) if it lies inside one of ``roots``."""
    if not isinstance(value, str) or not value:
        raise DataError(f"data reference option {name} must be a path string, found {value!r:.80}")
    path = Path(value).expanduser().resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise DataError(
            f"data reference option {name}={value!r} lies outside the data folders "
            f"({', '.join(map(str, roots))}); move the file into one of them or list its folder "
            f"in ${DATA_DIRS_ENV}"
        )
    return path
