"""Layer 4, one run: the training loop over a task stream (loop.py), evaluation after each task
(evaluation.py), checkpoints (checkpoint.py) and peak memory (peak_memory.py)."""
