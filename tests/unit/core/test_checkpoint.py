"""The checkpoint format: round trip, atomic writes, and every refusal with its message."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch

import evotrader
from evotrader.core import atomic as atomic_module
from evotrader.core.checkpoint import (
    CHAMPION_STAGE,
    FORMAT_MARKER,
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    checkpoint_name,
    load_checkpoint,
    save_checkpoint,
)


def _checkpoint(**overrides: Any) -> Checkpoint:
    fields: dict[str, Any] = {
        "kind": "ppo",
        "architecture": {"d_model": 32, "n_layers": 2, "heads": ["policy", "value"]},
        "state_dict": {
            "encoder.weight": torch.randn(4, 3),
            "encoder.bias": torch.zeros(4, dtype=torch.float64),
            "steps": torch.tensor([7], dtype=torch.int64),
            "mask": torch.tensor([True, False]),
        },
        "hyperparameters": {"lr": 3e-4, "gamma": 0.99, "clip": None},
        "feature_pipeline": {"columns": ["ret_1", "vol_20"], "mean": [0.1, 0.2], "std": [1.0, 2]},
        "env": {"window": 64, "positions": [-1, 0, 1], "agent_state": True, "cost_bps": 1.5},
        "symbol": "GOOG",
        "data_range": {"train_start": "2020-01-01", "train_end": "2022-12-31"},
        "metrics": {"sharpe": 1.25, "max_drawdown": -0.1, "n_trades": 12},
        "extra": {"maml": {"inner_steps": 3}},
    }
    return Checkpoint(**(fields | overrides))


def _write_payload(path: Path, payload: Any) -> Path:
    torch.save(payload, path)
    return path


def _valid_payload() -> dict[str, Any]:
    """What save_checkpoint writes, as a dict the tests can break one field at a time."""
    ck = _checkpoint()
    return {"format": FORMAT_MARKER} | {f.name: getattr(ck, f.name) for f in dataclasses.fields(ck)}


def _no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


# --- round trip --------------------------------------------------------------------------


@pytest.mark.parametrize("map_location", ["cpu", torch.device("cpu")])
def test_round_trip_keeps_every_field_and_dtype(tmp_path: Path, map_location: Any) -> None:
    original = _checkpoint()
    path = save_checkpoint(original, tmp_path / "GOOG_stage_1_ppo.pth")
    loaded = load_checkpoint(path, map_location=map_location)

    assert path == tmp_path / "GOOG_stage_1_ppo.pth"
    for name in ("kind", "architecture", "hyperparameters", "feature_pipeline", "env", "symbol"):
        assert getattr(loaded, name) == getattr(original, name), name
    assert loaded.data_range == original.data_range
    assert loaded.extra == original.extra
    assert loaded.metrics == {"sharpe": 1.25, "max_drawdown": -0.1, "n_trades": 12.0}
    assert all(type(v) is float for v in loaded.metrics.values())
    assert loaded.format_version == FORMAT_VERSION
    assert loaded.code_version == evotrader.__version__
    assert loaded.created_at == original.created_at
    assert loaded.state_dict.keys() == original.state_dict.keys()
    for key, tensor in original.state_dict.items():
        assert loaded.state_dict[key].dtype == tensor.dtype, key
        assert loaded.state_dict[key].device.type == "cpu"
        assert torch.equal(loaded.state_dict[key], tensor), key


def test_file_is_a_plain_dict_that_the_safe_loader_reads(tmp_path: Path) -> None:
    path = save_checkpoint(_checkpoint(), tmp_path / "a.pth")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT_MARKER
    assert raw["format_version"] == FORMAT_VERSION
    assert raw["kind"] == "ppo"
    json.dumps({k: v for k, v in raw.items() if k != "state_dict"}, allow_nan=True)


def test_created_at_is_utc_iso_8601() -> None:
    created = datetime.fromisoformat(_checkpoint().created_at)
    assert created.utcoffset() == timedelta(0)


def test_non_tensor_fields_are_stored_as_json(tmp_path: Path) -> None:
    ck = _checkpoint(env={"positions": (-1, 0, 1), 5: "x"}, metrics={"nan": float("nan")})
    loaded = load_checkpoint(save_checkpoint(ck, tmp_path / "a.pth"))
    assert loaded.env == {"positions": [-1, 0, 1], "5": "x"}
    assert loaded.metrics["nan"] != loaded.metrics["nan"]


def test_tensors_are_saved_detached_contiguous_and_compact(tmp_path: Path) -> None:
    big = torch.randn(100_000)
    weight = torch.randn(3, 4, requires_grad=True)
    ck = _checkpoint(state_dict={"slice": big[10:20], "w": weight, "t": torch.randn(4, 3).t()})
    path = save_checkpoint(ck, tmp_path / "a.pth")

    loaded = load_checkpoint(path).state_dict
    assert path.stat().st_size < 20_000  # not the 400 kB storage the slice shares
    assert torch.equal(loaded["slice"], big[10:20])
    assert not loaded["w"].requires_grad and torch.equal(loaded["w"], weight.detach())
    assert loaded["t"].is_contiguous() and torch.equal(loaded["t"], ck.state_dict["t"])
    assert weight.requires_grad  # the caller's tensors are untouched


def test_save_creates_the_parent_directory(tmp_path: Path) -> None:
    path = save_checkpoint(_checkpoint(), str(tmp_path / "run" / "stage" / "a.pth"))
    assert path.is_file()
    assert _no_temp_files(path.parent)


# --- atomicity ---------------------------------------------------------------------------


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    path = save_checkpoint(_checkpoint(kind="old"), tmp_path / "a.pth")
    before = path.read_bytes()

    def broken_save(obj: Any, file: io.BufferedWriter) -> None:
        file.write(b"PK\x03\x04 half a checkpoint")
        raise error

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError if isinstance(error, Exception) else KeyboardInterrupt):
        save_checkpoint(_checkpoint(kind="new"), path)

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.pth"]
    monkeypatch.undo()
    assert load_checkpoint(path).kind == "old"


def test_failed_write_names_the_path_and_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_save(obj: Any, file: io.BufferedWriter) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match=r"a\.pth.*could not write.*disk full"):
        save_checkpoint(_checkpoint(), tmp_path / "a.pth")
    assert list(tmp_path.iterdir()) == []


def test_rename_failure_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(atomic_module.os, "replace", broken_replace)
    with pytest.raises(CheckpointError, match="rename failed"):
        save_checkpoint(_checkpoint(), tmp_path / "a.pth")
    assert list(tmp_path.iterdir()) == []


def test_parent_that_is_a_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(CheckpointError, match="cannot create its directory"):
        save_checkpoint(_checkpoint(), tmp_path / "blocker" / "a.pth")


# --- invalid fields on save: nothing written ----------------------------------------------


class _NotJson:
    pass


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hyperparameters": {"lr": _NotJson()}}, r"field 'hyperparameters' is not JSON-able"),
        ({"extra": {"a": torch.ones(2)}}, r"field 'extra' is not JSON-able"),
        ({"state_dict": {"w": [1.0, 2.0]}}, r"state_dict\['w'\] is a list, not a torch.Tensor"),
        ({"state_dict": {1: torch.ones(1)}}, r"state_dict key 1 is not a str"),
        ({"state_dict": [torch.ones(1)]}, r"field 'state_dict' must be a dict of tensors"),
        ({"kind": ""}, r"field 'kind' must be a non-empty str"),
        ({"symbol": 5}, r"field 'symbol' must be a non-empty str"),
        ({"architecture": ["d_model", 32]}, r"field 'architecture' must be a dict"),
        (
            {"data_range": {"train_start": 2020}},
            r"'data_range' values must be str: \['train_start'\]",
        ),
        ({"metrics": {"sharpe": "high"}}, r"'metrics' values must be numbers: \['sharpe'\]"),
        ({"metrics": {"ok": True}}, r"'metrics' values must be numbers: \['ok'\]"),
        ({"format_version": 2}, r"writes format_version 1, not 2"),
        ({"format_version": True}, r"field 'format_version' must be an int"),
    ],
)
def test_invalid_field_on_save_writes_nothing(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    target = tmp_path / "run" / "a.pth"
    with pytest.raises(CheckpointError, match=message) as info:
        save_checkpoint(_checkpoint(**overrides), target)
    assert str(target) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_invalid_save_leaves_an_existing_file_untouched(tmp_path: Path) -> None:
    path = save_checkpoint(_checkpoint(), tmp_path / "a.pth")
    before = path.read_bytes()
    with pytest.raises(CheckpointError):
        save_checkpoint(_checkpoint(env={"bad": {1, 2}}), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.pth"]


# --- load errors -------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pth: no such file"):
        load_checkpoint(tmp_path / "nope.pth")


def test_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "a.pth").touch()
    with pytest.raises(CheckpointError, match=r"a\.pth: file is empty"):
        load_checkpoint(tmp_path / "a.pth")


def test_truncated_file(tmp_path: Path) -> None:
    data = save_checkpoint(_checkpoint(), tmp_path / "good.pth").read_bytes()
    (tmp_path / "half.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"half\.pth: not a torch zip archive - truncated"):
        load_checkpoint(tmp_path / "half.pth")


def test_random_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.pth").write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy())
    with pytest.raises(CheckpointError, match=r"a\.pth: not a torch zip archive"):
        load_checkpoint(tmp_path / "a.pth")


def test_corrupted_zip(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "a.pth", "w") as archive:
        archive.writestr("notes.txt", "a zip, but not a torch archive")
    with pytest.raises(CheckpointError, match=r"a\.pth: unreadable torch archive"):
        load_checkpoint(tmp_path / "a.pth")


class _Payload:
    """Unpickling this creates a marker directory: proof the loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def test_pickled_object_in_a_torch_file_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _write_payload(tmp_path / "a.pth", {"format": FORMAT_MARKER, "x": _Payload(marker)})
    with pytest.raises(
        CheckpointError,
        match=r"a\.pth: refused for security - it needs the pickled object \w+\.mkdir",
    ):
        load_checkpoint(path)
    assert not marker.exists()


