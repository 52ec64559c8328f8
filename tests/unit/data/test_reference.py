"""A checkpoint's data reference: registered sources only, files only inside the data roots."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from evotrader.data import DataError, DataRef, data_roots, generate_synthetic
from evotrader.data.reference import DATA_DIRS_ENV


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A data folder holding one CSV of synthetic bars."""
    folder = tmp_path / "data"
    folder.mkdir()
    generate_synthetic(50, seed=1).bars.rename_axis("date").to_csv(folder / "syn.csv")
    return folder


def csv_ref(path: Path | str, symbol: str = "SYN") -> dict[str, object]:
    return {"source": "csv", "symbol": symbol, "options": {"path": str(path)}}


def test_a_file_inside_a_root_loads_by_its_resolved_path(root: Path) -> None:
    reference = DataRef.checked(csv_ref(root / ".." / "data" / "syn.csv"), [root])
    assert reference.options["path"] == str(root / "syn.csv")
    assert len(reference.load()) == 50


@pytest.mark.parametrize("target", ["/etc/passwd", "~/.ssh/id_rsa", "../outside.csv"])
def test_a_file_outside_the_roots_is_refused_before_it_is_read(root: Path, target: str) -> None:
    with pytest.raises(DataError, match=rf"option path='{target}' lies outside the data folders"):
        DataRef.checked(csv_ref(target), [root])


def test_a_symlink_out_of_a_root_is_refused(root: Path, tmp_path: Path) -> None:
    (root / "link.csv").symlink_to(tmp_path / "elsewhere.csv")
    with pytest.raises(DataError, match="outside the data folders"):
        DataRef.checked(csv_ref(root / "link.csv"), [root])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"source": "ftp", "symbol": "X", "options": {}}, "unknown data source 'ftp'"),
        (
            {"source": "embedded", "symbol": "GOOG", "options": {"path": "/etc/passwd"}},
            r"data source 'embedded' takes no option \['path'\]",
        ),
        (
            {"source": "yfinance", "symbol": "GOOG", "options": {"cache_dir": "/tmp/x"}},
            "option cache_dir='/tmp/x' lies outside",
        ),
        ({"source": "embedded", "symbol": "GOOG"}, r"missing \['options'\]"),
        ({"source": "csv", "symbol": "", "options": {}}, "source and symbol must be strings"),
        ("embedded", "must be a mapping"),
    ],
)
def test_anything_but_a_registered_source_is_refused(raw: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        DataRef.checked(raw, data_roots())


def test_options_a_source_takes_pass(root: Path) -> None:
    raw = {"source": "synthetic", "symbol": "AR1", "options": {"n_bars": 300, "seed": 2}}
    assert len(DataRef.checked(raw, [root]).load()) == 300


def test_roots_are_the_cache_the_project_data_and_the_listed_folders(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EVOTRADER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(DATA_DIRS_ENV, os.pathsep.join([str(tmp_path / "a"), "", "~/b"]))
    assert data_roots(tmp_path / "project") == (
        tmp_path / "cache",
        tmp_path / "project" / "data",
        tmp_path / "a",
        Path("~/b").expanduser().resolve(),
    )
    monkeypatch.delenv(DATA_DIRS_ENV)
    assert data_roots() == (tmp_path / "cache",)  # never the current directory


def test_another_symbol_maps_a_shared_source_but_never_a_file(root: Path) -> None:
    embedded = DataRef.checked({"source": "embedded", "symbol": "GOOG", "options": {}}, [root])
    assert embedded.for_symbol("AAPL") == DataRef("embedded", "AAPL", {})
    with pytest.raises(DataError, match="holds no AAPL"):
        DataRef.checked(csv_ref(root / "syn.csv"), [root]).for_symbol("AAPL")


def test_the_date_range_travels_with_the_reference_and_limits_the_bars(root: Path) -> None:
    raw = {"source": "embedded", "symbol": "GOOG", "options": {}, "start": "2010-01-01"}
    reference = DataRef.checked(raw | {"end": "2010-12-31"}, [root])
    bars = reference.load()
    assert bars.index[0] >= pd.Timestamp("2010-01-01")
    assert bars.index[-1] <= pd.Timestamp("2010-12-31")
    assert len(bars) < len(DataRef.checked(raw | {"start": None}, [root]).load())
    mapped = reference.for_symbol("AAPL")
    assert (mapped.start, mapped.end) == ("2010-01-01", "2010-12-31")
    assert DataRef.checked(reference.to_dict(), [root]) == reference


def test_a_reference_without_a_range_reads_every_bar_and_a_bad_date_is_refused(root: Path) -> None:
    old = DataRef.checked({"source": "embedded", "symbol": "GOOG", "options": {}}, [root])
    assert (old.start, old.end) == (None, None)
    with pytest.raises(DataError, match="start must be a date"):
        DataRef.checked(
            {"source": "embedded", "symbol": "GOOG", "options": {}, "start": "soon"}, [root]
        )
