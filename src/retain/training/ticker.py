"""Progress within a task: the run loops report each step to a :class:`Ticker`, which passes on
at most one report per ``every`` seconds (a clock read per step, nothing else), so a bar or a
log line moves during a long task and not only when an epoch or a task ends."""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[int, int, str], None]  # (steps done, steps total, description)

#: The fewest seconds between two reports of steps within a task.
EVERY = 0.5


class Ticker:
    """Throttled step reports for one run: ``start_task`` when a task begins, ``step`` after each
    optimiser step (``n``: steps done in the task so far)."""

    def __init__(self, progress: Progress | None, total: int, every: float = EVERY):
        self.progress, self.total, self.every = progress, total, every
        self.base, self.desc, self.next = 0, "", 0.0

    def start_task(self, done: int, desc: str) -> None:
        self.base, self.desc = done, desc
        self.next = time.monotonic() + self.every
        if self.progress:
            self.progress(done, self.total, desc)

    def step(self, n: int) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now >= self.next:
            self.next = now + self.every
            self.progress(self.base + n, self.total, self.desc)
