"""``python -m evotrader registry ...`` through its main(): tables out, refusals as one
``error:`` line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.lifecycle.helpers import lifecycle_checkpoint
from tests.unit.live.helpers import make_strategy_registry

from evotrader.__main__ import main
from evotrader.cli import ExitCode
from evotrader.lifecycle.states import CANDIDATE
from evotrader.lifecycle.store import ModelRegistry
from evotrader.strategies.spec import StrategySpec


def test_record_promote_demote_and_history(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "registry.sqlite")
    first, second = (lifecycle_checkpoint(tmp_path / f"{seed}.pth", seed) for seed in (0, 1))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["registry", "--registry", db, *args])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("record", str(first))[0] == ExitCode.OK
    code, out, _ = run("record", str(second))
    assert code == ExitCode.OK and out.splitlines()[2].split()[:3] == ["2", "candidate", "GOOG"]
    assert run("promote", "1", "--to", "paper", "--why", "sane validation")[0] == ExitCode.OK
    assert run("promote", "1", "--to", "champion")[0] == ExitCode.OK
    assert run("promote", "2", "--to", "paper")[0] == ExitCode.OK

    code, _, err = run("promote", "2", "--to", "champion")
    assert code == ExitCode.USAGE
    assert err.startswith("error: entry 2 cannot replace champion entry 1 of GOOG")
    assert "registry compare 2" in err and len(err.splitlines()) == 1

    assert run("demote", "1", "--why", "drawdown past the limit")[0] == ExitCode.OK

    code, out, _ = run("list")
    assert [line.split()[:2] for line in out.splitlines()[2:]] == [
        ["1", "retired"],
        ["2", "paper"],
    ]
    code, out, _ = run("history", "1")
    rows = [line.split(None, 5)[3:] for line in out.splitlines()[2:]]  # after date, time, id
    assert [row[:2] for row in rows] == [
        ["-", "candidate"],
        ["candidate", "paper"],
        ["paper", "champion"],
        ["champion", "retired"],
    ]
    assert rows[1][2].endswith("sane validation") and rows[3][2].endswith("past the limit")
    code, out, _ = run("show", "1")
    assert code == ExitCode.OK and out.startswith("entry 1: GOOG stage_1_ppo (checkpoint)")
    assert "validation split (used for selection)" in out
    assert run("show", "7")[2] == f"error: no entry 7 in model registry sqlite:///{db}\n"


@pytest.mark.parametrize("action", [["show"], ["promote", "1"], ["demote", "1"]])
def test_bad_arguments_exit_2(tmp_path: Path, action: list[str]) -> None:
    """No entry ID, no --to, no --why: argparse's usage line and exit 2."""
    with pytest.raises(SystemExit) as stopped:
        main(["registry", "--registry", str(tmp_path / "r.sqlite"), *action])
    assert stopped.value.code == ExitCode.USAGE


def test_a_search_s_validated_strategies_are_recorded_from_the_command_line(
    tmp_path: Path, capsys
) -> None:
    spec = StrategySpec.build("trend-following/macd", ["GOOG"])
    strategies = make_strategy_registry(tmp_path / "search" / "strategies.sqlite", spec)
    registry = ["registry", "--registry", str(tmp_path / "registry.sqlite")]
    assert main([*registry, "record", str(strategies)]) == ExitCode.OK
    assert main([*registry, "record", str(strategies), "--strategy", spec.spec_id]) == 0
    assert main([*registry, "list"]) == ExitCode.OK
    printed = capsys.readouterr().out
    assert printed.count("strategy trend-following/macd") == 3  # recorded once, shown thrice
    with ModelRegistry(tmp_path / "registry.sqlite") as opened:
        (entry,) = opened.entries()
    assert (entry.kind, entry.strategy_id, entry.state) == ("strategy", spec.spec_id, CANDIDATE)
