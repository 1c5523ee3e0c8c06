"""What a run records about where it ran: library versions and the code revision."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    import numpy
    import torch

    import retain

    return {"retain": retain.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


@lru_cache(maxsize=1)
def revision() -> str:
    """The git commit of the retain checkout (with '+dirty' for local changes), or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
