"""The one checkpoint format shared by every training stage (PPO, MoE, MAML, autonomous).

A checkpoint file is a plain dict of tensors and JSON values written by ``torch.save``. It is
read back with ``torch.load(weights_only=True)`` only, so loading a file can never run code from
it, and it carries everything needed to rebuild and judge the policy without the training
config: architecture, feature pipeline state, env settings, data range and metrics. Files are
written atomically, so a crash mid-save never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import zipfile
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import torch
import yaml

from evotrader import __version__
from evotrader.core.atomic import write_atomic

FORMAT_VERSION = 1
FORMAT_MARKER = "evotrader-checkpoint"
CHAMPION_STAGE = "autonomous_final"
RUN_CONFIG = "config.yaml"  # a run folder's resolved config; its `stages` list the run's order
# Kinds whose policy trades a universe (target weights per asset), not one symbol: their
# ``extra`` names a universe reference and a PortfolioSpec instead of a data reference.
PORTFOLIO_KINDS = frozenset(
    {"portfolio_ppo", "portfolio_maml", "portfolio_moe", "portfolio_autonomous"}
)


class CheckpointError(ValueError):
    """A checkpoint cannot be saved or loaded; the message names the path and the problem."""


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """One trained policy and everything needed to rebuild, reuse and audit it.

    Non-tensor fields are stored in their JSON form (tuples become lists, dict keys strings),
    so what a load gives back is exactly JSON data. ``eq=False`` because comparing tensors
    with ``==`` has no single truth value; compare fields explicitly.
    """

    kind: str
    architecture: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    hyperparameters: dict[str, Any]
    feature_pipeline: dict[str, Any]
    env: dict[str, Any]
    symbol: str
    data_range: dict[str, str]
    metrics: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    code_version: str = __version__
    created_at: str = field(default_factory=_utc_now)


_FIELDS = tuple(f.name for f in fields(Checkpoint))
_PAYLOAD_KEYS = frozenset(("format", *_FIELDS))
_NAMED_STRINGS = ("kind", "symbol", "code_version", "created_at")
_JSON_DICTS = ("architecture", "hyperparameters", "feature_pipeline", "env", "extra", "data_range")


def checkpoint_name(symbol: str, stage: str) -> str:
    """File name of a stage's checkpoint, ``{symbol}_{stage}.pth`` (e.g. ``GOOG_stage_1_ppo.pth``).

    The autonomous champion uses ``stage=CHAMPION_STAGE``. Separators are refused so a symbol
    can never place the file outside the run directory.
    """
    for label, part in (("symbol", symbol), ("stage", stage)):
        if not part or "/" in part or "\\" in part:
            raise ValueError(
                f"checkpoint {label} must be non-empty without path separators: {part!r}"
            )
    return f"{symbol}_{stage}.pth"


def find_champion(runs_dir: str | Path, symbol: str) -> Path | None:
    """``{symbol}_autonomous_final.pth`` of the most recently modified run that has one."""
    for run in _runs_newest_first(Path(runs_dir)):
        champion = run / checkpoint_name(symbol, CHAMPION_STAGE)
        if champion.exists():
            return champion
    return None


def find_checkpoint(runs_dir: str | Path, symbol: str) -> Path:
    """The champion if any run has one, else the most advanced stage of the latest run.

    The backtest runner and the live bot both load through this, so they pick the same file.
    """
    runs_dir = Path(runs_dir)
    champion = find_champion(runs_dir, symbol)
    if champion is not None:
        return champion
    for run in _runs_newest_first(runs_dir):
        candidate = _most_advanced(run, symbol)
        if candidate is not None:
            return candidate
    raise FileNotFoundError(
        f"no checkpoint for {symbol} under {runs_dir}/; train one with "
        f"`python run_training.py data.symbol={symbol}` or pass --checkpoint PATH"
    )


def _most_advanced(run: Path, symbol: str) -> Path | None:
    """The run's stage checkpoint latest in the stage order its config.yaml records (the
    training sequence); without one, the stage checkpoint written last."""
    found = {path.name: path for path in run.glob(checkpoint_name(symbol, "*"))}
    found.pop(checkpoint_name(symbol, CHAMPION_STAGE), None)
    try:
        stages = yaml.safe_load((run / RUN_CONFIG).read_text()).get("stages") or []
    except (OSError, yaml.YAMLError, AttributeError):
        stages = []
    for stage in reversed(stages):
        if checkpoint_name(symbol, stage) in found:
            return found[checkpoint_name(symbol, stage)]
    return max(found.values(), key=lambda path: path.stat().st_mtime, default=None)


def _runs_newest_first(runs_dir: Path) -> list[Path]:
    runs = (run for run in runs_dir.glob("*") if run.is_dir())
    return sorted(runs, key=lambda run: run.stat().st_mtime, reverse=True)


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> Path:
    """Validate ``checkpoint`` and write it atomically to ``path``; returns the path.

    Everything is checked before anything touches the disk. The file is written to a temporary
    name in the same directory, fsynced, then renamed over ``path``, so readers see either the
    old file or the complete new one; on failure the temporary file is removed.
    """
    path = Path(path)
    if checkpoint.format_version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: this code writes format_version {FORMAT_VERSION}, "
            f"not {checkpoint.format_version!r}"
        )
    raw = {"format": FORMAT_MARKER} | {name: getattr(checkpoint, name) for name in _FIELDS}
    payload = _checked(raw, path)
    payload["state_dict"] = {k: _portable(v) for k, v in payload["state_dict"].items()}

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path}: cannot create its directory: {exc}") from exc
    try:
        write_atomic(path, lambda file: torch.save(payload, file))
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path}: could not write: {exc}") from exc
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``, with tensors on ``map_location``.

    Only the safe loader (``weights_only=True``) is ever used: a file that needs arbitrary
    pickled objects is refused, never retried unsafely. A NaN or inf in a weight or in the
    normalisation statistics is refused too: such a policy still acts (a NaN network picks
    its first action every bar), so it would trade garbage rather than fail.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: not a regular file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path}: file is empty (an interrupted copy or write?)")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"checkpoint {path}: not a torch zip archive - truncated, corrupted, or not a "
            "checkpoint at all (raw pickles and legacy torch files are not accepted)"
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f"the pickled object {found[1]}" if found else "its pickle instructions"
        raise CheckpointError(
            f"checkpoint {path}: refused for security - it needs {what}, which the safe loader "
            "(torch.load weights_only=True) does not allow; evotrader checkpoints hold only "
            "tensors and JSON values"
        ) from None
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint {path}: unreadable torch archive: {reason}") from exc

    if not isinstance(obj, dict):
        raise CheckpointError(
            f"checkpoint {path}: not an evotrader checkpoint - found a {type(obj).__name__}, "
            "expected a dict"
        )
    if obj.get("format") != FORMAT_MARKER:
        raise CheckpointError(f"checkpoint {path}: not an evotrader checkpoint - {_describe(obj)}")
    version = obj.get("format_version")
    if type(version) is not int or version < 1:
        raise CheckpointError(
            f"checkpoint {path}: format_version must be a positive int, found {version!r}"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: format_version {version} is newer than this code supports "
            f"({FORMAT_VERSION}); it was written by evotrader {obj.get('code_version')!r}, "
            "upgrade evotrader to read it"
        )
    payload = _checked(obj, path)
    _check_finite(payload, path)
    return Checkpoint(**{name: payload[name] for name in _FIELDS})


def _checked(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """The payload with every field type-checked and non-tensor fields in their JSON form.

    Shared by save and load so a file that saves is exactly a file that loads.
    """
    problem = _key_problem(set(raw))
    if problem:
        raise CheckpointError(f"checkpoint {path}: {problem}")
    payload: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "state_dict":
            payload[name] = _checked_state_dict(value, path)
            continue
        try:
            payload[name] = json.loads(json.dumps(value, allow_nan=True))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {path}: field {name!r} is not JSON-able: {exc}"
            ) from exc

    for name in _NAMED_STRINGS:
        if not isinstance(payload[name], str) or not payload[name]:
            _wrong(path, name, "a non-empty str", raw[name])
    if type(payload["format_version"]) is not int:
        _wrong(path, "format_version", "an int", raw["format_version"])
    for name in _JSON_DICTS:
        if not isinstance(payload[name], dict):
            _wrong(path, name, "a dict", raw[name])
    bad = [k for k, v in payload["data_range"].items() if not isinstance(v, str)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: field 'data_range' values must be str: {bad}")
    metrics = payload["metrics"]
    if not isinstance(metrics, dict):
        _wrong(path, "metrics", "a dict of numbers", raw["metrics"])
    bad = [k for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, int | float)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: field 'metrics' values must be numbers: {bad}")
    payload["metrics"] = {k: float(v) for k, v in metrics.items()}
    data = payload["extra"].get("data")
    if isinstance(data, dict) and "symbol" in data and data["symbol"] != payload["symbol"]:
        raise CheckpointError(
            f"checkpoint {path}: field 'symbol' is {payload['symbol']!r} but its data reference "
            f"(extra['data']['symbol']) is {data['symbol']!r}; one of them was edited"
        )
    return payload


def _check_finite(payload: dict[str, Any], path: Path) -> None:
    """Every float weight and every normalisation statistic must be a finite number.

    Integer and bool tensors (step counters, the agent's memory and forecaster bytes) are
    finite by construction. Metrics may legitimately be inf (a Sortino without losses).
    """
    for key, tensor in payload["state_dict"].items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int(tensor.numel() - torch.isfinite(tensor).sum())
            if bad:
                raise CheckpointError(
                    f"checkpoint {path}: state_dict[{key!r}] holds {bad} non-finite value(s) "
                    "(NaN or inf); a diverged or damaged policy is never loaded"
                )
    for where, value in _numbers(payload["feature_pipeline"], "feature_pipeline"):
        if not math.isfinite(value):
            raise CheckpointError(
                f"checkpoint {path}: normalisation statistic {where} is {value}; the feature "
                "pipeline's statistics must be finite"
            )


def _numbers(value: Any, where: str) -> list[tuple[str, float]]:
    """Every float in a JSON value, with where it sits (e.g. ``feature_pipeline['std'][3]``)."""
    if isinstance(value, float):
        return [(where, value)]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _numbers(v, f"{where}[{k!r}]")]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in _numbers(v, f"{where}[{i}]")]
    return []


def _key_problem(keys: set[Any]) -> str:
    missing, unexpected = _PAYLOAD_KEYS - keys, keys - _PAYLOAD_KEYS
    parts = []
    if missing:
        parts.append(f"missing fields {sorted(missing)}")
    if unexpected:
        parts.append(f"unexpected fields {sorted(unexpected, key=str)}")
    return "; ".join(parts)


def _checked_state_dict(value: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict):
        _wrong(path, "state_dict", "a dict of tensors", value)
    for key, tensor in value.items():
        if not isinstance(key, str):
            raise CheckpointError(f"checkpoint {path}: state_dict key {key!r} is not a str")
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(
                f"checkpoint {path}: state_dict[{key!r}] is a {type(tensor).__name__}, "
                "not a torch.Tensor"
            )
    return dict(value)


def _wrong(path: Path, name: str, expected: str, found: Any) -> NoReturn:
    raise CheckpointError(
        f"checkpoint {path}: field {name!r} must be {expected}, found {type(found).__name__} "
        f"{found!r:.80}"
    )


def _describe(obj: dict[Any, Any]) -> str:
    """What a foreign dict looks like, so the error says what was actually found."""
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return f"found a bare state_dict of {len(obj)} tensors (e.g. {next(iter(obj))!r})"
    keys = sorted(map(repr, obj))
    shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
    return f'found a dict without "format": "{FORMAT_MARKER}" (keys: {shown or "none"})'


def _portable(tensor: torch.Tensor) -> torch.Tensor:
    """Detached, contiguous, on CPU, owning exactly its bytes.

    CPU so a CUDA-trained checkpoint loads anywhere; the clone of views keeps torch.save from
    writing the whole storage a slice happens to share.
    """
    tensor = tensor.detach().cpu().contiguous()
    if tensor.storage_offset() or tensor.untyped_storage().nbytes() != tensor.nbytes:
        tensor = tensor.clone()
    return tensor
