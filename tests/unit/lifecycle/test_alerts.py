"""Alerts: an ``alert`` line in events.jsonl, plus a command and a webhook that never crash."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tests.unit.lifecycle.alert_server import webhook

from evotrader.lifecycle.alerts import Alerts
from evotrader.lifecycle.states import LifecycleError
from evotrader.live.telemetry import EventLog


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_halt_is_logged_posted_and_handed_to_the_command(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    events = EventLog(tmp_path / "events.jsonl")
    with webhook() as hook:
        alerts = Alerts(events, [sys.executable, "-c", script], hook.url, timeout_s=10)
        line = alerts.halt({"kind": "daily_loss", "reason": "down 6%", "at": "2012-01-20"})
    events.close()
    assert line["delivered"] == {"command": True, "webhook": True}
    assert [posted["kind"] for posted in hook.received] == ["halt"]
    assert hook.received[0]["message"] == "halted by daily_loss: down 6%"
    assert json.loads(out.read_text())["halt"]["kind"] == "daily_loss"
    (logged,) = lines(tmp_path / "events.jsonl")
    assert logged["event"] == "alert" and logged["kind"] == "halt"


def test_failing_hooks_are_logged_never_raised(tmp_path: Path, caplog) -> None:
    events = EventLog(tmp_path / "events.jsonl")
    with webhook(status=500) as hook:
        alerts = Alerts(events, [sys.executable, "-c", "raise SystemExit(3)"], hook.url)
        line = alerts.fire("breach", "out of band")
    with webhook() as gone:
        closed = gone.url  # nothing listens there once the server is shut
    unreachable = Alerts(events, ["/no/such/alert-command"], closed, timeout_s=1)
    second = unreachable.fire("demotion", "demoted")
    events.close()
    assert line["delivered"] == {"command": False, "webhook": False}
    assert second["delivered"] == {"command": False, "webhook": False}
    logged = lines(tmp_path / "events.jsonl")
    errors = [event for event in logged if event["event"] == "error"]
    assert [event["kind"] for event in errors] == ["alert.command", "alert.webhook"] * 2
    assert "HTTP Error 500" in str(errors[1]["detail"])
    assert all("secret" not in str(event) for event in logged)  # the query is not logged
    assert "alert command failed" in caplog.text


@pytest.mark.parametrize(
    ("command", "url", "message"),
    [
        ("notify-send", None, "argv list"),
        ([], None, "argv list"),
        (None, "file:///etc/passwd", "http"),
    ],
)
def test_hooks_are_checked(tmp_path: Path, command, url, message) -> None:
    with pytest.raises(LifecycleError, match=message):
        Alerts(EventLog(None), command, url)
    with pytest.raises(LifecycleError, match="one of"):
        Alerts(EventLog(None)).fire("party", "no")
