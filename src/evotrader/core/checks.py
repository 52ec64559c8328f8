"""Checks for settings dataclasses: each ``__post_init__`` states its rules in a line or two.

Every ``require_*`` reads the named fields off ``owner`` and raises ``error`` (a ValueError
by default; a package passes its own subclass) at the first bad one, naming the field after
``where``, the prefix the package's messages use: ``"screening."`` gives
``screening.n_folds must be >= 1, got 0``, ``"execution "`` gives
``execution impact_window must be >= 2, got 1``, ``""`` the bare field name.
``check_fields`` instead gathers a list of hand-written (failed, message) rules into one error.
"""

from __future__ import annotations

import math
from numbers import Integral


def require_finite(
    where: str, owner: object, *names: str, error: type[ValueError] = ValueError
) -> None:
    """Each field is a finite number: ``{where}{name} must be finite, got {value}``."""
    for name in names:
        value = getattr(owner, name)
        if not math.isfinite(value):
            raise error(f"{where}{name} must be finite, got {value}")


def require_at_least(
    where: str, owner: object, minimum: int, *names: str, error: type[ValueError] = ValueError
) -> None:
    """Each field is >= ``minimum``: ``{where}{name} must be >= {minimum}, got {value}``."""
    for name in names:
        value = getattr(owner, name)
        if value < minimum:
            raise error(f"{where}{name} must be >= {minimum}, got {value}")


def require_nonnegative(
    where: str, owner: object, *names: str, error: type[ValueError] = ValueError
) -> None:
    """Each field is finite and >= 0: ``{where}{name} must be finite and >= 0, got {value}``."""
    for name in names:
        value = getattr(owner, name)
        if not 0 <= value < math.inf:
            raise error(f"{where}{name} must be finite and >= 0, got {value}")


def require_positive(
    where: str,
    owner: object,
    *names: str,
    finite: bool = False,
    error: type[ValueError] = ValueError,
) -> None:
    """Each field is > 0 (and below infinity if ``finite``):
    ``{where}{name} must be positive, got {value}``."""
    for name in names:
        value = getattr(owner, name)
        if not (0 < value < math.inf if finite else value > 0):
            raise error(f"{where}{name} must be positive, got {value}")


def require_between(
    where: str,
    owner: object,
    low: float,
    high: float,
    *names: str,
    include_low: bool = False,
    include_high: bool = False,
    error: type[ValueError] = ValueError,
) -> None:
    """Each field lies between ``low`` and ``high`` (ends open unless included), e.g.
    ``{where}{name} must lie in (0, 1], got {value}``; NaN never does."""
    interval = f"{'[' if include_low else '('}{low}, {high}{']' if include_high else ')'}"
    for name in names:
        value = getattr(owner, name)
        above = value >= low if include_low else value > low
        below = value <= high if include_high else value < high
        if not (above and below):
            raise error(f"{where}{name} must lie in {interval}, got {value}")


def require_int(
    where: str, owner: object, minimum: int, *names: str, error: type[ValueError] = ValueError
) -> None:
    """Each field is an integer (not a bool) >= ``minimum``, then stored as a plain ``int``
    (numpy and OmegaConf integers too), so the settings' JSON form round-trips:
    ``{where}{name} must be an int >= {minimum}, got {value!r}``."""
    for name in names:
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
            raise error(f"{where}{name} must be an int >= {minimum}, got {value!r}")
        object.__setattr__(owner, name, int(value))


def check_fields(owner: str, problems: list[tuple[bool, str]]) -> None:
    """Raise one ValueError naming ``owner`` and every (failed, message) problem that failed."""
    failed = [message for bad, message in problems if bad]
    if failed:
        raise ValueError(f"{owner}: " + "; ".join(failed))
