"""Time splits and walk-forward folds: sizes, boundaries, embargo gaps and every error path."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from evotrader.data.splits import TimeSplits, split_by_time, walk_forward_folds


def _bars(n: int = 100, tz: str | None = None) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz=tz)
    return pd.DataFrame({"close": np.arange(n, dtype=float)}, index=index)


def _rows(bars: pd.DataFrame, part: pd.DataFrame) -> list[int]:
    """Row positions of ``part`` inside ``bars``."""
    return list(bars.index.get_indexer(part.index))


BARS = _bars()


# --- split_by_time: fractions -------------------------------------------------------------


def test_default_fractions_give_70_15_15() -> None:
    splits = split_by_time(BARS)
    assert _rows(BARS, splits.train) == list(range(0, 70))
    assert _rows(BARS, splits.validation) == list(range(70, 85))
    assert _rows(BARS, splits.test) == list(range(85, 100))


def test_custom_fractions() -> None:
    splits = split_by_time(BARS, train=0.5, validation=0.3, test=0.2)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (50, 30, 20)


def test_embargo_drops_bars_after_each_boundary() -> None:
    embargo = 3
    splits = split_by_time(BARS, embargo=embargo)
    train, validation, test = (
        _rows(BARS, s) for s in (splits.train, splits.validation, splits.test)
    )
    assert (train[0], train[-1]) == (0, 69)
    assert (validation[0], validation[-1]) == (73, 84)
    assert (test[0], test[-1]) == (88, 99)
    assert train[-1] + embargo < validation[0]
    assert validation[-1] + embargo < test[0]


def test_splits_are_ordered_and_disjoint() -> None:
    splits = split_by_time(BARS, embargo=2)
    joined = pd.concat([splits.train, splits.validation, splits.test])
    assert joined.index.is_monotonic_increasing
    assert joined.index.is_unique
    assert len(joined) == len(BARS) - 2 * 2


# --- split_by_time: dates -----------------------------------------------------------------


def test_split_by_dates() -> None:
    splits = split_by_time(BARS, validation_start="2024-01-03", test_start="2024-01-04 00:30")
    # 2024-01-03 00:00 is row 48; the first bar at or after 2024-01-04 00:30 is row 73.
    assert _rows(BARS, splits.train) == list(range(0, 48))
    assert _rows(BARS, splits.validation) == list(range(48, 73))
    assert _rows(BARS, splits.test) == list(range(73, 100))


def test_split_by_dates_with_embargo_and_timezone() -> None:
    bars = _bars(tz="UTC")
    splits = split_by_time(
        bars,
        embargo=2,
        validation_start=pd.Timestamp("2024-01-03"),
        test_start="2024-01-04",
    )
    assert _rows(bars, splits.validation) == list(range(50, 72))
    assert _rows(bars, splits.test) == list(range(74, 100))


def test_describe_lists_each_split() -> None:
    lines = split_by_time(BARS).describe().splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["train", "70"],
        ["validation", "15"],
        ["test", "15"],
    ]
    assert "2024-01-01 00:00:00 -> 2024-01-03 21:00:00" in lines[0]
    assert isinstance(split_by_time(BARS), TimeSplits)


# --- split_by_time: errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train": 0.7, "validation": 0.2, "test": 0.2}, "sum to 1"),
        ({"train": 1.0, "validation": 0.0, "test": 0.0}, "validation fraction must be positive"),
        ({"train": 1.2, "validation": -0.1, "test": -0.1}, "validation fraction must be positive"),
        ({"embargo": -1}, "embargo must be >= 0"),
        ({"embargo": 15}, "validation split is empty"),
        ({"validation_start": "2024-01-03"}, "both validation_start and test_start"),
        ({"test_start": "2024-01-03"}, "both validation_start and test_start"),
    ],
)
def test_split_by_time_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_by_time(BARS, **kwargs)


@pytest.mark.parametrize(
    ("validation_start", "test_start", "message"),
    [
        ("2023-12-31", "2024-01-03", "validation_start=.* must lie inside the data"),
        ("2024-01-01", "2024-01-03", "must lie inside the data"),
        ("2024-01-02", "2024-01-06", "test_start=.* must lie inside the data"),
        ("2024-01-03", "2024-01-02", "must be before test_start"),
        ("2024-01-03 00:10", "2024-01-03 00:50", "validation split is empty"),
        ("2024-01-03T00:00Z", "2024-01-04T00:00Z", "timezone-aware"),
    ],
)
def test_split_by_dates_errors(validation_start: str, test_start: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_by_time(BARS, validation_start=validation_start, test_start=test_start)


def test_too_few_bars_for_every_split() -> None:
    # 3 bars: train rows [0, 2), validation [2, 3), test [3, 3) is empty.
    with pytest.raises(ValueError, match="test split is empty"):
        split_by_time(_bars(3))


@pytest.mark.parametrize(
    ("bars", "message"),
    [
        (BARS.reset_index(drop=True), "DatetimeIndex"),
        (BARS.iloc[::-1], "sorted by time"),
        (pd.concat([BARS.iloc[:5], BARS.iloc[4:]]), "unique timestamps"),
    ],
)
def test_bars_must_be_time_indexed(bars: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_by_time(bars)
    with pytest.raises(ValueError, match=message):
        walk_forward_folds(bars, n_folds=2, test_size=5)


# --- walk_forward_folds -------------------------------------------------------------------


def test_expanding_folds() -> None:
    folds = walk_forward_folds(BARS, n_folds=4, test_size=10, embargo=2)
    assert [(_rows(BARS, train)[0], len(train)) for train, _ in folds] == [
        (0, 58),
        (0, 68),
        (0, 78),
        (0, 88),
    ]
    assert [_rows(BARS, test) for _, test in folds] == [
        list(range(start, start + 10)) for start in (60, 70, 80, 90)
    ]


def test_rolling_folds_keep_train_size() -> None:
    folds = walk_forward_folds(
        BARS, n_folds=4, train_size=20, test_size=10, embargo=2, expanding=False
    )
    assert [len(train) for train, _ in folds] == [20, 20, 20, 20]
    assert [_rows(BARS, train)[0] for train, _ in folds] == [38, 48, 58, 68]


@pytest.mark.parametrize("expanding", [True, False])
def test_folds_move_forward_without_leaks(expanding: bool) -> None:
    embargo = 3
    folds = walk_forward_folds(
        BARS, n_folds=5, train_size=30, test_size=12, embargo=embargo, expanding=expanding
    )
    tests = [_rows(BARS, test) for _, test in folds]
    assert tests[-1][-1] == len(BARS) - 1  # the last test window ends at the last bar
    for earlier, later in itertools.pairwise(tests):
        assert later[0] == earlier[-1] + 1  # consecutive, non-overlapping
    for train, test in folds:
        assert _rows(BARS, train)[-1] + embargo < _rows(BARS, test)[0]
        assert len(train) >= 30


def test_training_window_may_exactly_fill_the_data() -> None:
    # 58 train + 2 embargo + 4 x 10 test = 100 bars.
    folds = walk_forward_folds(
        BARS, n_folds=4, train_size=58, test_size=10, embargo=2, expanding=False
    )
    assert _rows(BARS, folds[0][0]) == list(range(0, 58))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_folds": 4, "test_size": 10, "embargo": 2, "train_size": 59}, "need at least 101 bars"),
        ({"n_folds": 4, "test_size": 10, "train_size": 61, "expanding": False}, "too short"),
        ({"n_folds": 10, "test_size": 10}, "too short"),
        ({"n_folds": 2, "test_size": 10, "expanding": False}, "train_size is required"),
        ({"n_folds": 0, "test_size": 10}, "n_folds must be >= 1"),
        ({"n_folds": 2, "test_size": 0}, "test_size must be >= 1"),
        ({"n_folds": 2, "test_size": 10, "train_size": 0}, "train_size must be >= 1"),
        ({"n_folds": 2, "test_size": 10, "embargo": -1}, "embargo must be >= 0"),
    ],
)
def test_walk_forward_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        walk_forward_folds(BARS, **kwargs)
