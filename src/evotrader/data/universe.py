"""Universes: several symbols' bars on one calendar, the data a portfolio is trained and traded on.

A universe holds one bars frame per symbol (each held to the bars contract) on one shared
DatetimeIndex. ``align`` builds that calendar and never invents a price: no forward fill, no
interpolation. Bars outside the span every symbol covers (a later listing, an earlier
delisting) are trimmed; inside it a *missing day* is a date some symbols have and others lack,
and the ``missing`` policy decides: ``"drop"`` removes such dates for every symbol (so a
return across the hole is the true two-day return) and refuses when a symbol would lose more
than ``max_drop_share`` of its bars; ``"error"`` refuses any hole, naming the symbol and date.

Close-only sources (skfolio's S&P 500 closes) carry open = high = low = close and no volume;
the universe says so (``close_only``, ``note``) so that fills at "the next open" are read as
what they are, fills at the next close.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from evotrader.data.errors import DataError
from evotrader.data.features import has_volume, is_close_only
from evotrader.data.loader import TimeBound, _naive_utc, list_symbols, load_bars
from evotrader.data.sources.synthetic_universe import generate_universe
from evotrader.data.validation import validate_ohlcv

logger = logging.getLogger(__name__)

MISSING_POLICIES: tuple[str, ...] = ("drop", "error")
SYNTHETIC_UNIVERSE = "synthetic_universe"  # generated as a whole, so no per-symbol source
DEFAULT_MAX_DROP_SHARE = 0.05  # a symbol losing more than this to others' holes is refused
CLOSE_ONLY_NOTE = (
    "close-only data: open, high and low equal the close and volume is unknown (0), "
    "so orders fill at a later bar's close (a 'next open' fill is the next close)"
)


def align(
    bars: Mapping[str, pd.DataFrame],
    missing: str = "drop",
    max_drop_share: float = DEFAULT_MAX_DROP_SHARE,
    quiet: bool = False,
) -> dict[str, pd.DataFrame]:
    """Each symbol's bars (validated copies) on one common calendar; see the module doc.

    Trimming to the common span is logged (at debug level when ``quiet``: for callers that
    align the same symbols many times, such as a strategy search).

    Raises ``DataError`` naming the symbol for invalid bars, an unknown policy, spans that do
    not overlap, a hole under ``"error"`` and a symbol losing more than ``max_drop_share``
    of its in-span bars under ``"drop"``.
    """
    if missing not in MISSING_POLICIES:
        raise DataError(f"align: missing must be one of {MISSING_POLICIES}, got {missing!r}")
    if not 0 <= max_drop_share <= 1:
        raise DataError(f"align: max_drop_share must lie in [0, 1], got {max_drop_share}")
    if not bars:
        raise DataError("align: no symbols to align")
    frames = {symbol: validate_ohlcv(frame, symbol=symbol) for symbol, frame in bars.items()}
    in_span = _common_span(frames, logging.DEBUG if quiet else logging.INFO)
    calendar = _union(list(in_span.values()))
    common = _intersection(list(in_span.values()))
    if missing == "error":
        _refuse_holes(in_span, calendar)
    if common.empty:
        raise DataError(
            f"align: the symbols {list(frames)} share no date inside their common span "
            f"{calendar[0]} to {calendar[-1]}"
        )
    for symbol, dates in in_span.items():
        _check_loss(symbol, dates, common, in_span, max_drop_share)
    return {symbol: frame.loc[common] for symbol, frame in frames.items()}


def _common_span(frames: Mapping[str, pd.DataFrame], level: int) -> dict[str, pd.DatetimeIndex]:
    """Each symbol's dates inside [latest first bar, earliest last bar]; trimming is logged
    at ``level``."""
    first = max(frame.index[0] for frame in frames.values())
    last = min(frame.index[-1] for frame in frames.values())
    if first > last:
        spans = ", ".join(f"{s} {f.index[0]} to {f.index[-1]}" for s, f in frames.items())
        raise DataError(f"align: the symbols' date ranges do not overlap ({spans})")
    in_span = {}
    for symbol, frame in frames.items():
        dates = frame.index[(frame.index >= first) & (frame.index <= last)]
        if len(dates) < len(frame):
            logger.log(
                level,
                "%s: %d bars outside the common span %s to %s trimmed",
                symbol,
                len(frame) - len(dates),
                first,
                last,
            )
        in_span[symbol] = pd.DatetimeIndex(dates)
    return in_span


def _union(indexes: Sequence[pd.DatetimeIndex]) -> pd.DatetimeIndex:
    union = indexes[0]
    for index in indexes[1:]:
        union = union.union(index)
    return union


def _intersection(indexes: Sequence[pd.DatetimeIndex]) -> pd.DatetimeIndex:
    common = indexes[0]
    for index in indexes[1:]:
        common = common.intersection(index)
    return common


def _refuse_holes(in_span: Mapping[str, pd.DatetimeIndex], calendar: pd.DatetimeIndex) -> None:
    """Under ``missing="error"``: the first symbol lacking a date another symbol has."""
    for symbol, dates in in_span.items():
        holes = calendar.difference(dates)
        if len(holes):
            others = [s for s, d in in_span.items() if holes[0] in d]
            raise DataError(
                f"{symbol}: no bar on {holes[0]} although {', '.join(others)} "
                f"{'has' if len(others) == 1 else 'have'} one ({len(holes)} such days); "
                "align with missing='drop' to drop those days for every symbol"
            )


def _check_loss(
    symbol: str,
    dates: pd.DatetimeIndex,
    common: pd.DatetimeIndex,
    in_span: Mapping[str, pd.DatetimeIndex],
    max_share: float,
) -> None:
    """Log how many of ``symbol``'s bars the common calendar drops; refuse above ``max_share``."""
    lost = dates.difference(common)
    if lost.empty:
        return
    share = len(lost) / len(dates)
    lacking = [s for s, d in in_span.items() if lost[0] not in d]
    detail = (
        f"{symbol}: aligning drops {len(lost)} of its {len(dates)} bars ({share:.1%}) on days "
        f"other symbols lack, the first {lost[0]} (missing from {', '.join(lacking)})"
    )
    if share > max_share:
        raise DataError(f"{detail}; more than max_drop_share={max_share:g}")
    logger.info("%s", detail)


