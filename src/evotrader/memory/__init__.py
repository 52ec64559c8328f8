"""Episodic memory: significant market events, detected, stored and recalled by similarity."""

from evotrader.memory.episodic_memory import (
    EpisodicMemoryError,
    ExternalMemory,
    MemoryConfig,
    Retrieval,
    rarity,
)
from evotrader.memory.events import CRITERIA, EventConfig, EventDetector, Events

__all__ = [
    "CRITERIA",
    "EpisodicMemoryError",
    "EventConfig",
    "EventDetector",
    "Events",
    "ExternalMemory",
    "MemoryConfig",
    "Retrieval",
    "rarity",
]
