"""MarketEnv and VectorMarketEnv return, bit for bit, what they returned before the speed-ups.

``env_reference.npz`` holds the observations, rewards, terminations, truncations and infos
of fixed seed/action runs over several specs (agent state on and off, long-only, windows 1 to
32, finite and open-ended episodes, differential Sharpe, impact and close fills, a crash that
terminates accounts, an odd channel count, three symbols for the vector env). It was written
by the env code before the speed-ups of issue 16 (``src`` of commit abb9917) with

    git archive abb9917 src | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/src .venv/bin/python tests/unit/env/test_env_speedups.py

which reruns ``record_market`` and ``record_vector`` and rewrites the file. Regenerate it
only for a deliberate change of the env's numbers (features, costs, rewards), never for speed.

Every observation is kept as returned and compared at the end of the run, so an env that
hands back a view of a buffer it later overwrites fails here too (RLlib keeps them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from evotrader.data import FeaturePipeline, generate_synthetic
from evotrader.env import EnvSpec, ExecutionModel, MarketEnv, VectorMarketEnv

REFERENCE = Path(__file__).with_name("env_reference.npz")
FIT_BARS = 150
INFO_KEYS = ("equity", "position", "cost", "t")  # MarketEnv.step's info, in this order

MARKET_VARIANTS: dict[str, tuple[str, EnvSpec, bool, int | None]] = {
    # name: (symbol, spec, random_start, reset start bar)
    "default": ("AAA", EnvSpec(window=16, episode_length=40), True, None),
    "no_state_w1": ("BBB", EnvSpec(window=1, episode_length=25, agent_state=False), True, None),
    "long_only_sharpe": (
        "CCC",
        EnvSpec(window=8, positions=(0.0, 1.0), reward="differential_sharpe", episode_length=None),
        False,
        None,
    ),
    "impact_close": (
        "AAA",
        EnvSpec(
            window=32,
            positions=(-0.5, 0.0, 0.5, 1.0),
            episode_length=60,
            execution=ExecutionModel(impact_coef=0.1, fill="close"),
        ),
        True,
        None,
    ),
    "crash": ("CRASH", EnvSpec(window=4, positions=(0.0, 4.0), episode_length=None), False, 240),
    "odd_channels": ("BBB", EnvSpec(window=12, episode_length=30), True, None),
}

VECTOR_VARIANTS: dict[str, tuple[tuple[str, ...], EnvSpec, bool, int]] = {
    # name: (symbols, spec, random_start, num_envs)
    "three_symbols": (("AAA", "BBB", "CCC"), EnvSpec(window=16, episode_length=20), True, 6),
    "no_state_w4": (("BBB",), EnvSpec(window=4, episode_length=30, agent_state=False), True, 5),
    "long_only_sharpe": (
        ("AAA", "CCC"),
        EnvSpec(window=8, positions=(0.0, 1.0), reward="differential_sharpe", episode_length=None),
        False,
        4,
    ),
    "crash": (("CRASH",), EnvSpec(window=2, positions=(0.0, 4.0), episode_length=None), False, 8),
    "odd_channels": (("AAA", "BBB"), EnvSpec(window=6, episode_length=15), True, 5),
}
# Variants given a pipeline fitted elsewhere, on three features: five channels with the agent
# state, so its float32 pair is not 8-byte aligned in every row. The others fit their own.
ODD_FEATURES = ("log_return", "gap", "volatility")


def universe() -> dict[str, pd.DataFrame]:
    """Three seeded synthetic symbols and one that crashes four times, 400 bars each."""
    frames = {
        symbol: generate_synthetic(400, seed=seed, kind=kind).bars
        for symbol, kind, seed in (
            ("AAA", "regimes", 21),
            ("BBB", "random_walk", 22),
            ("CCC", "momentum", 23),
        )
    }
    # Bars 200, 260, 300 and 340 close 40% below their open: a 4x long held into one ends.
    crashes = np.zeros(400, dtype=int)
    crashes[[200, 260, 300, 340]] = 1
    after_close = 0.6 ** np.cumsum(crashes)
    before_open = 0.6 ** (np.cumsum(crashes) - crashes)
    bars = frames["AAA"]
    frames["CRASH"] = bars.assign(
        open=bars["open"] * before_open,
        high=bars["high"] * before_open,
        low=bars["low"] * after_close,
        close=bars["close"] * after_close,
    )
    return frames


def _fit(variant: str, frames: list[pd.DataFrame]) -> dict[str, Any]:
    """The env's normalisation: its own fit on the first FIT_BARS bars, or a fitted pipeline."""
    if variant != "odd_channels":
        return {"fit_bars": FIT_BARS}
    return {"pipeline": FeaturePipeline(ODD_FEATURES).fit([f.iloc[:FIT_BARS] for f in frames])}


