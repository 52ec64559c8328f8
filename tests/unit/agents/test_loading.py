"""policy_from_checkpoint looks a checkpoint's kind up in the checkpoint-kind registry."""

from __future__ import annotations

import pytest
from tests.support.checkpoints import model_checkpoint

from evotrader.agents.loading import BUILDERS, policy_from_checkpoint
from evotrader.core.checkpoint import CheckpointError


def test_the_kinds_the_stages_write_have_builders() -> None:
    assert BUILDERS.names() == ("autonomous", "maml", "moe", "ppo")


def test_an_unknown_kind_is_a_checkpoint_error_listing_the_kinds() -> None:
    alien = model_checkpoint("alien")
    known = "available: autonomous, maml, moe, ppo"
    with pytest.raises(CheckpointError, match=f"^unknown checkpoint kind 'alien'; {known}$"):
        policy_from_checkpoint(alien)