@dataclass(frozen=True, eq=False)
class Universe:
    """Symbols and their aligned bars (same index, bars contract), where they came from, and
    whether they are close-only. Build one with ``Universe.from_bars`` or ``load_universe``;
    the constructor checks that the bars are aligned and the flag is true. The frames are
    validated copies held in a plain dict (so a universe pickles to Ray workers); treat them
    as read-only. Equality is identity: compare ``closes()`` to compare contents."""

    symbols: tuple[str, ...]
    bars: Mapping[str, pd.DataFrame]
    source: str = "frames"
    close_only: bool = False

    def __post_init__(self) -> None:
        symbols = tuple(self.symbols)
        if not symbols or len(set(symbols)) != len(symbols):
            raise DataError(f"universe symbols must be non-empty and distinct, got {symbols}")
        extra, absent = set(self.bars) - set(symbols), set(symbols) - set(self.bars)
        if extra or absent:
            raise DataError(
                f"universe bars must be keyed by its symbols {list(symbols)}: "
                f"missing {sorted(absent)}, unexpected {sorted(map(str, extra))}"
            )
        frames = {s: validate_ohlcv(self.bars[s], symbol=s) for s in symbols}
        index = frames[symbols[0]].index
        for symbol, frame in frames.items():
            if not frame.index.equals(index):
                raise DataError(
                    f"{symbol}: bars are not on {symbols[0]}'s calendar; align them first"
                )
            if self.close_only and not is_close_only(frame):
                raise DataError(f"{symbol}: close_only=True but open/high/low differ from close")
        object.__setattr__(self, "symbols", symbols)
        object.__setattr__(self, "bars", frames)

    @classmethod
    def from_bars(
        cls,
        bars: Mapping[str, pd.DataFrame],
        source: str = "frames",
        missing: str = "drop",
        max_drop_share: float = DEFAULT_MAX_DROP_SHARE,
    ) -> Universe:
        """Align ``bars`` (see ``align``); close-only when every bar has open=high=low=close.

        Close-only symbols beside symbols with real opens are refused: a "next open" fill
        would then happen at the open for some assets and at the close for others.
        """
        aligned = align(bars, missing, max_drop_share)
        flags = {symbol: is_close_only(frame) for symbol, frame in aligned.items()}
        if len(set(flags.values())) > 1:
            closes_only = [s for s, flag in flags.items() if flag]
            with_opens = [s for s, flag in flags.items() if not flag]
            raise DataError(
                f"{', '.join(closes_only)} close-only but {', '.join(with_opens)} with opens: "
                "fills would happen at different times across assets; use one kind of bars"
            )
        return cls(tuple(aligned), aligned, source, all(flags.values()))

    @property
    def index(self) -> pd.DatetimeIndex:
        """The common calendar."""
        return pd.DatetimeIndex(self.bars[self.symbols[0]].index)

    @property
    def has_volume(self) -> bool:
        """Whether every symbol reports some volume; volume-scaled costs and features need it."""
        return not self._without_volume()

    def require_volume(self, what: str) -> None:
        """Refuse ``what`` (e.g. "square-root impact") on a universe without volume, where it
        would silently see none: volume-scaled costs would charge nothing, volume features
        would be constant."""
        lacking = self._without_volume()
        if lacking:
            raise DataError(
                f"{what} needs traded volume, but universe {self.source} has none for "
                f"{', '.join(lacking)}" + (" (close-only data)" if self.close_only else "")
            )

    def _without_volume(self) -> list[str]:
        return [s for s in self.symbols if not has_volume(self.bars[s])]

    @property
    def note(self) -> str:
        """What a report should say about the data's limits ("" when none)."""
        return f"{self.source}: {CLOSE_ONLY_NOTE}" if self.close_only else ""

    def closes(self) -> pd.DataFrame:
        """Closing prices, dates x symbols, in symbol order."""
        frame = pd.DataFrame({s: self.bars[s]["close"] for s in self.symbols}, index=self.index)
        frame.columns.name = "symbol"
        return frame

    def returns(self) -> pd.DataFrame:
        """Simple close-to-close returns, dates x symbols: row t is close_t / close_{t-1} - 1,
        so it uses closes up to t only; the first date has none and is left out."""
        closes = self.closes()
        values = closes.to_numpy()
        return pd.DataFrame(
            values[1:] / values[:-1] - 1.0, index=closes.index[1:], columns=closes.columns
        )

    def between(self, start: TimeBound = None, end: TimeBound = None) -> Universe:
        """The same universe on dates in [start, end] (both inclusive; partial dates such as
        "2010" cover the whole period); ``DataError`` when no date falls inside."""
        index = self.index
        window = index[index.slice_indexer(_naive_utc(start), _naive_utc(end))]
        if window.empty:
            raise DataError(
                f"universe {self.source}: no bars between start={start} and end={end}; "
                f"it covers {index[0]} to {index[-1]}"
            )
        bars = {s: self.bars[s].loc[window] for s in self.symbols}
        return Universe(self.symbols, bars, self.source, self.close_only)


