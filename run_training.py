"""Staged training: `python run_training.py [--new-run] [--debug] [key=value ...]`.

Runs the stages listed in configs/training_sequence.yaml under runs/<run_name>/, with Hydra
overrides from the command line. The config and the data are checked before the run folder
is written; the same command again skips completed stages and resumes an interrupted one.
A run folder trained with other settings refuses the run, naming the changed keys, unless
--new-run starts a fresh run under a new name. Works from any working directory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from evotrader.cli import ExitCode, Failures, run_guarded
from evotrader.config import ConfigError, load_training_config
from evotrader.training.pipeline import RayStartError, run_pipeline
from evotrader.training.run_folder import RunFolderError

FAILURES: Failures = (
    (ConfigError, ExitCode.USAGE),
    (RunFolderError, ExitCode.RUN),
    (RayStartError, ExitCode.RAY),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="Hydra overrides, e.g. seed=3"
    )
    parser.add_argument(
        "--new-run",
        action="store_true",
        help="if runs/<run_name> holds results of other settings, start a fresh run under "
        "a new name (printed) instead of refusing",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_intermixed_args(argv)
    return run_guarded(
        lambda: train(args.overrides, new_run=args.new_run), debug=args.debug, failures=FAILURES
    )


def train(overrides: Sequence[str], *, new_run: bool) -> int:
    config = load_training_config(overrides)
    if not config.stages:
        print("No stages configured: `stages` in configs/training_sequence.yaml is empty.")
        return ExitCode.OK
    run_pipeline(config, new_run=new_run)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
