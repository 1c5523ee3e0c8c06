"""What to tell the user to do about an event, given the kind of method that produced it.

Two rules (issue 12): the bounds (``Strategy.family == "bound"``: naive, joint, cumulative) are
reference points, so they get no advice to fix themselves; and advice never recommends the
family of the method being run (no "use replay" to ER). A message is ``fact`` or
``fact; advice`` with no ``"; "`` inside the fact, so the advice can be swapped after the fact
(records from older versions carry generic advice; :func:`retarget` replaces it).
"""

from __future__ import annotations

from retain.diagnostics import collapse, forgetting

BOUND = "bound"

_FORGETTING = {
    "replay": "enlarge the buffer (--buffer-size)",
    "regularisation": "raise the penalty or add replay (--strategy derpp)",
    "adapter": "add replay (--strategy derpp) or a regulariser (--strategy ewc)",
}

#: Kinds whose message is ``fact; advice`` with advice chosen here by family.
ADVISED = ("sudden_forgetting", "plasticity_collapse")


def family_of(strategy: str) -> str:
    """The registered strategy's family ("bound", "replay", ...); "other" for an unknown name."""
    from retain.strategies import STRATEGIES

    return STRATEGIES.get(strategy).family if strategy in STRATEGIES else "other"


def is_bound(strategy: str) -> bool:
    return family_of(strategy) == BOUND


def advice(kind: str, family: str) -> str:
    """The recommendation for an event of ``kind`` raised by a method of ``family``; "" for none."""
    if family == BOUND:
        return ""
    if kind == "sudden_forgetting":
        return _FORGETTING.get(family, forgetting.RECOMMEND)
    if kind == "plasticity_collapse":
        return collapse.RECOMMEND
    return ""


def with_advice(fact: str, recommendation: str) -> str:
    return f"{fact}; {recommendation}" if recommendation else fact


def split(message: str) -> tuple[str, str]:
    """(fact, advice) of an event message; advice "" when it has none."""
    fact, _, rest = message.partition("; ")
    return fact, rest


def retarget(kind: str, message: str, strategy: str) -> str:
    """``message`` with the advice for ``strategy``'s family: none for a bound, the family's for
    the kinds in :data:`ADVISED`, the stored one otherwise."""
    family = family_of(strategy)
    if family == BOUND:
        return split(message)[0]
    return with_advice(split(message)[0], advice(kind, family)) if kind in ADVISED else message
