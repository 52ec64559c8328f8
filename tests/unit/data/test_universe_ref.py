"""A checkpoint's universe reference: JSON round trip, the same universe reloaded, and the
same refusals as DataRef (registered sources, options they take, files inside the roots)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from evotrader.data import DataError, generate_synthetic
from evotrader.data.universe_ref import UniverseRef


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A data folder holding two CSVs, the second missing one day."""
    folder = tmp_path / "data"
    folder.mkdir()
    first = generate_synthetic(60, seed=1, kind="random_walk").bars
    second = generate_synthetic(60, seed=2, kind="random_walk").bars.drop(first.index[20])
    first.to_csv(folder / "one.csv")
    second.to_csv(folder / "two.csv")
    return folder


def test_round_trip_through_json_reloads_the_same_universe(root: Path) -> None:
    raw = {
        "source": "csv",
        "symbols": ["ONE", "TWO"],
        "options": {"path": {"ONE": str(root / "one.csv"), "TWO": str(root / "two.csv")}},
        "start": "2000-01-10",
        "max_drop_share": 0.1,
    }
    reference = UniverseRef.checked(raw, [root])
    again = UniverseRef.checked(json.loads(json.dumps(reference.to_dict())), [root])

    assert again == reference and hash(again) == hash(reference)
    first, second = reference.load(), again.load()
    pd.testing.assert_frame_equal(first.closes(), second.closes())
    assert first.symbols == ("ONE", "TWO") and first.index[0] == pd.Timestamp("2000-01-10")
    assert pd.Timestamp("2000-01-31") not in first.index  # TWO's missing day, dropped for both
    with pytest.raises(DataError, match="TWO: no bar on 2000-01-31"):
        UniverseRef.checked({**raw, "missing": "error"}, [root]).load()


def test_sp500_and_synthetic_references_load() -> None:
    sp500 = UniverseRef.checked(
        {"source": "sp500", "symbols": ["KO", "PEP"], "options": {}, "start": "2022-12"}, []
    )
    universe = sp500.load()
    assert universe.symbols == ("KO", "PEP") and universe.close_only and len(universe.index) == 19

    synthetic = UniverseRef.checked(
        {
            "source": "synthetic_universe",
            "symbols": ["A0", "A1"],
            "options": {"kind": "lead_lag", "n_bars": 50, "seed": 3},
        },
        [],
    )
    assert synthetic.load().closes().equals(synthetic.load().closes())
    assert synthetic.to_dict()["options"] == {"kind": "lead_lag", "n_bars": 50, "seed": 3}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("sp500", "must be a mapping"),
        ({"source": "sp500", "symbols": ["KO"]}, r"missing \['options'\]"),
        ({"source": "sp500", "symbols": [], "options": {}}, "symbols must be a non-empty list"),
        ({"source": "sp500", "symbols": ["KO", "KO"], "options": {}}, "distinct names"),
        ({"source": "ftp", "symbols": ["KO"], "options": {}}, "unknown data source 'ftp'"),
        (
            {"source": "sp500", "symbols": ["KO"], "options": {"path": "/etc/passwd"}},
            r"data source 'sp500' takes no option \['path'\]",
        ),
        (
            {"source": "csv", "symbols": ["X"], "options": {"path": "/etc/passwd"}},
            "option path='/etc/passwd' lies outside the data folders",
        ),
        (
            {"source": "csv", "symbols": ["Y", "X"], "options": {"path": {"X": "a.csv"}}},
            "Y: option path is given per symbol but not for Y",
        ),
        (
            {"source": "sp500", "symbols": ["KO"], "options": {}, "missing": "ffill"},
            "missing must be one of",
        ),
        (
            {"source": "sp500", "symbols": ["KO"], "options": {}, "max_drop_share": 2},
            r"max_drop_share must be a number in \[0, 1\]",
        ),
        (
            {"source": "sp500", "symbols": ["KO"], "options": {}, "start": "soon"},
            "start must be a date or null",
        ),
        (
            {"source": "synthetic_universe", "symbols": ["A0"], "options": {"path": "x"}},
            r"takes no option \['path'\]",
        ),
    ],
)
def test_bad_references_are_refused_before_anything_is_read(raw: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        UniverseRef.checked(raw, [])
