"""The closest known name to a misspelt one, for the "did you mean" of a refusal."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name nearest to ``name`` (difflib's ratio >= 0.6, case and ``-``/``_`` ignored),
    or None when none is near enough to be a likely typo."""
    def norm(s: str) -> str:
        return s.lower().replace("-", "_")

    by_norm = {norm(k): k for k in known}
    hits = difflib.get_close_matches(norm(name), list(by_norm), n=1, cutoff=0.6)
    return by_norm[hits[0]] if hits else None


def did_you_mean(name: str, known: Iterable[str], *, show=str) -> str:
    """``" (did you mean 'derpp'?)"``, or "" when no known name is close; ``show`` formats the
    suggestion (e.g. as a flag)."""
    hit = closest(name, known)
    return f" (did you mean {show(hit)}?)" if hit is not None and hit != name else ""
