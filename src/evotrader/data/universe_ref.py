"""A checkpoint's universe reference: how to load the same aligned universe again.

The multi-asset twin of ``DataRef``: a source, the symbols in order, the source's options (an
option may be a mapping keyed by symbol, e.g. one CSV path per symbol), the date range and the
alignment policy (which decides the calendar, so it is part of "the same universe"). Read from
a checkpoint it is untrusted input, so ``checked`` holds every symbol to ``DataRef.checked``'s
rules (a registered source, options it takes, files inside the data roots) before anything is
read; the generated ``synthetic_universe`` source is checked against its generator's options.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evotrader.data.errors import DataError
from evotrader.data.reference import DataRef, _bound
from evotrader.data.universe import (
    DEFAULT_MAX_DROP_SHARE,
    MISSING_POLICIES,
    SYNTHETIC_UNIVERSE,
    Universe,
    _options_for,
    generator_options,
    load_universe,
)

_FIELDS = ("source", "symbols", "options")
_OPTIONAL = ("start", "end", "missing", "max_drop_share")


@dataclass(frozen=True)
class UniverseRef:
    """A source, its symbols, that source's options with file paths resolved, the first and
    last bar to read (``None``: all) and how missing days are aligned."""

    source: str
    symbols: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    start: str | None = None
    end: str | None = None
    missing: str = "drop"
    max_drop_share: float = DEFAULT_MAX_DROP_SHARE

    @classmethod
    def checked(cls, raw: Any, roots: Sequence[Path]) -> UniverseRef:
        """The reference ``raw`` (a checkpoint's JSON) if it is one, else a ``DataError``
        naming what is wrong."""
        if not isinstance(raw, Mapping):
            raise DataError(
                f"universe reference must be a mapping of {', '.join(_FIELDS)}, "
                f"found {type(raw).__name__}"
            )
        absent, unexpected = set(_FIELDS) - set(raw), set(raw) - {*_FIELDS, *_OPTIONAL}
        if absent or unexpected:
            raise DataError(
                f"universe reference must have the fields {list(_FIELDS)} (and optionally "
                f"{list(_OPTIONAL)}); missing {sorted(absent)}, "
                f"unexpected {sorted(map(str, unexpected))}"
            )
        source, symbols, options = (raw[name] for name in _FIELDS)
        if not isinstance(source, str) or not source:
            raise DataError(f"universe reference source must be a string, found {source!r:.80}")
        symbols = _checked_symbols(symbols)
        if not isinstance(options, Mapping):
            raise DataError(f"universe reference options must be a mapping, found {options!r:.80}")
        start, end = (_bound(name, raw.get(name)) for name in ("start", "end"))
        missing = raw.get("missing", "drop")
        if missing not in MISSING_POLICIES:
            raise DataError(
                f"universe reference missing must be one of {MISSING_POLICIES}, "
                f"found {missing!r:.80}"
            )
        share = raw.get("max_drop_share", DEFAULT_MAX_DROP_SHARE)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise DataError(
                f"universe reference max_drop_share must be a number in [0, 1], found {share!r:.80}"
            )
        if source.lower() == SYNTHETIC_UNIVERSE:
            unknown = sorted(set(options) - generator_options())
            if unknown:
                raise DataError(
                    f"data source {source!r} takes no option {unknown}; "
                    f"it takes {sorted(generator_options())}"
                )
            resolved = dict(options)
        else:
            resolved = _resolved_options(source, symbols, options, start, end, roots)
        return cls(source, symbols, resolved, start, end, missing, float(share))

    def __hash__(self) -> int:
        """By value, so a worker can cache the universe it loads per reference."""
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form checkpoints carry; ``checked`` reads it back."""
        return {
            "source": self.source,
            "symbols": list(self.symbols),
            "options": {
                name: dict(value) if isinstance(value, Mapping) else value
                for name, value in self.options.items()
            },
            "start": self.start,
            "end": self.end,
            "missing": self.missing,
            "max_drop_share": self.max_drop_share,
        }

    def load(self) -> Universe:
        """The universe this reference names, aligned as it was."""
        return load_universe(
            self.source,
            self.symbols,
            self.start,
            self.end,
            self.missing,
            self.max_drop_share,
            **self.options,
        )


def _checked_symbols(symbols: Any) -> tuple[str, ...]:
    """A non-empty list of distinct, non-empty strings."""
    if (
        not isinstance(symbols, list | tuple)
        or not symbols
        or not all(isinstance(s, str) and s for s in symbols)
        or len(set(symbols)) != len(symbols)
    ):
        raise DataError(
            f"universe reference symbols must be a non-empty list of distinct names, "
            f"found {symbols!r:.80}"
        )
    return tuple(symbols)


def _resolved_options(
    source: str,
    symbols: tuple[str, ...],
    options: Mapping[str, Any],
    start: str | None,
    end: str | None,
    roots: Sequence[Path],
) -> dict[str, Any]:
    """Every symbol's options checked as a ``DataRef``; per-symbol mappings stay per symbol."""
    refs = {}
    for symbol in symbols:
        own = _options_for(symbol, options)
        raw = {"source": source, "symbol": symbol, "options": own, "start": start, "end": end}
        refs[symbol] = DataRef.checked(raw, roots)
    return {
        name: (
            {s: refs[s].options[name] for s in symbols}
            if isinstance(value, Mapping)
            else refs[symbols[0]].options[name]
        )
        for name, value in options.items()
    }


__all__ = ["UniverseRef"]
