"""Alerts: what a human must hear about (a halt, a demotion, a breach of the paper band).

Every alert is an ``alert`` line in the bot's ``events.jsonl``; optionally a command runs
(an argv list, never through a shell) with the alert as JSON on its stdin, and the alert is
POSTed as JSON to a webhook URL. Both hooks have a short timeout, and a failing hook is
logged and written to the event log, never raised: an alert must not stop the bot or the
monitor that raised it. The webhook uses the standard library's ``urllib`` (one small POST
needs no HTTP client dependency, and the bot's machine may have none installed).
"""

from __future__ import annotations

import json
import logging
import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from evotrader.lifecycle.states import LifecycleError
from evotrader.live.telemetry import EventLog

log = logging.getLogger(__name__)

HALT, DEMOTION, BREACH = "halt", "demotion", "breach"
KINDS = (HALT, DEMOTION, BREACH)
TIMEOUT_S = 5.0


class Alerts:
    """Alert lines in ``events`` (the bot's event log), plus the optional hooks."""

    def __init__(
        self,
        events: EventLog,
        command: Sequence[str] | None = None,
        webhook: str | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        if command is not None and (not command or isinstance(command, str)):
            raise LifecycleError("an alert command is a non-empty argv list (no shell)")
        if webhook is not None and not webhook.startswith(("http://", "https://")):
            raise LifecycleError(f"an alert webhook is an http(s) URL, not {webhook!r}")
        if not timeout_s > 0:
            raise LifecycleError(f"an alert timeout must be positive, got {timeout_s}")
        self.events = events
        self.command = list(command) if command is not None else None
        self.webhook = webhook
        self.timeout_s = timeout_s

    def fire(self, kind: str, message: str, **details: Any) -> dict[str, Any]:
        """Record the alert, then run the hooks; returns the event line written, with
        ``delivered`` naming each hook and whether it succeeded."""
        if kind not in KINDS:
            raise LifecycleError(f"an alert is one of {KINDS}, not {kind!r}")
        alert = {"kind": kind, "message": message, **details}
        log.warning(f"alert ({kind}): {message}")
        delivered: dict[str, bool] = {}
        if self.command is not None:
            delivered["command"] = self._run_command(alert)
        if self.webhook is not None:
            delivered["webhook"] = self._post(alert)
        return self.events.emit("alert", **alert, delivered=delivered)

    def halt(self, halt: dict[str, Any], **details: Any) -> dict[str, Any]:
        """A breaker or the kill switch halted the bot (``Trip.to_dict()``): the session
        calls this when its runner halts, the paper monitor for a halt not alerted yet (the
        alert's ``at`` is the halt's, so either finds the other's)."""
        message = f"halted by {halt.get('kind', '?')}: {halt.get('reason', '')}".rstrip(": ")
        return self.fire(HALT, message, halt=halt, at=str(halt.get("at")), **details)

    def _run_command(self, alert: dict[str, Any]) -> bool:
        assert self.command is not None
        try:
            done = subprocess.run(
                self.command,
                input=json.dumps(alert, default=str),
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as error:
            return self._failed("command", f"{self.command[0]}: {error}")
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()[-200:]
            return self._failed("command", f"{self.command[0]} exited {done.returncode}: {detail}")
        return True

    def _post(self, alert: dict[str, Any]) -> bool:
        assert self.webhook is not None
        request = urllib.request.Request(
            self.webhook,
            data=json.dumps(alert, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = int(response.status)
        except (OSError, ValueError) as error:  # URLError, HTTPError and timeouts are OSErrors
            return self._failed("webhook", f"{_shown(self.webhook)}: {error}")
        if not 200 <= status < 300:
            return self._failed("webhook", f"{_shown(self.webhook)} answered {status}")
        return True

    def _failed(self, hook: str, what: str) -> bool:
        log.warning(f"alert {hook} failed: {what}")
        self.events.emit("error", kind=f"alert.{hook}", detail=what)
        return False


def _shown(url: str) -> str:
    """The URL without its query (a webhook's token often rides there)."""
    return url.split("?", 1)[0]
