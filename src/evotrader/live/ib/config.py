"""``IBKRConfig``: where TWS / IB Gateway listens and how the broker uses it.

Settings come from arguments, then the ``IBKR_*`` environment variables, then defaults. The
TWS API has no credentials; the account id is the one secret-ish value, and it is only ever
logged masked (``mask_account``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PAPER_PORTS = {"tws": 7497, "gateway": 4002}
LIVE_PORTS = {"tws": 7496, "gateway": 4001}
BAR_UNIT_SECONDS = {"sec": 1, "min": 60, "hour": 3600, "day": 86_400}
WHAT_TO_SHOW = ("TRADES", "MIDPOINT", "BID", "ASK", "ADJUSTED_LAST")
TIME_IN_FORCE = ("DAY", "GTC", "IOC")


@dataclass(frozen=True)
class IBKRConfig:
    """The port defaults to TWS's paper port; ``live=True`` is the only way to reach a live
    port or account. ``connect`` makes one attempt: the runner owns the retries."""

    host: str = "127.0.0.1"
    port: int = PAPER_PORTS["tws"]
    client_id: int = 1
    account: str = ""  # empty: the only account the login manages
    live: bool = False
    bar_size: str = "1 day"
    what_to_show: str = "TRADES"
    use_rth: bool = True
    tif: str = "DAY"
    outside_rth: bool = False
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    order_ack_timeout_s: float = 5.0
    commission_wait_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("ibkr host must be non-empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"ibkr port must be in 1..65535, got {self.port}")
        if not self.live and self.port in LIVE_PORTS.values():
            raise ValueError(
                f"ibkr port {self.port} is IB's live-trading port; use the paper port "
                f"{PAPER_PORTS['tws']} (TWS) or {PAPER_PORTS['gateway']} (Gateway), or pass "
                "live=True to trade real money"
            )
        if self.client_id < 0:
            raise ValueError(f"ibkr client_id must be >= 0, got {self.client_id}")
        bar_seconds(self.bar_size)
        if self.what_to_show not in WHAT_TO_SHOW:
            raise ValueError(f"ibkr what_to_show must be one of {WHAT_TO_SHOW}")
        if self.tif not in TIME_IN_FORCE:
            raise ValueError(f"ibkr tif must be one of {TIME_IN_FORCE}, got {self.tif!r}")
        for name in ("connect_timeout_s", "request_timeout_s", "order_ack_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ibkr {name} must be > 0, got {getattr(self, name)}")
        if self.commission_wait_s < 0:
            raise ValueError(f"ibkr commission_wait_s must be >= 0, got {self.commission_wait_s}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> IBKRConfig:
        """Settings from ``overrides`` (None means not given), then ``IBKR_HOST``,
        ``IBKR_PORT``, ``IBKR_CLIENT_ID`` and ``IBKR_ACCOUNT``, then the defaults."""
        env = os.environ if env is None else env
        live = bool(overrides.get("live", False))
        default_port = (LIVE_PORTS if live else PAPER_PORTS)["tws"]
        settings: dict[str, Any] = {
            "host": env.get("IBKR_HOST") or "127.0.0.1",
            "port": _env_int(env, "IBKR_PORT", default_port),
            "client_id": _env_int(env, "IBKR_CLIENT_ID", 1),
            "account": env.get("IBKR_ACCOUNT", ""),
        }
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)

    @property
    def where(self) -> str:
        """Host, port and client id: all a log line may say about the connection."""
        return f"{self.host}:{self.port} (client id {self.client_id})"


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def bar_seconds(bar_size: str) -> int:
    """Length of an IB bar size ("5 secs", "1 min", "15 mins", "1 hour", "1 day")."""
    try:
        number, unit = bar_size.split()
        return int(number) * BAR_UNIT_SECONDS[unit.rstrip("s")]
    except (ValueError, KeyError):
        raise ValueError(
            f"ibkr bar_size {bar_size!r} is not an IB bar size like '1 min', '1 hour', '1 day'"
        ) from None


def mask_account(account: str) -> str:
    """Enough of an account id to tell accounts apart in logs, not enough to reuse it."""
    return account[:2] + "***" + account[-2:] if len(account) > 4 else "***"
