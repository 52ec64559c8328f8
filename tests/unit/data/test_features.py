import numpy as np
import pandas as pd
import pytest

from evotrader.data import DataError, FeaturePipeline
from evotrader.data.features import CLOSE_ONLY_FEATURES


def test_features_are_causal(bars: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    t = 400
    changed = bars.copy()
    changed.iloc[t + 1 :] *= 1.7  # a different future
    changed.iloc[t + 1 :, changed.columns.get_loc("volume")] = 5.0
    np.testing.assert_array_equal(
        pipeline.transform(bars)[: t + 1], pipeline.transform(changed)[: t + 1]
    )
    assert not np.array_equal(
        pipeline.transform(bars)[t + 1 :], pipeline.transform(changed)[t + 1 :]
    )


def test_warmup_rows_are_zero_and_rest_standardised(bars: pd.DataFrame) -> None:
    pipeline = FeaturePipeline(window=20)
    features = pipeline.fit_transform(bars)
    assert features.dtype == np.float32
    assert features.shape == (len(bars), pipeline.num_features)
    assert not features[: pipeline.warmup].any()
    valid = features[pipeline.warmup :]
    assert np.abs(valid.mean(axis=0)).max() < 0.1
    gap = pipeline.features.index("gap")  # synthetic bars open at the previous close
    assert not valid[:, gap].any()
    varying = np.delete(valid, gap, axis=1)
    assert np.all(np.abs(varying.std(axis=0) - 1) < 0.1)


def test_statistics_come_from_the_fitted_split_only(bars: pd.DataFrame) -> None:
    train_only = FeaturePipeline().fit(bars.iloc[:300])
    everything = FeaturePipeline().fit(bars)
    assert not np.allclose(train_only.mean, everything.mean)


def test_values_are_clipped(bars: pd.DataFrame, pipeline: FeaturePipeline) -> None:
    crash = bars.copy()
    crash.iloc[500:, :4] *= 0.2  # an 80% gap down
    assert np.abs(pipeline.transform(crash)).max() == pytest.approx(pipeline.clip)


def test_state_round_trip_rebuilds_identical_features(
    bars: pd.DataFrame, pipeline: FeaturePipeline
) -> None:
    state = pipeline.state_dict()
    rebuilt = FeaturePipeline.from_state(state)
    np.testing.assert_array_equal(rebuilt.transform(bars), pipeline.transform(bars))
    assert all(isinstance(value, (int, float, str, list)) for value in state.values())


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.pop("mean"),
        lambda s: s.update(version=99),
        lambda s: s.update(std=[1.0]),
    ],
)
def test_damaged_state_is_refused(pipeline: FeaturePipeline, damage) -> None:
    state = pipeline.state_dict()
    damage(state)
    with pytest.raises(ValueError, match="feature"):
        FeaturePipeline.from_state(state)


def test_unknown_feature_and_unfitted_use_fail_clearly(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown features"):
        FeaturePipeline(["log_return", "astrology"])
    with pytest.raises(RuntimeError, match="before fit"):
        FeaturePipeline().transform(bars)


def _close_only(bars: pd.DataFrame) -> pd.DataFrame:
    """The same closes as a close-only source gives them: open = high = low = close, no volume."""
    close = bars["close"]
    return bars.assign(open=close, high=close, low=close, volume=0.0)


def test_close_only_bars_refuse_range_and_volume_features_naming_them(bars: pd.DataFrame) -> None:
    close_only = _close_only(bars)
    with pytest.raises(DataError) as refused:
        FeaturePipeline().fit({"AAA": bars, "BBB": close_only})
    message = str(refused.value)
    assert "gap, body, range need opens, highs and lows apart from the close" in message
    assert "volume_z needs traded volume" in message
    assert "the bars of BBB are close-only" in message
    assert f"CLOSE_ONLY_FEATURES {CLOSE_ONLY_FEATURES}" in message
    with pytest.raises(DataError, match=r"bars #2 of 2 are close-only"):
        FeaturePipeline(("log_return", "body")).fit([bars, close_only])
    with pytest.raises(DataError, match=r"^features range needs opens"):
        FeaturePipeline(("range", "trend")).fit(close_only)


def test_bars_without_volume_refuse_only_the_volume_features(bars: pd.DataFrame) -> None:
    no_volume = bars.assign(volume=0.0)
    with pytest.raises(DataError) as refused:
        FeaturePipeline().fit(no_volume)
    message = str(refused.value)
    assert "volume_z needs traded volume, but the bars are without volume" in message
    assert "range" not in message.split(", but")[0]
    fitted = FeaturePipeline(("gap", "body", "range", "log_return")).fit(no_volume)
    assert fitted.is_fitted


def test_close_only_features_fit_close_only_bars_as_they_fit_the_full_bars(
    bars: pd.DataFrame,
) -> None:
    """log_return, volatility and trend read closes only: on close-only bars they fit the very
    statistics the full bars give, and every one of them varies."""
    assert set(CLOSE_ONLY_FEATURES) == {"log_return", "volatility", "trend"}
    close_only = FeaturePipeline(CLOSE_ONLY_FEATURES).fit(_close_only(bars).iloc[:300])
    full = FeaturePipeline(CLOSE_ONLY_FEATURES).fit(bars.iloc[:300])
    assert close_only.state_dict() == full.state_dict()
    features = close_only.transform(_close_only(bars))
    assert np.array_equal(features, full.transform(bars))
    assert (features[close_only.warmup :].std(axis=0) > 0.5).all()
