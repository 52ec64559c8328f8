"""The kill switch: a file's existence or SIGTERM/SIGINT flattens and halts at once."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class KillSwitch:
    """Polled by the runner between steps; a signal only sets a flag, so a handler never
    interrupts a journal write or an order in flight."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._signal: str | None = None
        self._previous: dict[int, Any] = {}

    def reason(self) -> str | None:
        """Why to stop now, or None."""
        if self._signal:
            return f"received {self._signal}"
        if self.path is not None and self.path.exists():
            return f"kill file {self.path} exists"
        return None

    def install(self) -> KillSwitch:
        """Catch SIGTERM and SIGINT (main thread only) until ``uninstall``."""
        for number in SIGNALS:
            self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def uninstall(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        self._signal = signal.Signals(number).name

    def __enter__(self) -> KillSwitch:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()
