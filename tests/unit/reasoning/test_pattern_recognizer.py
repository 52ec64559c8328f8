from pathlib import Path

import numpy as np
import pytest
import torch

from evotrader.reasoning import (
    PATTERNS,
    Chartist,
    ChartistConfig,
    PatternConfig,
    PatternRecognizer,
    TemplateConfig,
    available_recognizers,
    evaluate_chartist,
    generate_patterns,
    make_recognizer,
    normalise_paths,
    train_chartist,
)
from evotrader.reasoning import pattern_recognizer as module

# Small and quick (~2 s on one core); the default config trains ~8 s and scores ~0.92.
SMALL = ChartistConfig(channels=8, train_samples=4096, epochs=4, batch_size=128)
TRAIN_SEED, HELD_OUT_SEED = 0, 1234


@pytest.fixture(scope="module")
def chartist() -> Chartist:
    return train_chartist(SMALL, seed=TRAIN_SEED)


@pytest.fixture(scope="module")
def paths() -> np.ndarray:
    return generate_patterns(48, seed=99)[0]


def test_generator_is_seeded_balanced_and_validated() -> None:
    paths, labels = generate_patterns(80, 48, seed=5)
    again, same = generate_patterns(80, 48, seed=5)
    other, _ = generate_patterns(80, 48, seed=6)
    assert paths.shape == (80, 48) and paths.dtype == np.float32 and labels.shape == (80,)
    np.testing.assert_array_equal(paths, again)
    np.testing.assert_array_equal(labels, same)
    assert not np.array_equal(paths, other)
    assert np.bincount(labels, minlength=len(PATTERNS)).tolist() == [10] * len(PATTERNS)
    with pytest.raises(ValueError, match="need n >= 1 and length >= 16"):
        generate_patterns(10, 8)
    with pytest.raises(ValueError, match="PatternConfig: need 0 < min_span <= max_span"):
        PatternConfig(min_span=0.9, max_span=0.5)
    with pytest.raises(ValueError, match="noise must be 0 <= low <= high"):
        PatternConfig(noise=(0.3, 0.1))


