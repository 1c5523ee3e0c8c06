"""What every figure of a report shares: one width that fits the HTML page, type that stays
legible there, and one colour and marker per method for the whole report."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable
from pathlib import Path

#: Figures are drawn PAGE_WIDTH inches wide at DPI: 1100 px, the HTML page's width, so they are
#: shown at (nearly) their natural size and a 9 pt tick label stays about 13 px high.
PAGE_WIDTH = 10.0
DPI = 110

_RC = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "xtick.labelsize": 9,
       "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 11}

#: Matplotlib's ten, then ten more chosen to differ from every other by at least as much as the
#: closest pair of the ten does (CIE76 distance >= 27): `C{i}` alone repeats after ten methods.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#000075", "#000000", "#f032e6", "#3c4d03", "#ff0789", "#fdbf6f",
           "#b2df8a", "#1b9e77", "#fb9a99", "#0804f9")
#: A second cue beside colour (for readers who do not tell the colours apart, and past 20 methods).
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "h", "p", "*", "d", "8", "H")


def method_order(strategy: str, label: str = "") -> tuple[int, str]:
    """The sort key that puts methods in one order in the terminal table, every report table and
    every plot, whatever order their runs finished in: naive (the lower bound) first, then the
    methods by name, then the upper bounds (joint, cumulative)."""
    from retain.diagnostics.advice import is_bound

    rank = 0 if strategy == "naive" else 2 if is_bound(strategy) else 1
    return rank, label or strategy


def method_styles(labels: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Method label -> (colour, marker), in order of first appearance, for every plot of a report."""
    order = list(dict.fromkeys(labels))
    return {label: (PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]) for i, label in enumerate(order)}


def plt():
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless: never try to open a window
    import matplotlib.pyplot as pyplot

    return pyplot


def styled(draw: Callable[..., Path]) -> Callable[..., Path]:
    """Draw under the report's type sizes (and leave the caller's matplotlib settings alone)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> Path:
        with plt().rc_context(_RC):
            return draw(*args, **kwargs)

    return wrapper


#: What :func:`save` writes beside each PNG, and at what resolution (:func:`output` sets them).
VECTOR_FORMATS = ("pdf", "svg")
_OUTPUT: dict = {"formats": (), "dpi": DPI}


@contextlib.contextmanager
def output(formats: Iterable[str] = (), dpi: int | None = None):
    """While the report draws: also save each figure as these vector formats (``pdf``, ``svg``)
    beside its PNG, and the PNG at ``dpi`` (default :data:`DPI`, the HTML page's size)."""
    formats = tuple(dict.fromkeys(f for f in formats if f != "png"))
    unknown = sorted(set(formats) - set(VECTOR_FORMATS))
    if unknown:
        raise ValueError(f"unknown plot format(s) {', '.join(unknown)}; known: png, {', '.join(VECTOR_FORMATS)}")
    before = dict(_OUTPUT)
    _OUTPUT.update(formats=formats, dpi=dpi or DPI)
    try:
        yield
    finally:
        _OUTPUT.clear()
        _OUTPUT.update(before)


def save(fig, path: Path) -> Path:
    """Save ``fig`` as the PNG ``path`` (at the :func:`output` DPI) and as each vector format asked
    for, beside it with the same name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_OUTPUT["dpi"], bbox_inches=None)
    for fmt in _OUTPUT["formats"]:
        fig.savefig(path.with_suffix(f".{fmt}"), bbox_inches=None)
    plt().close(fig)
    return path
