"""Command-line flags for the plasticity fixes (used by `retain run` and `retain study`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_plasticity_flags(parser: argparse.ArgumentParser) -> None:
    """--redo, --shrink-perturb [task|step], --wsc, and --plasticity KEY=VALUE for any other setting."""
    g = parser.add_argument_group("plasticity fixes (any strategy; see retain.plasticity)")
    g.add_argument("--redo", action="store_true", help="ReDo: reset dormant units at each task start")
    g.add_argument("--shrink-perturb", nargs="?", const="task", choices=("task", "step"),
                   help="shrink-and-perturb the weights per task (default) or per step")
    g.add_argument("--wsc", action="store_true", help="Weight Space Consolidation (rank-based reset + averaging)")
    g.add_argument("--plasticity", action="append", metavar="KEY=VALUE", default=None,
                   help="another plasticity setting, repeatable (e.g. redo_tau=0.05, sp_shrink=0.9)")
    parser.set_defaults(plasticity_of=plasticity_options)


def _value(key: str, text: str) -> Any:
    """``text`` read by the type of plasticity setting ``key``; as it is when it is not one (the
    config then names the setting and the type it expected)."""
    from retain.plasticity import PlasticityConfig
    from retain.strategies.config import parse_typed

    typ = PlasticityConfig.field_types().get(key, str)
    try:
        return parse_typed(typ, text)
    except ValueError:
        return text


def plasticity_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig.plasticity dict the flags describe ({} when no fix is asked for)."""
    from retain.errors import ConfigError

    out: dict[str, Any] = {}
    if getattr(args, "redo", False):
        out["redo"] = True
    if getattr(args, "shrink_perturb", None):
        out.update(shrink_perturb=True, sp_when=args.shrink_perturb)
    if getattr(args, "wsc", False):
        out["wsc"] = True
    for item in getattr(args, "plasticity", None) or []:
        key, sep, val = item.partition("=")
        if not sep:
            raise ConfigError(f"--plasticity expects KEY=VALUE, got {item!r}")
        key = key.strip().replace("-", "_")
        out[key] = _value(key, val.strip())
    return out
