"""The one reconnect policy: doubling waits through the broker, the last failure raised."""

from __future__ import annotations

import pytest

from evotrader.live.broker import BrokerDisconnected
from evotrader.live.retry import Backoff, connect


class Flaky:
    """Refuses ``failures`` connects, recording the waits between them."""

    def __init__(self, failures: int) -> None:
        self.failures, self.waits = failures, []

    def connect(self) -> None:
        if self.failures:
            self.failures -= 1
            raise BrokerDisconnected("refused")

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_delays_double_up_to_the_cap() -> None:
    assert Backoff(6, 0.5, 3.0).delays() == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert Backoff(1).delays() == []
    with pytest.raises(ValueError, match="max_s must be >= initial_s"):
        Backoff(3, 2.0, 1.0)
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        Backoff(0)


def test_connect_retries_then_succeeds_or_raises_the_last_failure() -> None:
    broker, failed = Flaky(2), []
    connect(broker, Backoff(3, 1.0, 60.0), lambda attempt, _: failed.append(attempt))  # type: ignore[arg-type]
    assert (failed, broker.waits) == ([1, 2], [1.0, 2.0])
    broker = Flaky(5)
    with pytest.raises(BrokerDisconnected, match="refused"):
        connect(broker, Backoff(3, 1.0, 60.0))  # type: ignore[arg-type]
    assert broker.waits == [1.0, 2.0]  # no wait after the last attempt
