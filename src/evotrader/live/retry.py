"""The one reconnect policy: exponential backoff, owned by the runner.

Brokers try to connect once per ``connect`` call; only this loop retries. Nested retries (a
broker's own loop inside the runner's) would multiply the waits and need two sets of keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evotrader.live.broker import Broker, BrokerDisconnected


@dataclass(frozen=True)
class Backoff:
    """``attempts`` connects in all, waiting ``initial_s`` after the first failure, doubling
    up to ``max_s``."""

    attempts: int = 8
    initial_s: float = 1.0
    max_s: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"backoff attempts must be >= 1, got {self.attempts}")
        if not self.initial_s > 0:
            raise ValueError(f"backoff initial_s must be > 0, got {self.initial_s}")
        if self.max_s < self.initial_s:
            raise ValueError("backoff max_s must be >= initial_s")

    def delays(self) -> list[float]:
        """Seconds to wait after each failed attempt but the last."""
        return [min(self.initial_s * 2**k, self.max_s) for k in range(self.attempts - 1)]


def connect(
    broker: Broker,
    backoff: Backoff,
    on_failure: Callable[[int, BrokerDisconnected], None] = lambda attempt, error: None,
) -> None:
    """Connect, retrying ``BrokerDisconnected`` with ``backoff``; the last failure is raised.

    The waits go through ``broker.wait`` (an event loop keeps running; the sim's clock moves).
    """
    delays = backoff.delays()
    for attempt in range(1, backoff.attempts + 1):
        try:
            broker.connect()
            return
        except BrokerDisconnected as error:
            on_failure(attempt, error)
            if attempt == backoff.attempts:
                raise
            broker.wait(delays[attempt - 1])
