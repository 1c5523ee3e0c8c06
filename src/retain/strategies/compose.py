"""Composite strategies by name: ``BASE+REG[+REG...]``, e.g. ``er+ewc`` or ``derpp+si+lwf``.

The first part is the base, whose ``observe`` drives each step (naive, cumulative, er, der, derpp,
agem: strategies with ``accepts_regularisers``). Every later part is a regularisation method
(ewc, si, lwf: strategies with a ``regulariser``); its term joins the base's loss before the
optimiser step, on the current task's batch and the model's logits on it, and its task hooks run
after the base's. ``naive+ewc`` is EWC, step for step.

:data:`~retain.strategies.base.STRATEGIES` builds and registers a composite the first time its
name is asked for (:func:`resolve`), so ``--strategy er+ewc``, ``[strategies."er+ewc"]`` in a
study file and worker processes all find it; ``retain list`` shows only the parts. Its ``Config``
merges the parts' hyperparameters, so the command line, study files and the run key see every
part's values.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from retain.errors import ConfigError
from retain.strategies.base import STRATEGIES, Strategy, register_strategy
from retain.strategies.config import StrategyConfig
from retain.strategies.regulariser import Regularised, Regulariser

SEPARATOR = "+"


class Composite(Regularised):
    """A base strategy with regularisers added by name. Subclasses are built by :func:`compose`,
    which sets ``components`` to the strategy classes of the parts, the base first (the plugin
    machinery hashes the source of each: retain.plugins.sources_of)."""

    regulariser = None
    components: ClassVar[tuple[type[Strategy], ...]] = ()

    def make_regularisers(self, config: StrategyConfig) -> dict[str, Regulariser]:
        out = {}
        for cls in self.components[1:]:
            own = cls.Config(**{f.name: getattr(config, f.name) for f, _ in cls.Config.fields()})
            out[cls.name] = cls.regulariser(self.model, own)
        return out

    def regulariser_state(self) -> dict[str, Any]:
        # Each part's state under its name: parts may use the same keys (an anchor, say).
        return {"regularisers": {name: reg.state_dict() for name, reg in self.regularisers.items()}}

    def load_regulariser_state(self, state: dict[str, Any]) -> None:
        for name, reg in self.regularisers.items():
            reg.load_state_dict(state["regularisers"][name])


def _bases() -> str:
    return ", ".join(n for n, c in STRATEGIES.items() if c.accepts_regularisers)


def _regularisers() -> str:
    return ", ".join(n for n, c in STRATEGIES.items() if getattr(c, "regulariser", None) is not None)


def summary() -> str:
    """One line for ``retain list``: how to name a composite, and which parts there are."""
    return f"BASE+REGULARISER[+...], e.g. er+ewc (bases: {_bases()}; regularisers: {_regularisers()})"


def split(name: str) -> list[str]:
    """``er+ewc`` -> ['er', 'ewc']; ConfigError for an empty part, spaces or a repeated part."""
    parts = name.split(SEPARATOR)
    if any(not p or p != p.strip() for p in parts):
        raise ConfigError(f"strategy {name!r}: write a composite as BASE+REGULARISER with no spaces or empty "
                          f"parts, e.g. er+ewc")
    repeated = sorted({p for p in parts if parts.count(p) > 1})
    if repeated:
        raise ConfigError(f"strategy {name!r}: {', '.join(repeated)} appears more than once")
    return parts


def _part(name: str, part: str) -> type[Strategy]:
    if part not in STRATEGIES:
        raise ConfigError(f"strategy {name!r}: {part!r} is not a strategy; bases: {_bases()}; "
                          f"regularisers: {_regularisers()}")
    return STRATEGIES.get(part)


def _check(name: str, base_name: str, base: type[Strategy], adds: list[tuple[str, type[Strategy]]]) -> None:
    """The rules: the first part takes regularisers and is not one; every later part is one."""
    if getattr(base, "regulariser", None) is not None:
        raise ConfigError(f"strategy {name!r}: the first part is the base whose step the regularisers join, and "
                          f"{base_name} is a regulariser; put a base first (bases: {_bases()}), e.g. "
                          f"naive+{base_name} or er+{base_name}")
    if not base.accepts_regularisers:
        raise ConfigError(f"strategy {name!r}: {base_name} does not take regularisers (its step does not pass its "
                          f"batch to them); bases: {_bases()}")
    for part, cls in adds:
        if getattr(cls, "regulariser", None) is None:
            raise ConfigError(f"strategy {name!r}: only regularisers can follow the base, and {part} is not one "
                              f"(regularisers: {_regularisers()}); the base comes first, e.g. {part}+ewc")


def _range(f: dataclasses.Field) -> tuple:
    return tuple(f.metadata.get(k) for k in ("low", "high", "choices", "low_open"))


def merged_config(name: str, parts: list[tuple[str, type[Strategy]]]) -> type[StrategyConfig]:
    """One dataclass with every part's hyperparameters. A field that two parts share merges when
    its type, default and valid range agree; otherwise the combination is refused."""
    seen: dict[str, tuple[str, dataclasses.Field, Any]] = {}
    for part, cls in parts:
        for f, typ in cls.Config.fields():
            if f.name not in seen:
                seen[f.name] = (part, f, typ)
                continue
            owner, g, gtyp = seen[f.name]
            if (gtyp, g.default, _range(g)) != (typ, f.default, _range(f)):
                raise ConfigError(f"strategy {name!r}: {owner} and {part} both have a hyperparameter "
                                  f"{f.name.replace('_', '-')} but with different types, defaults or ranges "
                                  f"({g.default!r} and {f.default!r}); they cannot be combined")
    fields = [(n, typ, dataclasses.field(default=f.default, metadata=f.metadata)) for n, (_, f, typ) in seen.items()]
    cls_name = "".join(p.title().replace("-", "") for p, _ in parts) + "Config"
    return dataclasses.make_dataclass(cls_name, fields, bases=(StrategyConfig,), namespace={"__module__": __name__})


def amp_support(parts: list[tuple[str, type[Strategy]]]) -> dict[str, Any]:
    """``amp_modes`` and ``amp_note`` of a composite: the precisions every part supports (each
    part's step runs inside the composite's), and why each part that leaves one out does."""
    support = [(part, *cls.amp_support()) for part, cls in parts]
    modes = tuple(m for m in support[0][1] if all(m in ms for _, ms, _ in support))
    notes = [f"{part}: {why}" for part, ms, why in support if set(Strategy.amp_modes) - set(ms)]
    return {"amp_modes": modes, "amp_note": "; ".join(notes)}


def ddp_support(parts: list[tuple[str, type[Strategy]]]) -> dict[str, Any]:
    """``data_parallel`` and ``ddp_note`` of a composite: it trains data-parallel when every part does."""
    support = [(part, *cls.ddp_support()) for part, cls in parts]
    notes = [f"{part}: {why}" for part, ok, why in support if not ok]
    return {"data_parallel": not notes, "ddp_note": "; ".join(notes)}


def _doc(parts: list[tuple[str, type[Strategy]]]) -> str:
    names = " + ".join(p for p, _ in parts[1:])
    lines = [f"{parts[0][0]} with {names} added to its loss: composite, built by name.", ""]
    for part, cls in parts:
        first = (cls.__doc__ or "").strip().splitlines()
        lines.append(f"{part}: {first[0] if first else ''}")
    return "\n".join(lines)


def compose(name: str) -> type[Strategy]:
    """The composite strategy class for ``name`` (``BASE+REG[+REG...]``), not yet registered."""
    names = split(name)
    if len(names) < 2:
        raise ConfigError(f"strategy {name!r}: a composite needs a base and at least one regulariser, e.g. er+ewc")
    parts = [(p, _part(name, p)) for p in names]
    (base_name, base), adds = parts[0], parts[1:]
    _check(name, base_name, base, adds)
    families = [base.family] + [cls.family for _, cls in adds]
    namespace = {
        "__doc__": _doc(parts),
        "cost": "; ".join(f"{p}: {vars(cls).get('cost') or '-'}" for p, cls in parts),
        "__module__": __name__,
        "Config": merged_config(name, parts),
        "components": tuple(cls for _, cls in parts),
        # Advice follows the base (a replay method); naive+ewc is a regularisation method.
        "family": base.family if base.family != "bound" else families[1],
        "needs_boundaries": any(cls.needs_boundaries for _, cls in parts),
        "experimental": any(cls.experimental for _, cls in parts),
        "default_study": False,
        "accepts_regularisers": False,
        "run_defaults": {k: v for _, cls in reversed(parts) for k, v in cls.run_defaults.items()},
        **amp_support(parts),
        **ddp_support(parts),
    }
    cls_name = "".join(p.title().replace("-", "") for p in names)
    return type(cls_name, (Composite, base), namespace)


def resolve(name: str) -> bool:
    """The registry's resolver: register ``name`` when it is a composite (has a ``+``)."""
    if SEPARATOR not in name:
        return False
    register_strategy(name)(compose(name))
    return True


STRATEGIES.add_resolver(resolve, owns=lambda name: SEPARATOR in name,
                        what=f"a name with {SEPARATOR!r} is a composite of registered strategies")
