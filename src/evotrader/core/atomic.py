"""One way to write a file so that a reader (or a crash) never sees half of it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(
    path: str | os.PathLike[str], data: str | bytes | Callable[[BinaryIO], object]
) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``.

    ``data`` is text (written as UTF-8), bytes, or a callback that writes into the open binary
    file (``torch.save``, ``DataFrame.to_parquet``, an archive writer), so large payloads never
    need to sit in memory twice. The temporary name is unique, so two writers never share one;
    the rename is atomic, so the file is either the old one or the new one, and the temporary
    file is removed whatever fails. The folder is fsynced too, which makes the rename itself
    survive a power cut. The folder must exist. Returns the path written.
    """
    path = Path(path)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        with open(temporary, "xb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path
