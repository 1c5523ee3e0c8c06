"""Metrics of the accuracy matrix (matrix.py): pure functions, computed again from the stored
matrices whenever a report is made."""