def test_custom_class_in_a_torch_file_is_refused(tmp_path: Path) -> None:
    path = _write_payload(tmp_path / "a.pth", _valid_payload() | {"extra": _NotJson()})
    with pytest.raises(CheckpointError, match=r"refused for security.*_NotJson.*weights_only=True"):
        load_checkpoint(path)


def test_raw_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        (tmp_path / "a.pth").write_bytes(pickle.dumps(_Payload(marker), protocol=protocol))
        with pytest.raises(CheckpointError, match=r"raw pickles .* not accepted"):
            load_checkpoint(tmp_path / "a.pth")
    assert not marker.exists()


def test_bare_state_dict_is_not_ours(tmp_path: Path) -> None:
    path = _write_payload(tmp_path / "a.pth", {"w": torch.ones(2), "b": torch.zeros(1)})
    with pytest.raises(
        CheckpointError, match=r"not an evotrader checkpoint - found a bare state_dict of 2 tensors"
    ):
        load_checkpoint(path)


def test_foreign_dict_is_not_ours(tmp_path: Path) -> None:
    path = _write_payload(tmp_path / "a.pth", {"model": {"w": torch.ones(2)}, "epoch": 3})
    with pytest.raises(
        CheckpointError,
        match=r"without \"format\": \"evotrader-checkpoint\" \(keys: 'epoch', 'model'\)",
    ):
        load_checkpoint(path)