def load_universe(
    source: str,
    symbols: Sequence[str] | None = None,
    start: TimeBound = None,
    end: TimeBound = None,
    missing: str = "drop",
    max_drop_share: float = DEFAULT_MAX_DROP_SHARE,
    **options: Any,
) -> Universe:
    """The aligned universe of ``symbols`` (default: every symbol ``source`` lists) from one
    registered source, or from ``"synthetic_universe"`` (``generate_universe``'s options),
    each sliced to [start, end] before aligning.

    ``options`` go to the source as in ``load_bars``; an option given as a mapping keyed by
    symbol is passed per symbol (e.g. ``path={"AAA": "a.csv", "BBB": "b.csv"}`` for files).
    """
    if source.lower() == SYNTHETIC_UNIVERSE:
        bars = _generated(symbols, start, end, options)
    else:
        bars = {
            symbol: load_bars(source, symbol, start, end, **_options_for(symbol, options))
            for symbol in _symbols(source, symbols)
        }
    return Universe.from_bars(bars, source.lower(), missing, max_drop_share)


def generator_options() -> frozenset[str]:
    """The options ``load_universe("synthetic_universe", ...)`` takes: generate_universe's."""
    return frozenset(inspect.signature(generate_universe).parameters)


def _generated(
    symbols: Sequence[str] | None, start: TimeBound, end: TimeBound, options: Mapping[str, Any]
) -> dict[str, pd.DataFrame]:
    """A synthetic universe's bars: the chosen symbols, each sliced to [start, end]."""
    unknown = sorted(set(options) - generator_options())
    if unknown:
        raise DataError(
            f"data source {SYNTHETIC_UNIVERSE!r} takes no option {unknown}; "
            f"it takes {sorted(generator_options())}"
        )
    bars = generate_universe(**options).bars
    chosen = tuple(bars) if symbols is None else _symbols(SYNTHETIC_UNIVERSE, symbols)
    absent = [s for s in chosen if s not in bars]
    if absent:
        raise DataError(
            f"unknown {SYNTHETIC_UNIVERSE} symbol(s) {absent}; available: {', '.join(bars)}"
        )
    return {s: bars[s].loc[_naive_utc(start) : _naive_utc(end)] for s in chosen}


def _symbols(source: str, symbols: Sequence[str] | None) -> tuple[str, ...]:
    """The requested symbols, checked: strings, distinct, at least one."""
    if symbols is None:
        listed = tuple(list_symbols(source))
        if not listed:
            raise DataError(f"data source {source!r} lists no symbols; pass symbols=[...]")
        return listed
    if isinstance(symbols, str):
        raise DataError(f"symbols must be a list of names, got the string {symbols!r}")
    chosen = tuple(symbols)
    if not chosen or not all(isinstance(s, str) and s for s in chosen):
        raise DataError(f"symbols must be a non-empty list of names, got {list(chosen)}")
    repeated = sorted({s for s in chosen if chosen.count(s) > 1})
    if repeated:
        raise DataError(f"symbols {repeated} are listed more than once")
    return chosen


def _options_for(symbol: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with every per-symbol mapping resolved to ``symbol``'s value."""
    resolved = {}
    for name, value in options.items():
        if isinstance(value, Mapping):
            if symbol not in value:
                raise DataError(
                    f"{symbol}: option {name} is given per symbol but not for {symbol} "
                    f"(given for {', '.join(map(str, value))})"
                )
            value = value[symbol]
        resolved[name] = value
    return resolved


__all__ = [
    "CLOSE_ONLY_NOTE",
    "DEFAULT_MAX_DROP_SHARE",
    "MISSING_POLICIES",
    "SYNTHETIC_UNIVERSE",
    "Universe",
    "align",
    "generator_options",
    "load_universe",
]
