"""Seeded synthetic universes with a planted cross-sectional signal and its controls.

Three kinds, every asset with the same daily volatility ``vol`` so they differ only in what a
portfolio could exploit:

- ``lead_lag`` (the signal): asset 0 leads. Every other asset i's return at t+1 loads
  ``loadings[i] = ±strength`` (alternating +, -, +, ...) on the leader's standardised return at
  t, plus its own noise scaled so its volatility stays ``vol``. After the leader rises, the
  "+" followers tend to rise and the "-" followers to fall next bar: a timing signal that
  beats any fixed allocation, including equal weight.
- ``noise`` (the no-signal control): the same drift and volatility, independent returns.
- ``drift`` (the drift-without-timing control): independent returns whose drifts are spread
  evenly over ``drift ± drift_spread * vol``; a static tilt to the high-drift assets earns,
  timing earns nothing.
- ``rotation`` (a planted cross-sectional signal): every ``ROTATION_BLOCK`` bars a seeded
  half of the assets drifts up by ``strength * vol`` a bar and the other half down as much,
  on top of ``drift``; leadership persists within a block, so ranking the assets on their
  recent returns (cross-sectional momentum) earns while any fixed allocation does not.

Bars follow ``generate_synthetic``'s construction (open_t = close_{t-1}, lognormal volume), so
a decision at t's close filled at t+1's open earns the whole planted return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evotrader.data.errors import DataError
from evotrader.data.sources.synthetic import _ohlcv
from evotrader.data.validation import INDEX_NAME, validate_ohlcv

UNIVERSE_KINDS: tuple[str, ...] = ("lead_lag", "noise", "drift", "rotation")
ROTATION_BLOCK = 63  # bars between re-draws of the leaders in a ``rotation`` universe


@dataclass(frozen=True)
class SyntheticUniverse:
    """Generated bars by symbol (one calendar) and the ground truth that generated them:
    each asset's loading on the leader's previous return and its drift per bar (one row per
    bar for ``rotation``, whose drifts change)."""

    bars: dict[str, pd.DataFrame]
    kind: str
    loadings: np.ndarray
    drifts: np.ndarray

    @property
    def leader(self) -> str:
        """The symbol whose returns lead the others' (asset 0; meaningful for lead_lag)."""
        return next(iter(self.bars))


def universe_symbols(n_assets: int) -> tuple[str, ...]:
    """The generated symbols: ``A0``, ``A1``, ... in order."""
    return tuple(f"A{i}" for i in range(n_assets))


def generate_universe(
    n_assets: int = 4,
    n_bars: int = 2000,
    *,
    seed: int = 0,
    kind: str = "lead_lag",
    strength: float = 0.3,
    vol: float = 0.01,
    drift: float = 0.0,
    drift_spread: float = 0.05,
    start: str = "2000-01-03",
    freq: str = "B",
    start_price: float = 100.0,
) -> SyntheticUniverse:
    """``n_assets`` aligned bar series, fully determined by the arguments (see the module doc).

    ``strength`` is the correlation between the leader's return at t and a follower's at t+1
    (``lead_lag``), or the leaders' drift in units of ``vol`` (``rotation``);
    ``drift_spread`` is in units of ``vol`` (``drift`` only).
    """
    _check(n_assets, n_bars, kind, strength, vol, drift_spread, start_price)
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal((n_bars, n_assets))
    loadings = np.zeros(n_assets)
    drifts = np.full(n_assets, drift)
    if kind == "lead_lag":
        loadings[1:] = strength * np.where(np.arange(1, n_assets) % 2 == 1, 1.0, -1.0)
        lagged = np.concatenate(([0.0], shocks[:-1, 0]))
        own = np.sqrt(1.0 - loadings**2)
        shocks = own * shocks + np.outer(lagged, loadings)
    elif kind == "drift":
        drifts = drift + drift_spread * vol * np.linspace(-1.0, 1.0, n_assets)
    elif kind == "rotation":
        blocks = -(-n_bars // ROTATION_BLOCK)
        half = np.where(np.arange(n_assets) < n_assets // 2, 1.0, -1.0)
        signs = np.stack([rng.permutation(half) for _ in range(blocks)])
        drifts = drift + strength * vol * np.repeat(signs, ROTATION_BLOCK, axis=0)[:n_bars]
    returns = drifts + vol * shocks
    try:
        index = pd.date_range(start=start, periods=n_bars, freq=freq, name=INDEX_NAME)
    except (ValueError, pd.errors.OutOfBoundsDatetime) as error:
        raise DataError(f"generate_universe: no calendar from start={start!r}: {error}") from error
    sigma = np.full(n_bars, vol)
    bars = {
        symbol: validate_ohlcv(
            _ohlcv(rng, returns[:, i], sigma, start_price, index), symbol=f"{kind}:{symbol}"
        )
        for i, symbol in enumerate(universe_symbols(n_assets))
    }
    return SyntheticUniverse(bars, kind, loadings, drifts)


def _check(
    n_assets: int,
    n_bars: int,
    kind: str,
    strength: float,
    vol: float,
    drift_spread: float,
    start_price: float,
) -> None:
    """Refuse settings that would make a degenerate universe or an impossible correlation."""
    problems = [
        (kind not in UNIVERSE_KINDS, f"kind must be one of {UNIVERSE_KINDS}, got {kind!r}"),
        (n_assets < 2, f"n_assets must be >= 2, got {n_assets}"),
        (n_bars < 2, f"n_bars must be >= 2, got {n_bars}"),
        (not 0 <= strength < 1, f"strength must lie in [0, 1), got {strength}"),
        (not 0 < vol < np.inf, f"vol must be positive, got {vol}"),
        (not 0 <= drift_spread < np.inf, f"drift_spread must be >= 0, got {drift_spread}"),
        (not 0 < start_price < np.inf, f"start_price must be positive, got {start_price}"),
    ]
    failed = [message for bad, message in problems if bad]
    if failed:
        raise DataError("generate_universe: " + "; ".join(failed))
