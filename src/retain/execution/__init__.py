"""Layer 3, where and how runs execute: in-process, a process pool or Ray (executors.py), with
progress bars (progress.py); each run becomes a record (execute.py); workers end with their driver
(lifetime.py)."""
