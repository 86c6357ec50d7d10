"""rnnfast's version: the one place it is written (pyproject.toml reads it as the dynamic version)."""
__version__ = "0.1.0"
