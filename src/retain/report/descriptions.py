"""What a strategy is and what it costs, for the comparison table, as each strategy class says
it itself (built in or from a plugin alike): what it is is its ``description`` class attribute
when it sets one, else the first paragraph of its docstring; what it costs in memory and compute
is its ``cost`` class attribute. Only what the class itself sets counts, not what it inherits: a
subclass that says nothing would otherwise be described as its parent."""

from __future__ import annotations

import inspect
import re

NONE = "—"


def _own(strategy: str, attribute: str) -> str:
    """The text ``attribute`` of the strategy class registered as ``strategy``, set on that class
    itself; "" when it sets none or no such strategy is installed."""
    try:
        from retain.strategies import STRATEGIES

        cls = STRATEGIES.get(strategy)
    except Exception:  # noqa: BLE001 - a report must render even for a strategy no longer installed
        return ""
    value = vars(cls).get(attribute)
    return value if isinstance(value, str) else ""


def markdown_inline(text: str) -> str:
    """A docstring's reStructuredText inline markup as the report's Markdown: ``beta > 0`` and
    :class:`Name` become `beta > 0` and `Name` (code spans, which the HTML renders as code too)."""
    return re.sub(r"``([^`]+)``", r"`\1`", re.sub(r":[\w:]+:`~?([^`]+)`", r"`\1`", text))


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, its lines joined into one ("" for none)."""
    text = inspect.cleandoc(doc or "")
    return " ".join(text.split("\n\n", 1)[0].split())


def summary(strategy: str) -> str:
    """What the strategy does: its ``description``, else its docstring's first paragraph ("—"
    when it has neither or is not installed)."""
    text = " ".join(_own(strategy, "description").split()) or first_paragraph(_own(strategy, "__doc__"))
    return markdown_inline(text) or NONE


def cost(strategy: str) -> str:
    """What the strategy costs in memory and compute beyond naive fine-tuning ("—" when it does
    not say)."""
    return markdown_inline(" ".join(_own(strategy, "cost").split())) or NONE
