"""Errors that retain raises for bad input. The CLI turns them into one line and exit code 2."""

import re


class RetainError(Exception):
    """Bad input caught at the edge: a config value, a file, a name. Exit code 2."""


class ConfigError(RetainError):
    """A configuration value, flag or study-file entry is unknown or out of range."""


class DataError(RetainError):
    """A data file is missing, truncated, corrupt or of the wrong shape."""


class StoreError(RetainError):
    """The results store cannot be opened or is of an unknown schema."""


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; the run is marked failed with a "diverged" event."""

    def __init__(self, message: str, *, task: int | None = None):
        super().__init__(message)
        self.task = task


def weights_only_refusal(message: str) -> str:
    """The useful part of torch's weights-only refusal (it wraps it in advice to load unsafely)."""
    m = re.search(r"GLOBAL (\S+)", message)
    if m:
        return f"it names the global {m.group(1)}"
    skip = ("Weights only load failed", "Check the documentation", "Please file an issue")
    lines = [ln.strip() for ln in message.splitlines() if ln.strip() and not ln.startswith(skip)]
    return lines[0] if lines else "not a weights-only file"
