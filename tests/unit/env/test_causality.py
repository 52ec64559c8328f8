"""Perturb the future: every public way to build a market env gives observations at bar t
that depend on bars <= t only, pipeline or not (issue 12, item 6)."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from evotrader.data import DataRef, FeaturePipeline, load_bars
from evotrader.env import DEFAULT_FIT_BARS, ENV_ID, EnvSpec, MarketEnv, VectorMarketEnv
from evotrader.training.market_envs import make_vector_env

CHANGE_AFTER = 300  # bars after this one get a different future
WINDOW = 16
NUM_ENVS = 3
WHOLE = 100_000  # an episode length past the end: a vector env then starts at its first bar


def _changed(bars: pd.DataFrame) -> pd.DataFrame:
    """The same bars up to CHANGE_AFTER, then prices 30% higher and volume halved."""
    changed = bars.copy()
    changed.iloc[CHANGE_AFTER + 1 :] *= 1.3
    changed.iloc[CHANGE_AFTER + 1 :, changed.columns.get_loc("volume")] *= 0.5 / 1.3
    return changed


def _single_observations(env: gym.Env, actions: np.ndarray) -> tuple[int, list[np.ndarray]]:
    """The first decision bar and the observations at every bar up to CHANGE_AFTER + 1."""
    obs, info = env.reset(seed=0)
    first, seen = info["t"], [obs]
    for action in actions[: CHANGE_AFTER + 1 - first]:
        seen.append(env.step(int(action))[0])
    return first, seen


def _vector_observations(env: VectorMarketEnv, first: int, actions: np.ndarray) -> list:
    """Batched observations at bars ``first .. CHANGE_AFTER + 1`` (all envs start at first)."""
    seen = [env.reset(seed=0)[0].copy()]
    for action in actions[: CHANGE_AFTER + 1 - first]:
        seen.append(env.step(np.full(env.num_envs, action))[0].copy())
    return seen


def _assert_causal(original: list[np.ndarray], altered: list[np.ndarray]) -> None:
    """Equal at every bar <= CHANGE_AFTER; the next bar differs, so the change is seen."""
    assert len(original) == len(altered) > 20
    for a, b in zip(original[:-1], altered[:-1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(original[-1], altered[-1])


@pytest.fixture(scope="module")
def fitted(bars: pd.DataFrame) -> FeaturePipeline:
    return FeaturePipeline().fit(bars.iloc[:200])


SingleBuilder = Callable[[pd.DataFrame, FeaturePipeline], gym.Env]
SINGLE: dict[str, SingleBuilder] = {
    "MarketEnv(bars)": lambda b, p: MarketEnv(
        b, spec=EnvSpec(window=WINDOW, episode_length=None), random_start=False
    ),
    "MarketEnv(bars, fit_bars)": lambda b, p: MarketEnv(
        b, spec=EnvSpec(window=WINDOW, episode_length=None), random_start=False, fit_bars=100
    ),
    "MarketEnv(bars, pipeline)": lambda b, p: MarketEnv(
        b, p, EnvSpec(window=WINDOW, episode_length=None), random_start=False
    ),
    "gym.make(bars)": lambda b, p: gym.make(
        ENV_ID, spec=EnvSpec(window=WINDOW, episode_length=None), bars=b, random_start=False
    ),
    "gym.make(bars, pipeline)": lambda b, p: gym.make(
        ENV_ID,
        spec=EnvSpec(window=WINDOW, episode_length=None),
        bars=b,
        pipeline=p,
        random_start=False,
    ),
}


@pytest.mark.parametrize("build", SINGLE.values(), ids=SINGLE.keys())
def test_market_env_observations_ignore_the_future(
    build: SingleBuilder, bars: pd.DataFrame, fitted: FeaturePipeline
) -> None:
    actions = np.random.default_rng(0).integers(3, size=len(bars))
    first, original = _single_observations(build(bars, fitted), actions)
    _, altered = _single_observations(build(_changed(bars), fitted), actions)
    _assert_causal(original, altered)
    assert first < CHANGE_AFTER


def test_default_market_env_on_embedded_bars_ignores_the_future(monkeypatch) -> None:
    """``MarketEnv()`` loads GOOG itself: feed it GOOG with a different future."""
    goog = load_bars("embedded", "GOOG")
    actions = np.random.default_rng(1).integers(3, size=len(goog))
    runs = []
    for frame in (goog, _changed(goog)):
        monkeypatch.setattr("evotrader.data.load_bars", lambda *_, frame=frame: frame)
        env = MarketEnv(spec=EnvSpec(episode_length=None), random_start=False)
        runs.append(_single_observations(env, actions))
    (first, original), (_, altered) = runs
    assert first == DEFAULT_FIT_BARS  # the normalisation prefix is never traded
    _assert_causal(original, altered)


def test_bars_alone_fit_the_prefix_and_never_trade_it(bars: pd.DataFrame) -> None:
    env = MarketEnv(bars, spec=EnvSpec(window=WINDOW), fit_bars=120)
    prefix = FeaturePipeline().fit(bars.iloc[:120])
    np.testing.assert_array_equal(env.pipeline.mean, prefix.mean)
    assert env.market.first_decision == 120
    with pytest.raises(ValueError, match="start bar 119"):
        env.reset(options={"start": 119})


def test_fit_bars_is_checked(bars: pd.DataFrame, fitted: FeaturePipeline) -> None:
    with pytest.raises(ValueError, match="only applies when no fitted pipeline"):
        MarketEnv(bars, fitted, fit_bars=100)
    for bad in (0, -5, len(bars)):
        with pytest.raises(ValueError, match="fit_bars must lie in"):
            MarketEnv(bars, fit_bars=bad)


def _from_env_config(frames: list[pd.DataFrame], pipeline: FeaturePipeline, monkeypatch):
    """make_vector_env as RLlib's env runners call it, loading ``frames[0]``."""
    monkeypatch.setattr(DataRef, "load", lambda self: frames[0])
    return make_vector_env(
        {
            "data": DataRef("csv", "X").to_dict(),
            "pipeline": pipeline.state_dict(),
            "env": EnvSpec(window=WINDOW, episode_length=WHOLE).to_dict(),
            "num_envs": NUM_ENVS,
        }
    )


