import numpy as np
import pandas as pd
import pytest

from evotrader.data import FeaturePipeline


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