def test_non_dict_is_not_ours(tmp_path: Path) -> None:
    path = _write_payload(tmp_path / "a.pth", torch.ones(3))
    with pytest.raises(CheckpointError, match="found a Tensor, expected a dict"):
        load_checkpoint(path)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    payload = _valid_payload() | {"format_version": FORMAT_VERSION + 1, "code_version": "9.0"}
    path = _write_payload(tmp_path / "a.pth", payload)
    with pytest.raises(CheckpointError, match=r"format_version 2 is newer .* evotrader '9.0'"):
        load_checkpoint(path)


@pytest.mark.parametrize("version", [0, "1", None, 1.0])
def test_invalid_format_version(tmp_path: Path, version: Any) -> None:
    path = _write_payload(tmp_path / "a.pth", _valid_payload() | {"format_version": version})
    with pytest.raises(CheckpointError, match="format_version must be a positive int"):
        load_checkpoint(path)


def test_missing_and_unexpected_fields_are_named(tmp_path: Path) -> None:
    payload = _valid_payload()
    del payload["metrics"], payload["env"]
    path = _write_payload(tmp_path / "a.pth", payload | {"optimizer": {}})
    with pytest.raises(
        CheckpointError,
        match=r"missing fields \['env', 'metrics'\]; unexpected fields \['optimizer'\]",
    ):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kind", 3, r"field 'kind' must be a non-empty str, found int 3"),
        ("env", [1], r"field 'env' must be a dict, found list"),
        ("state_dict", {"w": [1.0]}, r"state_dict\['w'\] is a list"),
        ("architecture", {"w": torch.ones(1)}, r"field 'architecture' is not JSON-able"),
        ("metrics", {"sharpe": None}, r"'metrics' values must be numbers"),
    ],
)
def test_wrongly_typed_fields_on_load_are_named(
    tmp_path: Path, field: str, value: Any, message: str
) -> None:
    path = _write_payload(tmp_path / "a.pth", _valid_payload() | {field: value})
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_weight_is_refused_naming_its_tensor(tmp_path: Path, bad: float) -> None:
    payload = _valid_payload()
    weight = payload["state_dict"]["encoder.weight"].clone()
    weight[2, 1] = bad
    path = _write_payload(tmp_path / "a.pth", payload | {"state_dict": {"encoder.weight": weight}})
    with pytest.raises(
        CheckpointError, match=rf"{path}: state_dict\['encoder.weight'\] holds 1 non-finite"
    ):
        load_checkpoint(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_normalisation_statistics_are_refused(tmp_path: Path, bad: float) -> None:
    pipeline = {"columns": ["ret_1", "vol_20"], "mean": [0.1, 0.2], "std": [1.0, bad]}
    path = save_checkpoint(_checkpoint(feature_pipeline=pipeline), tmp_path / "a.pth")
    with pytest.raises(
        CheckpointError, match=rf"{path}: normalisation statistic feature_pipeline\['std'\]\[1\]"
    ):
        load_checkpoint(path)


def test_non_finite_metrics_and_integer_tensors_load(tmp_path: Path) -> None:
    """A Sortino without losses is inf; byte tensors (the agent's memory) are never NaN."""
    state = {"memory.archive": torch.frombuffer(bytearray(b"\xff\x00"), dtype=torch.uint8)}
    checkpoint = _checkpoint(state_dict=state, metrics={"sortino": float("inf")})
    loaded = load_checkpoint(save_checkpoint(checkpoint, tmp_path / "a.pth"))
    assert loaded.metrics["sortino"] == float("inf")


def test_a_symbol_that_disagrees_with_the_data_reference_is_refused(tmp_path: Path) -> None:
    data = {"source": "embedded", "symbol": "GOOG", "options": {}}
    path = _write_payload(
        tmp_path / "a.pth", _valid_payload() | {"symbol": "AAPL", "extra": {"data": data}}
    )
    with pytest.raises(CheckpointError, match=r"'symbol' is 'AAPL' but its data reference"):
        load_checkpoint(path)


def test_checkpoint_error_is_a_value_error() -> None:
    assert issubclass(CheckpointError, ValueError)


# --- names -------------------------------------------------------------------------------


def test_checkpoint_name() -> None:
    assert checkpoint_name("GOOG", "stage_1_ppo") == "GOOG_stage_1_ppo.pth"
    assert checkpoint_name("GOOG", CHAMPION_STAGE) == "GOOG_autonomous_final.pth"


@pytest.mark.parametrize(("symbol", "stage"), [("", "stage_1_ppo"), ("../x", "s"), ("A", "a\\b")])
def test_checkpoint_name_refuses_unsafe_parts(symbol: str, stage: str) -> None:
    with pytest.raises(ValueError, match="without path separators"):
        checkpoint_name(symbol, stage)


def test_no_temp_file_names_in_a_normal_save(tmp_path: Path) -> None:
    for _ in range(3):
        save_checkpoint(_checkpoint(), tmp_path / "a.pth")
    assert sorted(os.listdir(tmp_path)) == ["a.pth"]
