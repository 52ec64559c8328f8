"""Time-ordered train / validation / test splits with an embargo gap.

Training and model selection only ever see the train and validation splits; the test split
is the untouched out-of-sample period. Splits are contiguous in time and never overlap, and
``embargo`` bars are dropped after each boundary so that features built on trailing windows
(or labels looking a few bars ahead) cannot leak information across it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

_FRACTION_TOLERANCE = 1e-9


@dataclass(frozen=True)
class TimeSplits:
    """Train, validation and test bars, in time order and without overlap."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def describe(self) -> str:
        """One line per split: row count and first / last timestamp."""
        parts = {"train": self.train, "validation": self.validation, "test": self.test}
        return "\n".join(
            f"{name:<10} {len(bars):>8} rows  {bars.index[0]} -> {bars.index[-1]}"
            for name, bars in parts.items()
        )


def split_by_time(
    bars: pd.DataFrame,
    *,
    train: float = 0.7,
    validation: float = 0.15,
    test: float = 0.15,
    embargo: int = 0,
    validation_start: str | pd.Timestamp | None = None,
    test_start: str | pd.Timestamp | None = None,
) -> TimeSplits:
    """Split bars by time into train / validation / test.

    By fraction of rows (the default; fractions must be positive and sum to 1), or by date
    when ``validation_start`` and ``test_start`` are both given (the fractions are then
    ignored): validation starts at the first bar at or after ``validation_start``, test at
    the first bar at or after ``test_start``. The first ``embargo`` bars of validation and of
    test are dropped, so the last train bar is more than ``embargo`` bars before the first
    validation bar, and likewise for validation and test.
    """
    _check_bars(bars)
    _check_embargo(embargo)
    if (validation_start is None) != (test_start is None):
        raise ValueError("give both validation_start and test_start, or neither")
    if validation_start is None:
        validation_at, test_at = _fraction_boundaries(len(bars), train, validation, test)
    else:
        validation_at, test_at = _date_boundaries(bars.index, validation_start, test_start)
    splits = TimeSplits(
        train=bars.iloc[:validation_at],
        validation=bars.iloc[validation_at + embargo : test_at],
        test=bars.iloc[test_at + embargo :],
    )
    for name in ("train", "validation", "test"):
        if getattr(splits, name).empty:
            raise ValueError(
                f"{name} split is empty ({len(bars)} bars, embargo={embargo}, "
                f"validation starts at row {validation_at}, test at row {test_at})"
            )
    return splits


def walk_forward_folds(
    bars: pd.DataFrame,
    *,
    n_folds: int,
    train_size: int | None = None,
    test_size: int,
    embargo: int = 0,
    expanding: bool = True,
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Consecutive (train, test) folds moving forward in time.

    The ``n_folds`` test windows of ``test_size`` bars are consecutive, non-overlapping and
    end at the last bar. Each train window ends ``embargo`` bars before its test window and
    either starts at the first bar (``expanding=True``; ``train_size``, if given, is the
    minimum train length) or holds exactly ``train_size`` bars (``expanding=False``).
    """
    _check_bars(bars)
    _check_embargo(embargo)
    _check_positive("n_folds", n_folds)
    _check_positive("test_size", test_size)
    if train_size is not None:
        _check_positive("train_size", train_size)
    elif not expanding:
        raise ValueError("train_size is required for a rolling (expanding=False) window")
    min_train = train_size or 1
    first_test_at = len(bars) - n_folds * test_size
    if first_test_at - embargo < min_train:
        raise ValueError(
            f"data too short for {n_folds} folds: need at least "
            f"{min_train + embargo + n_folds * test_size} bars (train {min_train} + embargo "
            f"{embargo} + {n_folds} x test {test_size}), got {len(bars)}"
        )
    folds = []
    for fold in range(n_folds):
        test_at = first_test_at + fold * test_size
        train_end = test_at - embargo
        train_at = 0 if expanding else train_end - min_train
        folds.append((bars.iloc[train_at:train_end], bars.iloc[test_at : test_at + test_size]))
    return folds


def _check_bars(bars: pd.DataFrame) -> None:
    if not isinstance(bars.index, pd.DatetimeIndex):
        raise ValueError(f"bars need a DatetimeIndex, got {type(bars.index).__name__}")
    if not (bars.index.is_monotonic_increasing and bars.index.is_unique):
        raise ValueError("bars must be sorted by time with unique timestamps")


def _check_embargo(embargo: int) -> None:
    if embargo < 0:
        raise ValueError(f"embargo must be >= 0 bars, got {embargo}")


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def _fraction_boundaries(
    n_rows: int, train: float, validation: float, test: float
) -> tuple[int, int]:
    """Row positions where validation and test start, rounded to the nearest bar."""
    fractions = {"train": train, "validation": validation, "test": test}
    for name, value in fractions.items():
        if not value > 0:
            raise ValueError(f"{name} fraction must be positive, got {value}")
    total = train + validation + test
    if abs(total - 1.0) > _FRACTION_TOLERANCE:
        raise ValueError(f"train + validation + test fractions must sum to 1, got {total}")
    return round(n_rows * train), round(n_rows * (train + validation))


def _date_boundaries(
    index: pd.DatetimeIndex,
    validation_start: str | pd.Timestamp,
    test_start: str | pd.Timestamp,
) -> tuple[int, int]:
    """Row positions of the first bars at or after each start date."""
    validation_at = _timestamp_in(index, "validation_start", validation_start)
    test_at = _timestamp_in(index, "test_start", test_start)
    if validation_at >= test_at:
        raise ValueError(
            f"validation_start ({validation_at}) must be before test_start ({test_at})"
        )
    return int(index.searchsorted(validation_at)), int(index.searchsorted(test_at))


def _timestamp_in(index: pd.DatetimeIndex, name: str, value: str | pd.Timestamp) -> pd.Timestamp:
    """A start date as a timestamp comparable with the index, strictly after its first bar."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None and index.tz is not None:
        stamp = stamp.tz_localize(index.tz)
    elif stamp.tzinfo is not None and index.tz is None:
        raise ValueError(f"{name}={stamp} is timezone-aware but the bars' index is naive")
    if not index[0] < stamp <= index[-1]:
        raise ValueError(
            f"{name}={stamp} must lie inside the data: "
            f"after {index[0]} and at or before {index[-1]}"
        )
    return stamp
