"""Training stages, the staged pipeline and the checkpoint format."""
