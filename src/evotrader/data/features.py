"""The one causal feature pipeline shared by training, backtest and live trading.

Every feature at bar t is computed from bars <= t only (trailing windows, no centring,
no back-filling). Normalisation statistics are fitted on the training split alone and
travel inside checkpoints as a plain dict, so live trading sees exactly what training saw.

Close-only bars (open = high = low = close, no volume: skfolio's S&P 500 closes) carry no
gap, body, range or volume information, so ``fit`` refuses those features on them, naming
the features, rather than fitting constants and NaNs; ``CLOSE_ONLY_FEATURES`` is what such
bars can carry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from evotrader.data.errors import DataError

STATE_VERSION = 1


def _log_return(bars: pd.DataFrame, window: int) -> pd.Series:
    return np.log(bars["close"]).diff()


def _gap(bars: pd.DataFrame, window: int) -> pd.Series:
    return np.log(bars["open"] / bars["close"].shift(1))


def _body(bars: pd.DataFrame, window: int) -> pd.Series:
    return np.log(bars["close"] / bars["open"])


def _range(bars: pd.DataFrame, window: int) -> pd.Series:
    return np.log(bars["high"] / bars["low"])


def _volatility(bars: pd.DataFrame, window: int) -> pd.Series:
    return _log_return(bars, window).rolling(window).std()


def _trend(bars: pd.DataFrame, window: int) -> pd.Series:
    return np.log(bars["close"]).diff(window)


def _volume_z(bars: pd.DataFrame, window: int) -> pd.Series:
    log_volume = np.log1p(bars["volume"])
    rolling = log_volume.rolling(window)
    return (log_volume - rolling.mean()) / rolling.std().replace(0.0, np.nan)


FEATURES: dict[str, Callable[[pd.DataFrame, int], pd.Series]] = {
    "log_return": _log_return,
    "gap": _gap,
    "body": _body,
    "range": _range,
    "volatility": _volatility,
    "trend": _trend,
    "volume_z": _volume_z,
}
DEFAULT_FEATURES = ("log_return", "gap", "body", "range", "volatility", "volume_z")
RANGE_FEATURES = frozenset({"gap", "body", "range"})  # need opens, highs and lows of their own
VOLUME_FEATURES = frozenset({"volume_z"})  # need traded volume
CLOSE_ONLY_FEATURES = tuple(f for f in FEATURES if f not in RANGE_FEATURES | VOLUME_FEATURES)


def is_close_only(bars: pd.DataFrame) -> bool:
    """Whether every bar has open = high = low = close (a close-only source)."""
    close = bars["close"].to_numpy()
    return all(np.array_equal(bars[c].to_numpy(), close) for c in ("open", "high", "low"))


def has_volume(bars: pd.DataFrame) -> bool:
    """Whether any bar reports traded volume (volume-scaled features and costs need some)."""
    return bool((bars["volume"] > 0).any())


def require_carried(
    features: Sequence[str],
    bars: pd.DataFrame,
    where: str,
    remedy: str = "use FeaturePipeline(CLOSE_ONLY_FEATURES)",
) -> None:
    """Refuse ``features`` that ``bars`` cannot carry (range features on close-only bars,
    volume features on bars without volume): one ``DataError`` naming the features, ``where``
    the bars are, ``CLOSE_ONLY_FEATURES`` and the ``remedy``."""
    close_only = is_close_only(bars)
    needs = {
        "opens, highs and lows apart from the close": RANGE_FEATURES if close_only else set(),
        "traded volume": set() if has_volume(bars) else VOLUME_FEATURES,
    }
    problems = []
    for need, refused in needs.items():
        lacking = [f for f in features if f in refused]
        if lacking:
            problems.append(f"{', '.join(lacking)} need{'s' * (len(lacking) == 1)} {need}")
    if problems:
        kind = "close-only (open = high = low = close)" if close_only else "without volume"
        raise DataError(
            f"features {'; '.join(problems)}, but {where} are {kind}; such bars carry "
            f"CLOSE_ONLY_FEATURES {CLOSE_ONLY_FEATURES}: {remedy}"
        )


class FeaturePipeline:
    """Causal per-bar features, standardised with statistics from the training split.

    ``transform`` returns a float32 array (bars, features); rows before ``warmup`` are
    zero because their trailing windows are incomplete, and values are clipped to
    ``±clip`` standard deviations so one bad print cannot blow up a network.
    """

    def __init__(
        self,
        features: Sequence[str] = DEFAULT_FEATURES,
        window: int = 20,
        clip: float = 5.0,
    ) -> None:
        unknown = [name for name in features if name not in FEATURES]
        if unknown:
            raise ValueError(f"unknown features {unknown}; available: {sorted(FEATURES)}")
        if window < 2:
            raise ValueError(f"feature window must be >= 2, got {window}")
        self.features = tuple(features)
        self.window = int(window)
        self.clip = float(clip)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    @property
    def num_features(self) -> int:
        return len(self.features)

    @property
    def warmup(self) -> int:
        """Index of the first bar whose every feature has a full trailing window."""
        return self.window

    @property
    def is_fitted(self) -> bool:
        return self.mean is not None

    def raw(self, bars: pd.DataFrame) -> np.ndarray:
        """Unnormalised features (bars, features) in float64; NaN during warm-up."""
        columns = [FEATURES[name](bars, self.window).to_numpy(np.float64) for name in self.features]
        raw = np.stack(columns, axis=1)
        raw[: self.warmup] = np.nan
        return raw

    def fit(
        self, bars: pd.DataFrame | Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame]
    ) -> FeaturePipeline:
        """Fit mean and std on training bars (one frame, or several symbols pooled; a
        mapping names each symbol in errors). ``DataError`` for a feature the bars cannot
        carry (see ``require_carried``)."""
        frames = _labelled(bars)
        for where, frame in frames.items():
            require_carried(self.features, frame, where)
        rows = np.concatenate([self.raw(frame)[self.warmup :] for frame in frames.values()])
        rows = rows[np.isfinite(rows).all(axis=1)]
        if len(rows) < 2:
            raise ValueError(
                f"need more than {self.warmup + 1} bars to fit features, got {len(rows)} valid"
            )
        self.mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        self.std = np.where(std > 1e-12, std, 1.0)
        return self

    def transform(self, bars: pd.DataFrame) -> np.ndarray:
        """Standardised, clipped float32 features; zero where a window is incomplete."""
        if self.mean is None or self.std is None:
            raise RuntimeError("FeaturePipeline.transform called before fit()")
        scaled = (self.raw(bars) - self.mean) / self.std
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=self.clip, neginf=-self.clip)
        return cast(np.ndarray, np.clip(scaled, -self.clip, self.clip).astype(np.float32))

    def fit_transform(self, bars: pd.DataFrame) -> np.ndarray:
        return self.fit(bars).transform(bars)

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state that rebuilds this exact pipeline (goes into checkpoints)."""
        if self.mean is None or self.std is None:
            raise RuntimeError("cannot export an unfitted FeaturePipeline")
        return {
            "version": STATE_VERSION,
            "features": list(self.features),
            "window": self.window,
            "clip": self.clip,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeaturePipeline:
        """Rebuild a fitted pipeline; a foreign or damaged state gives a clear error."""
        try:
            if state["version"] != STATE_VERSION:
                raise ValueError(f"unsupported feature state version {state['version']}")
            pipeline = cls(state["features"], state["window"], state["clip"])
            mean = np.asarray(state["mean"], dtype=np.float64)
            std = np.asarray(state["std"], dtype=np.float64)
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed feature pipeline state: {error!r}") from error
        if mean.shape != (pipeline.num_features,) or std.shape != mean.shape:
            raise ValueError(
                f"feature state has {mean.shape} means and {std.shape} stds "
                f"for {pipeline.num_features} features"
            )
        pipeline.mean, pipeline.std = mean, std
        return pipeline


def _labelled(
    bars: pd.DataFrame | Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame],
) -> dict[str, pd.DataFrame]:
    """Each frame under the words an error would use for it."""
    if isinstance(bars, pd.DataFrame):
        return {"the bars": bars}
    if isinstance(bars, Mapping):
        return {f"the bars of {symbol}": frame for symbol, frame in bars.items()}
    frames = list(bars)
    if len(frames) == 1:
        return {"the bars": frames[0]}
    return {f"bars #{i + 1} of {len(frames)}": frame for i, frame in enumerate(frames)}
