"""The bottom layer: the vocabulary every other package shares.

Trading values (``trading``: orders, fills, positions, instruments, bars), the policy contract
(``policy``), the checkpoint format (``checkpoint``) and the one atomic file write (``atomic``).
Nothing here imports anything above it, so any package may import it. Import the modules
directly (``from evotrader.core.trading import Side``); this file re-exports nothing, so that
importing one piece never loads the others (the checkpoint format pulls in torch).
"""
