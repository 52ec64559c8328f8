"""How an entry point ends: one ``error:`` line and a distinct exit code, never a traceback.

Every script's work runs through ``run_guarded``. Expected failures (bad data, configuration,
checkpoints, broker replies, a run folder that refuses the run, Ray start-up, Ctrl-C) print
``error: <what and where>`` on stderr and return their own exit code, so a shell or a
scheduler can tell them apart. ``--debug`` lets the exception through, traceback and all.
Before the work starts, ``configure_logging`` sends the library's progress lines (its
loggers at INFO) to stdout, next to what the script prints itself.

Importing this module is cheap (no torch, pandas or SQLAlchemy): a script imports it before
parsing its arguments, and ``--help`` must not wait for the libraries the work needs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    """What an entry point's exit status means; the same numbers for every script."""

    OK = 0
    INTERNAL = 1  # a bug: rerun with --debug and report the traceback
    USAGE = 2  # bad arguments or configuration (argparse uses 2 as well)
    HALTED = 3  # the live bot stopped itself on a risk breaker or the kill switch
    BROKER = 4  # the broker refused, disconnected or could not be reached
    DATA = 5  # bars that fail validation, a missing or unreadable data file
    CHECKPOINT = 6  # a checkpoint that cannot be loaded or may not be traded
    RUN = 7  # a run folder refuses the run: another config, or another process holds it
    RAY = 8  # Ray could not start or could not join the cluster
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


Failures = Sequence[tuple[type[BaseException] | tuple[type[BaseException], ...], ExitCode]]

TRADE_AS_HELP = (
    "trade the checkpoint's policy on this symbol's bars, though it was trained on another "
    "(without it, a --symbol other than the checkpoint's is refused)"
)


def common_failures() -> Failures:
    """Every script's expected failures, checked in order, so a subclass placed before its base
    gets its own code. Imported on a failure only: the checkpoint format pulls in torch."""
    from evotrader.core.checkpoint import CheckpointError
    from evotrader.data.errors import DataError
    from evotrader.live.broker import BrokerError

    return (
        (DataError, ExitCode.DATA),
        (CheckpointError, ExitCode.CHECKPOINT),
        (BrokerError, ExitCode.BROKER),
        (FileNotFoundError, ExitCode.USAGE),
    )


def check_choice(
    parser: argparse.ArgumentParser, flag: str, value: str | None, choices: Sequence[str]
) -> None:
    """argparse's own ``invalid choice`` error, for a flag whose choices come from a module that
    loads heavy libraries: checked after parsing, so that ``--help`` does not import them."""
    if value is not None and value not in choices:
        listed = ", ".join(map(repr, choices))
        parser.error(f"argument {flag}: invalid choice: {value!r} (choose from {listed})")


def run_guarded(work: Callable[[], int], *, debug: bool, failures: Failures = ()) -> int:
    """Run ``work``; an expected failure becomes one ``error:`` line and its exit code.

    ``failures`` come before ``common_failures()``. Anything unexpected is a bug: it gets one
    line too, with a pointer to ``--debug``, and exit code 1.
    """
    configure_logging()
    try:
        return work()
    except KeyboardInterrupt:
        if debug:
            raise
        fail("interrupted (Ctrl-C); nothing half-written was kept, rerun to continue")
        return ExitCode.INTERRUPTED
    except Exception as error:
        if debug:
            raise
        for kinds, code in (*failures, *common_failures()):
            if isinstance(error, kinds):
                fail(one_line(error))
                return code
        fail(
            f"unexpected {type(error).__name__}: {one_line(error)} "
            "(a bug: rerun with --debug for the traceback)"
        )
        return ExitCode.INTERNAL


def configure_logging() -> None:
    """The library's progress on stdout as plain lines: ``evotrader`` loggers from INFO, other
    libraries' from WARNING. The stdout handler is only added where logging has none yet."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
    logging.getLogger("evotrader").setLevel(logging.INFO)


def fail(message: str) -> None:
    """The one line a user reads when an entry point gives up."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def one_line(error: BaseException) -> str:
    """An exception's message on one line (some libraries wrap theirs over several)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__