VECTOR = {
    "VectorMarketEnv(bars)": (
        lambda f, p, _: VectorMarketEnv(
            f[0], NUM_ENVS, spec=EnvSpec(window=WINDOW, episode_length=None), random_start=False
        ),
        DEFAULT_FIT_BARS,
    ),
    "VectorMarketEnv({symbols})": (
        lambda f, p, _: VectorMarketEnv(
            dict(zip("AB", f, strict=True)),
            NUM_ENVS,
            spec=EnvSpec(window=WINDOW, episode_length=None),
            random_start=False,
        ),
        DEFAULT_FIT_BARS,
    ),
    "VectorMarketEnv(bars, pipeline)": (
        lambda f, p, _: VectorMarketEnv(
            f[0], NUM_ENVS, p, EnvSpec(window=WINDOW, episode_length=None), random_start=False
        ),
        FeaturePipeline().warmup + WINDOW - 1,
    ),
    "make_vector_env": (_from_env_config, FeaturePipeline().warmup + WINDOW - 1),
}


@pytest.mark.parametrize(("build", "first"), VECTOR.values(), ids=VECTOR.keys())
def test_vector_env_observations_ignore_the_future(
    build, first: int, bars: pd.DataFrame, fitted: FeaturePipeline, monkeypatch
) -> None:
    """Two symbols on one calendar: both get a different future after CHANGE_AFTER."""
    frames = [bars, bars.assign(volume=bars["volume"][::-1].to_numpy())]
    actions = np.random.default_rng(2).integers(3, size=len(bars))
    runs = []
    for changed in (frames, [_changed(frame) for frame in frames]):
        runs.append(_vector_observations(build(changed, fitted, monkeypatch), first, actions))
    _assert_causal(*runs)
