"""yfinance source without the network: download failures, caching, cache location."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yfinance

from evotrader.data import DataError, generate_synthetic, load_bars
from evotrader.data.sources import yahoo


def yahoo_frame(closes: list[float], start: str = "2020-01-02") -> pd.DataFrame:
    """A frame shaped like ``yfinance.download(..., multi_level_index=False)`` returns."""
    index = pd.bdate_range(start, periods=len(closes), name="Date")
    close = pd.Series(closes, index=index)
    return pd.DataFrame(
        {
            "Close": close,
            "High": close + 1,
            "Low": close - 1,
            "Open": close,
            "Volume": 1000,
        }
    )


class FakeDownload:
    """Stands in for yfinance.download: records calls, returns a frame or raises."""

    def __init__(self, result: pd.DataFrame | Exception) -> None:
        self.result = result
        self.calls: list[dict[str, Any]] = []

    def __call__(self, symbol: str, **kwargs: Any) -> pd.DataFrame:
        self.calls.append({"symbol": symbol, **kwargs})
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def install(monkeypatch: pytest.MonkeyPatch, result: pd.DataFrame | Exception) -> FakeDownload:
    fake = FakeDownload(result)
    monkeypatch.setattr(yfinance, "download", fake)
    return fake


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (ConnectionError("could not resolve host"), "ConnectionError: could not resolve host"),
        (pd.DataFrame(), "no data returned"),
    ],
)
def test_failed_download_raises_fast_and_points_to_embedded(
    monkeypatch: pytest.MonkeyPatch, cache_dir: Path, result: pd.DataFrame | Exception, reason: str
) -> None:
    install(monkeypatch, result)

    began = time.perf_counter()
    with pytest.raises(DataError) as caught:
        load_bars("yfinance", "AAPL", "2020-01-01", "2020-01-31", cache_dir=cache_dir)

    message = str(caught.value)
    assert message.startswith("AAPL: yfinance download failed")
    assert reason in message
    assert 'source="embedded"' in message
    assert "GOOG, EURUSD, AAPL" in message
    assert time.perf_counter() - began < 2.0
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def test_download_is_adjusted_with_short_timeout_and_inclusive_end(
    monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    fake = install(monkeypatch, yahoo_frame([10.0, 11.0, 12.0]))

    bars = load_bars("yfinance", "AAPL", "2020-01-02", "2020-01-06", cache_dir=cache_dir)

    (call,) = fake.calls
    assert call["symbol"] == "AAPL"
    assert call["auto_adjust"] is True
    assert call["timeout"] <= 10
    assert call["start"] == "2020-01-02"
    assert call["end"] == pd.Timestamp("2020-01-07")  # yfinance's end is exclusive
    assert bars["close"].tolist() == [10.0, 11.0, 12.0]
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert bars.index.name == "timestamp"


def test_open_start_asks_for_the_full_history(
    monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    fake = install(monkeypatch, yahoo_frame([10.0, 11.0]))

    load_bars("yfinance", "AAPL", cache_dir=cache_dir)

    assert fake.calls[0]["period"] == "max"
    assert "start" not in fake.calls[0]
    assert "end" not in fake.calls[0]


def test_download_is_cached_atomically_and_reused_offline(
    monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    install(monkeypatch, yahoo_frame([10.0, 11.0, 12.0]))
    first = load_bars("yfinance", "^GSPC", "2020-01-02", "2020-01-06", cache_dir=cache_dir)
    offline = install(monkeypatch, ConnectionError("offline"))

    again = load_bars("yfinance", "^GSPC", "2020-01-02", "2020-01-06", cache_dir=cache_dir)

    pd.testing.assert_frame_equal(again, first)
    assert offline.calls == []
    assert [p.name for p in cache_dir.iterdir()] == [
        "%5EGSPC_2020-01-02T000000_2020-01-06T000000_1d.parquet"
    ]


def test_prewritten_cache_file_is_a_hit_without_network(
    monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    cache_dir.mkdir()
    cached = generate_synthetic(30, kind="random_walk", start="2020-01-01").bars
    cached.to_parquet(cache_dir / "MSFT_2020-01-01T000000_2020-02-11T000000_1d.parquet")
    fake = install(monkeypatch, ConnectionError("offline"))

    bars = load_bars("yfinance", "MSFT", "2020-01-01", "2020-02-11", cache_dir=cache_dir)

    assert fake.calls == []
    pd.testing.assert_frame_equal(bars, cached)


def test_different_ranges_are_cached_separately(
    monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    install(monkeypatch, yahoo_frame([10.0, 11.0]))
    load_bars("yfinance", "AAPL", "2020-01-02", "2020-01-03", cache_dir=cache_dir)
    fake = install(monkeypatch, yahoo_frame([20.0, 21.0]))

    bars = load_bars(
        "yfinance", "AAPL", "2020-01-02", "2020-01-03", cache_dir=cache_dir, interval="1wk"
    )

    assert len(fake.calls) == 1
    assert bars["close"].tolist() == [20.0, 21.0]
    assert len(list(cache_dir.glob("*.parquet"))) == 2


def test_corrupt_cache_file_is_reported_with_its_path(
    monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    cache_dir.mkdir()
    path = cache_dir / "AAPL_2020-01-02T000000_2020-01-03T000000_1d.parquet"
    path.write_bytes(b"not parquet")
    install(monkeypatch, ConnectionError("offline"))

    with pytest.raises(DataError, match=re.escape(f"unreadable yfinance cache file {path}")):
        load_bars("yfinance", "AAPL", "2020-01-02", "2020-01-03", cache_dir=cache_dir)


def test_bad_downloaded_rows_are_rejected_and_not_cached(
    monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    frame = yahoo_frame([10.0, 11.0, 12.0])
    frame.iloc[1, frame.columns.get_loc("High")] = 5.0
    install(monkeypatch, frame)

    with pytest.raises(DataError, match=r"AAPL: row 1 \(2020-01-03 00:00:00\): high is below low"):
        load_bars("yfinance", "AAPL", "2020-01-02", "2020-01-06", cache_dir=cache_dir)
    assert not any(cache_dir.glob("*"))


def test_cache_location_follows_evotrader_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EVOTRADER_CACHE", str(tmp_path / "root"))
    install(monkeypatch, yahoo_frame([10.0, 11.0]))

    load_bars("yfinance", "AAPL", "2020-01-02", "2020-01-03")

    assert yahoo.default_cache_dir() == tmp_path / "root" / "yfinance"
    assert len(list((tmp_path / "root" / "yfinance").glob("AAPL_*.parquet"))) == 1


def test_default_cache_location_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVOTRADER_CACHE", raising=False)

    assert yahoo.default_cache_dir() == Path.home() / ".cache" / "evotrader" / "yfinance"
