"""Metrics of the accuracy matrix: pure functions (matrix.py), registered by name
(registry.py, plugins included) and computed again from the stored matrices whenever a report
is made."""
