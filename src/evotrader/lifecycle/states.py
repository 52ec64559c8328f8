"""Lifecycle states and the moves between them.

A recorded checkpoint starts as a ``candidate``; an operator promotes it to ``paper`` (traded
on a paper account), then to ``champion`` (what is traded for its symbol, one at a time);
a champion leaves only by retiring. Demotion goes one step back down: paper -> candidate,
champion or candidate -> retired. ``retired`` is final: a retired file is never traded again
under the same entry.
"""

from __future__ import annotations

CANDIDATE = "candidate"
PAPER = "paper"
CHAMPION = "champion"
RETIRED = "retired"
STATES: tuple[str, ...] = (CANDIDATE, PAPER, CHAMPION, RETIRED)

PROMOTIONS: dict[str, str] = {CANDIDATE: PAPER, PAPER: CHAMPION}
DEMOTIONS: dict[str, tuple[str, ...]] = {
    CANDIDATE: (RETIRED,),
    PAPER: (CANDIDATE, RETIRED),
    CHAMPION: (RETIRED,),
}


class LifecycleError(ValueError):
    """The model registry cannot do what was asked; the message names the entry and why."""


class TransitionError(LifecycleError):
    """A state change the lifecycle does not allow, or one whose evidence is missing."""


def check_promotion(entry_id: int, state: str, to: str) -> None:
    """Refuse anything but the one step up from ``state``."""
    if PROMOTIONS.get(state) != to:
        allowed = PROMOTIONS.get(state)
        hint = f"it can only go to {allowed}" if allowed else "it cannot be promoted"
        raise TransitionError(f"entry {entry_id} is {state}: not promotable to {to} ({hint})")


def demotion_target(entry_id: int, state: str, to: str | None) -> str:
    """``to``, or the default step down from ``state`` (its first allowed demotion)."""
    allowed = DEMOTIONS.get(state, ())
    if not allowed:
        raise TransitionError(f"entry {entry_id} is {state}: it cannot be demoted")
    target = to or allowed[0]
    if target not in allowed:
        raise TransitionError(
            f"entry {entry_id} is {state}: demotion goes to {' or '.join(allowed)}, not {target}"
        )
    return target
