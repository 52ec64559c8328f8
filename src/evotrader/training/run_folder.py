"""A run folder bound to what its results depend on: fingerprint, lock and resolved config.

``runs/<run_name>/fingerprint.json`` records every resolved setting that can change a result
(as flat keys such as ``stage_1_ppo.lr``) and the bars the run was given (range, row count and
a content hash), plus the stages that have started. A rerun of the same name compares:

- shared keys (seed, data, features, env, model, the bars) are bound once any stage has
  started, since every stage's results depend on them;
- a stage's own keys (``stage_2_moe.*``) are bound once that stage has started; until then
  they may change, so a stage can be added to a finished run or retuned before it runs;
- keys that only name or place a run (``UNBOUND_KEYS``) never bind.

A bound key that changed refuses the run, naming each key with its old and new value; nothing
is rewritten. ``new_run`` starts a fresh run instead, under ``<run_name>-<digest>``, a name
that depends on the settings only, so the same command resumes that run next time. A folder
with results but no fingerprint (made by an older version) is refused the same way.
``.lock`` holds an exclusive ``flock`` for the run's whole life: a second run of the same
folder is refused, naming the holder, and the kernel drops the lock when the holder dies,
even by ``kill -9``.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from evotrader.config import TrainingConfig
from evotrader.core.atomic import write_atomic

FINGERPRINT_FILE = "fingerprint.json"
CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"
FINGERPRINT_VERSION = 1
# Top-level keys that cannot change a result: the run's name and place, where the model
# registry indexes its checkpoints, the profile's name
# (the values it selects are fingerprinted), which stages this command runs (a finished stage
# is never rerun, so its result does not depend on the list) and where Ray runs (every stage
# seeds its work so that results do not depend on the cluster).
UNBOUND_KEYS = frozenset({"run_name", "runs_dir", "registry_url", "profile", "stages", "ray"})

log = logging.getLogger(__name__)


class RunFolderError(Exception):
    """The run folder refuses this run: other settings, another process, or unreadable state."""


def fingerprint_values(config: TrainingConfig, bars: pd.DataFrame) -> dict[str, Any]:
    """Every setting that can change a result, as flat dotted keys, plus the bars given."""
    settings = dataclasses.asdict(config)
    values = _flatten({k: v for k, v in settings.items() if k not in UNBOUND_KEYS})
    values |= {
        "bars.first": str(bars.index[0]),
        "bars.last": str(bars.index[-1]),
        "bars.rows": len(bars),
        "bars.sha256": bars_digest(bars),
    }
    return values


def bars_digest(bars: pd.DataFrame) -> str:
    """A content hash of the bars: timestamps, column names and values."""
    digest = hashlib.sha256()
    digest.update(f"{bars.index.dtype}|{','.join(map(str, bars.columns))}".encode())
    digest.update(np.ascontiguousarray(bars.index.asi8).tobytes())
    digest.update(np.ascontiguousarray(bars.to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def _flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass
class Fingerprint:
    """The fingerprinted settings of a run folder and the stages that have started in it."""

    values: dict[str, Any]
    started: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        """A stable hash of the settings (started stages aside)."""
        return _digest(self.values)

    def stage_digest(self, stage: str, stage_names: Collection[str]) -> str:
        """A hash of the settings a stage's checkpoint is trained under: the run-wide keys
        and the stage's own section, not other stages' (those may change until they start).
        Checkpoints carry it, so a file can be checked against its folder's fingerprint."""
        return _digest({k: v for k, v in self.values.items() if _binds(k, stage, stage_names)})

    def conflicts(self, values: dict[str, Any], stage_names: Collection[str]) -> list[str]:
        """The bound keys whose value differs in ``values``, as ``key: old -> new``."""
        if not self.started:
            return []
        changed = sorted(
            key
            for key in self.values.keys() | values.keys()
            if _shown(self.values, key) != _shown(values, key)
        )
        bound = [
            key
            for key in changed
            if key.split(".")[0] in self.started or key.split(".")[0] not in stage_names
        ]
        return [f"{key}: {_shown(self.values, key)} -> {_shown(values, key)}" for key in bound]

    def save(self, path: Path) -> None:
        payload = {
            "version": FINGERPRINT_VERSION,
            "digest": self.digest,
            "started": self.started,
            "values": self.values,
        }
        write_atomic(path, json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")

    @classmethod
    def load(cls, path: Path) -> Fingerprint:
        try:
            raw = json.loads(path.read_text())
            if raw["version"] != FINGERPRINT_VERSION:
                raise ValueError(f"version {raw['version']}, expected {FINGERPRINT_VERSION}")
            return cls(dict(raw["values"]), list(raw["started"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RunFolderError(
                f"{path}: unreadable run fingerprint ({error}); move the run folder away"
            ) from error


def _digest(values: dict[str, Any]) -> str:
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _binds(key: str, stage: str, stage_names: Collection[str]) -> bool:
    """Whether ``key`` is run-wide or ``stage``'s own."""
    section = key.split(".")[0]
    return section == stage or section not in stage_names


def settings_note(run: Any, stage: str, stage_names: Collection[str], path: Path) -> str:
    """Whether a checkpoint's recorded settings digest (its ``extra["run"]["fingerprint"]``)
    still matches the fingerprint of the run folder it lies in, as one line to print."""
    record = next(
        (p / FINGERPRINT_FILE for p in path.parents if (p / FINGERPRINT_FILE).exists()), None
    )
    recorded = run.get("fingerprint") if isinstance(run, dict) else None
    if recorded is None:
        return "run settings: the checkpoint records no settings digest (an older version wrote it)"
    if record is None:
        return f"run settings: no {FINGERPRINT_FILE} above {path}, so they cannot be checked"
    if Fingerprint.load(record).stage_digest(stage, stage_names) == recorded:
        return f"run settings: match {record}"
    return (
        f"run settings: DIFFER from {record}: the folder now describes other settings than "
        "this checkpoint was trained with"
    )


def _shown(values: dict[str, Any], key: str) -> str:
    """A value as the refusal shows it (and as two values are compared): JSON, strings bare."""
    if key not in values:
        return "(unset)"
    value = values[key]
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


@dataclass
class RunFolder:
    """An open, locked run folder; ``config`` carries its (possibly new) run name."""

    path: Path
    config: TrainingConfig
    fingerprint: Fingerprint

    def start_stage(self, name: str) -> None:
        """Bind the stage's settings to this folder before it writes anything."""
        if name not in self.fingerprint.started:
            self.fingerprint.started.append(name)
            self.fingerprint.save(self.path / FINGERPRINT_FILE)


@contextmanager
def open_run(
    config: TrainingConfig,
    bars: pd.DataFrame,
    stage_names: Collection[str],
    *,
    new_run: bool = False,
) -> Iterator[RunFolder]:
    """Lock ``runs_dir/run_name``, check it holds results of these settings, record them.

    Call only once the config and data are validated: this creates the folder. With
    ``new_run``, a folder bound to other settings hands over to a fresh one whose name ends
    in the settings' digest.
    """
    values = fingerprint_values(config, bars)
    with ExitStack() as held:
        path = _locked(held, config)
        refusal = _refusal(path, values, stage_names)
        if refusal and new_run:
            held.close()
            name = f"{config.run_name}-{Fingerprint(values).digest[:8]}"
            log.info("%s\nstarting a fresh run instead: run_name=%s", refusal, name)
            config = dataclasses.replace(config, run_name=name)
            path = _locked(held, config)
            refusal = _refusal(path, values, stage_names)
        if refusal:
            hint = "" if new_run else ", or pass --new-run to start a fresh run under a new name"
            raise RunFolderError(
                f"{refusal}; rerun with the settings it was trained with to resume it{hint}"
            )
        yield _record(path, config, values)


def _locked(held: ExitStack, config: TrainingConfig) -> Path:
    path = Path(config.runs_dir) / config.run_name
    path.mkdir(parents=True, exist_ok=True)
    held.enter_context(run_lock(path))
    return path


def _refusal(path: Path, values: dict[str, Any], stage_names: Collection[str]) -> str | None:
    """Why this folder may not take a run of ``values``, or None."""
    record = path / FINGERPRINT_FILE
    if record.exists():
        changes = Fingerprint.load(record).conflicts(values, stage_names)
        if changes:
            return f"{path} holds results of other settings: {', '.join(changes)}"
        return None
    if any(entry.name != LOCK_FILE for entry in path.iterdir()):
        return (
            f"{path} holds files but no {FINGERPRINT_FILE} (an older version made it), so "
            "the settings of its results cannot be checked"
        )
    return None


def _record(path: Path, config: TrainingConfig, values: dict[str, Any]) -> RunFolder:
    """Write the fingerprint and the resolved config; both now describe every result."""
    record = path / FINGERPRINT_FILE
    started = Fingerprint.load(record).started if record.exists() else []
    fingerprint = Fingerprint(values, started)
    fingerprint.save(record)
    write_atomic(path / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.structured(config)))
    return RunFolder(path, config, fingerprint)


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` exclusively, or refuse, naming the process that holds it."""
    handle = open(folder / LOCK_FILE, "a+")  # noqa: SIM115 - held until the context ends
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunFolderError(
                f"{folder} is in use by process {holder} (another run of this run_name); "
                "wait for it to finish or choose another run_name"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing drops the flock
