"""Templates as code: one module per family, each mapping template ids to signal functions.

A signal function takes one bars frame (two for pairs, every symbol's for a cross-sectional
rule, all on one index) and the template's parameters as keywords and returns target
positions decided at each bar's close, as fractions of each leg's capital in [-1, 1]. Every
function is vectorised and causal (the value at bar t uses bars <= t only), and every
translator (our engine, backtesting.py, NautilusTrader) trades the same targets, so they can
only differ in how they fill them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import pandas as pd

from evotrader.strategies.knowledge import MIN_UNIVERSE_LEGS, UNIVERSE_LEGS
from evotrader.strategies.templates import (
    breakout,
    cross_sectional,
    cross_sectional_reversal,
    cross_sectional_risk,
    cross_sectional_volume,
    factor,
    mean_reversion,
    momentum,
    pairs,
    seasonal,
    trend_following,
    volatility,
)

FAMILIES: tuple[ModuleType, ...] = (
    momentum,
    mean_reversion,
    trend_following,
    breakout,
    volatility,
    pairs,
    factor,
    seasonal,
    cross_sectional,
    cross_sectional_reversal,
    cross_sectional_risk,
    cross_sectional_volume,
)


@dataclass(frozen=True)
class SignalCode:
    """The code of one template: its signal function and how many bar frames it reads
    (``UNIVERSE_LEGS``: as many as its book has symbols, at least ``MIN_UNIVERSE_LEGS``)."""

    function: Callable[..., np.ndarray]
    legs: int

    def check_frames(self, template_id: str, count: int) -> None:
        if self.legs == UNIVERSE_LEGS:
            if count < MIN_UNIVERSE_LEGS:
                raise ValueError(
                    f"template {template_id} ranks a universe: it reads at least "
                    f"{MIN_UNIVERSE_LEGS} bar frames, got {count}"
                )
        elif count != self.legs:
            raise ValueError(f"template {template_id} reads {self.legs} bar frame(s), got {count}")


SIGNALS: dict[str, SignalCode] = {
    template_id: SignalCode(function, family.LEGS)
    for family in FAMILIES
    for template_id, function in family.SIGNALS.items()
}


def template_signal(
    template_id: str, frames: Sequence[pd.DataFrame], parameters: Mapping[str, float]
) -> np.ndarray:
    """Targets of ``template_id`` on ``frames``: shape (bars, frames), finite, in [-1, 1].

    Bars where the signal is not yet defined (indicator warm-up) are flat (0).
    """
    code = SIGNALS.get(template_id)
    if code is None:
        raise KeyError(f"no code for template {template_id!r}; known: {', '.join(SIGNALS)}")
    code.check_frames(template_id, len(frames))
    raw = np.asarray(code.function(*frames, **parameters), dtype=np.float64)
    targets = raw.reshape(len(frames[0]), len(frames))
    return np.clip(np.nan_to_num(targets, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)


__all__ = ["FAMILIES", "SIGNALS", "SignalCode", "template_signal"]
