"""Live trading: one broker interface, a sim and an IBKR broker, the runner and its journal."""