def test_normalise_removes_offset_and_scale_and_resamples() -> None:
    path = np.cumsum(np.random.default_rng(0).standard_normal((3, 64)), axis=1)
    base = normalise_paths(path, 64)
    np.testing.assert_allclose(normalise_paths(100 + 7 * path, 64), base, atol=1e-5)
    np.testing.assert_allclose(base.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(base.std(axis=1), 1, atol=1e-5)
    # A path sampled twice as densely resamples back onto the same 64 points.
    fine = np.stack([np.interp(np.linspace(0, 63, 127), np.arange(64), p) for p in path])
    np.testing.assert_allclose(normalise_paths(fine, 64), base, atol=1e-5)
    assert not normalise_paths(np.full((1, 30), 5.0), 64).any()


def test_registry_lists_builds_and_rejects_unknown_names() -> None:
    assert available_recognizers() == ("cnn", "templates")
    matcher = make_recognizer("templates", none_threshold=0.5)
    assert matcher.config == TemplateConfig(none_threshold=0.5)
    tiny = make_recognizer("cnn", seed=3, channels=4, train_samples=64, epochs=1)
    assert isinstance(tiny, Chartist) and tiny.config.channels == 4
    with pytest.raises(ValueError, match="unknown pattern recognizer 'eye'; available: cnn"):
        make_recognizer("eye")
    with pytest.raises(ValueError, match=r"recognizer 'cnn': unknown option\(s\) \['layers'\]"):
        make_recognizer("cnn", layers=3)
    with pytest.raises(ValueError, match="ChartistConfig: length must be a multiple of 16"):
        ChartistConfig(length=50)


def test_cnn_beats_chance_on_held_out_patterns(chartist: Chartist) -> None:
    report = evaluate_chartist(chartist, seed=HELD_OUT_SEED, n_samples=1600)
    # Measured ~0.68 for this small config (chance 0.125), ~0.92 for the default one.
    assert report.accuracy > 0.45
    assert report.recall.min() > 0.15 and report.precision.min() > 0.3
    assert report.confusion.sum() == 1600
    assert report.confusion.sum(axis=1).tolist() == [200] * len(PATTERNS)


def test_templates_beat_chance_without_training() -> None:
    report = evaluate_chartist(make_recognizer("templates"), seed=HELD_OUT_SEED, n_samples=800)
    assert report.accuracy > 0.4  # measured ~0.6


def test_cnn_reads_other_lengths_scales_and_offsets(chartist: Chartist) -> None:
    long_paths, labels = generate_patterns(800, 128, seed=HELD_OUT_SEED)
    predicted, _, _ = chartist.predict(1000 + 50 * long_paths)
    assert (predicted == labels).mean() > 0.4


def test_predict_is_batched_and_consistent(chartist: Chartist, paths: np.ndarray) -> None:
    labels, confidence, probs = chartist.predict(paths)
    assert probs.shape == (len(paths), len(PATTERNS)) and probs.dtype == np.float64
    assert np.allclose(probs.sum(axis=1), 1) and (probs >= 0).all()
    np.testing.assert_array_equal(labels, probs.argmax(axis=1))
    np.testing.assert_array_equal(confidence, probs.max(axis=1))
    singles = np.concatenate([chartist.predict_proba(p[None]) for p in paths[:8]])
    np.testing.assert_allclose(probs[:8], singles, atol=1e-6)
    np.testing.assert_allclose(chartist.predict_proba(3 * paths - 8), probs, atol=1e-5)


def test_training_is_deterministic_and_leaves_global_state_alone(
    chartist: Chartist, paths: np.ndarray
) -> None:
    rng_state, threads = torch.get_rng_state(), torch.get_num_threads()
    again = train_chartist(SMALL, seed=TRAIN_SEED)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.get_num_threads() == threads
    for name, tensor in chartist.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name
    other = train_chartist(SMALL, seed=TRAIN_SEED + 1)
    assert not torch.equal(other.state_dict()["head.3.weight"], again.state_dict()["head.3.weight"])


def test_state_round_trip_rebuilds_the_same_predictions(
    chartist: Chartist, paths: np.ndarray
) -> None:
    restored = Chartist.from_state(chartist.architecture(), chartist.state_dict())
    np.testing.assert_array_equal(restored.predict_proba(paths), chartist.predict_proba(paths))
    with pytest.raises(ValueError, match=r"unknown architecture keys \['depth'\]"):
        Chartist.from_state({**chartist.architecture(), "depth": 3}, chartist.state_dict())
    with pytest.raises(ValueError, match="weights do not fit"):
        Chartist.from_state({**chartist.architecture(), "hidden": 5}, chartist.state_dict())


def test_cache_saves_atomically_and_loads_without_retraining(
    tmp_path: Path, paths: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ChartistConfig(channels=4, train_samples=256, epochs=1)
    first = train_chartist(config, seed=7, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pth"

    def no_training(*args: object) -> Chartist:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(module, "_train", no_training)
    cached = train_chartist(config, seed=7, cache_dir=tmp_path)
    np.testing.assert_array_equal(cached.predict_proba(paths), first.predict_proba(paths))
    assert cached.config == config
    with pytest.raises(AssertionError, match="cache should have been used"):
        train_chartist(config, seed=8, cache_dir=tmp_path)


@pytest.mark.parametrize("name", ["cnn", "templates"])
def test_bad_paths_are_rejected_clearly(name: str, chartist: Chartist, paths: np.ndarray) -> None:
    recognizer: PatternRecognizer = chartist if name == "cnn" else make_recognizer(name)
    with pytest.raises(ValueError, match=rf"{name}.predict paths: expected a 2-d array"):
        recognizer.predict(paths[0])
    with pytest.raises(ValueError, match="length 8 is too short, need at least 16"):
        recognizer.predict(paths[:, :8])
    bad = paths.copy()
    bad[2, 7] = np.inf
    with pytest.raises(ValueError, match=r"non-finite value\(s\), first at \[2, 7\] = inf"):
        recognizer.predict(bad)
