"""core.checks: each require_* names the bad field after its prefix; good values pass."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from evotrader.core.checks import (
    check_fields,
    require_at_least,
    require_between,
    require_finite,
    require_int,
    require_nonnegative,
    require_positive,
)


@dataclass(frozen=True)
class Settings:
    a: Any = 1
    b: Any = 0.5


class Custom(ValueError):
    pass


def test_good_values_pass() -> None:
    settings = Settings()
    require_finite("s.", settings, "a", "b")
    require_at_least("s.", settings, 1, "a")
    require_nonnegative("s.", settings, "a", "b")
    require_positive("s.", settings, "a", "b", finite=True)
    require_between("s.", settings, 0, 1, "b")
    require_between("s.", settings, 0, 1, "a", include_high=True)
    require_int("s.", settings, 1, "a")
    check_fields("Settings", [(False, "never")])


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (lambda s: require_finite("s.", s, "a"), "s.a must be finite, got nan"),
        (lambda s: require_at_least("s.", s, 2, "b"), "s.b must be >= 2, got 0.5"),
        (lambda s: require_nonnegative("s.", s, "a"), "s.a must be finite and >= 0, got nan"),
        (lambda s: require_positive("s ", s, "a"), "s a must be positive, got nan"),
        (lambda s: require_between("", s, 0, 0.5, "b"), r"b must lie in \(0, 0.5\), got 0.5"),
        (
            lambda s: require_between("", s, 1, 2, "b", include_low=True, include_high=True),
            r"b must lie in \[1, 2\], got 0.5",
        ),
        (lambda s: require_int("s.", s, 1, "b"), "s.b must be an int >= 1, got 0.5"),
    ],
)
def test_bad_values_name_the_field(check: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check(Settings(a=math.nan))


def test_infinity_is_positive_unless_finite_is_asked() -> None:
    settings = Settings(a=math.inf)
    require_positive("", settings, "a")
    with pytest.raises(ValueError, match="a must be positive, got inf"):
        require_positive("", settings, "a", finite=True)


def test_the_error_type_is_the_callers() -> None:
    with pytest.raises(Custom, match=r"x\.a must be >= 5"):
        require_at_least("x.", Settings(), 5, "a", error=Custom)


def test_require_int_rejects_bools_and_stores_plain_ints() -> None:
    with pytest.raises(ValueError, match="a must be an int >= 0, got True"):
        require_int("", Settings(a=True), 0, "a")
    settings = Settings(a=np.int64(3))
    require_int("", settings, 0, "a")
    assert type(settings.a) is int and settings.a == 3


def test_check_fields_lists_every_failed_rule() -> None:
    with pytest.raises(ValueError, match=r"^Settings: one; three$"):
        check_fields("Settings", [(True, "one"), (False, "two"), (True, "three")])