def record_market(frames: dict[str, pd.DataFrame], steps: int = 150) -> dict[str, np.ndarray]:
    """Every MarketEnv variant stepped with seeded random actions, reset when an episode ends."""
    out: dict[str, np.ndarray] = {}
    for name, (symbol, spec, random_start, start) in MARKET_VARIANTS.items():
        env = MarketEnv(
            frames[symbol], spec=spec, random_start=random_start, **_fit(name, [frames[symbol]])
        )
        options = None if start is None else {"start": start}
        obs, info = env.reset(seed=11, options=options)
        observations, resets, rows = [obs], [(info["equity"], info["t"])], []
        actions = np.random.default_rng(12).integers(len(spec.positions), size=steps)
        for action in actions:
            obs, reward, terminated, truncated, info = env.step(action)
            observations.append(obs)
            rows.append((reward, terminated, truncated, *(info[key] for key in INFO_KEYS)))
            if terminated or truncated:
                obs, info = env.reset(options=options)
                observations.append(obs)
                resets.append((info["equity"], info["t"]))
        out[f"market/{name}/obs"] = np.stack(observations)
        out[f"market/{name}/steps"] = np.array(rows, dtype=np.float64)
        out[f"market/{name}/resets"] = np.array(resets, dtype=np.float64)
    return out


def record_vector(frames: dict[str, pd.DataFrame], steps: int = 100) -> dict[str, np.ndarray]:
    """Every VectorMarketEnv variant stepped with seeded random actions (NEXT_STEP autoreset)."""
    out: dict[str, np.ndarray] = {}
    for name, (symbols, spec, random_start, num_envs) in VECTOR_VARIANTS.items():
        bars = {symbol: frames[symbol] for symbol in symbols}
        env = VectorMarketEnv(
            bars, num_envs, spec=spec, random_start=random_start, **_fit(name, list(bars.values()))
        )
        obs, info = env.reset(seed=13)
        observations, equities = [obs], [info["equity"]]
        rewards, terminations, truncations = [], [], []
        actions = np.random.default_rng(14).integers(len(spec.positions), size=(steps, num_envs))
        for batch in actions:
            obs, reward, terminated, truncated, info = env.step(batch)
            observations.append(obs)
            equities.append(info["equity"])
            rewards.append(reward)
            terminations.append(terminated)
            truncations.append(truncated)
        out[f"vector/{name}/obs"] = np.stack(observations)
        out[f"vector/{name}/equity"] = np.stack(equities)
        out[f"vector/{name}/rewards"] = np.stack(rewards)
        out[f"vector/{name}/terminated"] = np.stack(terminations)
        out[f"vector/{name}/truncated"] = np.stack(truncations)
    return out


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as stored:
        return dict(stored)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return universe()


def _assert_identical(got: dict[str, np.ndarray], reference: dict[str, Any], prefix: str) -> None:
    expected = {key: value for key, value in reference.items() if key.startswith(prefix)}
    assert sorted(got) == sorted(expected)
    for key, value in got.items():
        assert value.dtype == expected[key].dtype and value.shape == expected[key].shape, key
        assert np.array_equal(value, expected[key]), f"{key} differs from {REFERENCE.name}"


def test_market_env_bit_identical(frames, reference) -> None:
    _assert_identical(record_market(frames), reference, "market/")


def test_vector_env_bit_identical(frames, reference) -> None:
    _assert_identical(record_vector(frames), reference, "vector/")


def test_reference_covers_terminations(reference) -> None:
    """The crash variants do end accounts, so the termination path is compared too."""
    assert reference["market/crash/steps"][:, 1].any()
    assert reference["vector/crash/terminated"].any()
    assert reference["vector/three_symbols/truncated"].any()


if __name__ == "__main__":
    data = universe()
    np.savez_compressed(REFERENCE, **record_market(data), **record_vector(data))
    print(f"wrote {REFERENCE}")


def test_scribbling_on_an_observation_changes_no_later_one(frames) -> None:
    """MarketEnv hands out rows of a shared block: a caller writing into one (normalising in
    place, say) must not reach the observations that follow, across blocks and resets."""
    symbol, spec, _, _ = MARKET_VARIANTS["default"]
    clean, scribbled = (MarketEnv(frames[symbol], spec=spec, fit_bars=FIT_BARS) for _ in range(2))
    first, _ = clean.reset(seed=5)
    other, _ = scribbled.reset(seed=5)
    assert np.array_equal(first, other)
    for action in np.random.default_rng(6).integers(len(spec.positions), size=150):
        other[...] = np.nan
        expected, _, terminated, truncated, _ = clean.step(action)
        other = scribbled.step(action)[0]
        assert np.array_equal(expected, other)
        if terminated or truncated:
            other[...] = np.nan
            other = scribbled.reset()[0]
            assert np.array_equal(clean.reset()[0], other)
