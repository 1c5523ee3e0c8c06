"""retain: a continual-learning workbench for PyTorch."""

__version__ = "0.1.0"
