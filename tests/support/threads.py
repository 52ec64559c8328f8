"""Torch threads for the small models the tests train on busy shared cores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Torch on ``threads`` threads inside the block, then as before. Small models train
    fastest on one: on busy shared cores extra threads only contend (the bot does this)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
