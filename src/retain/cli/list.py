"""`retain list`: benchmarks, strategies, backbones, metrics and loggers, one line each, with
where each comes from (built-in, a plugin file, an installed package's entry point)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="list benchmarks, strategies, backbones, metrics and loggers")
    p.add_argument("--plugin", action="append", metavar="FILE.py",
                   help="also list what this plugin file registers, repeatable")
    p.set_defaults(handler=cmd_list)


def _first_line(obj) -> str:
    return (obj.__doc__ or "").strip().splitlines()[0] if obj.__doc__ else ""


def _line(mark: str, name: str, text: str, where: str) -> str:
    return f" {mark}{name:<18} {text}" + ("" if where == "built-in" else f"  [{where}]")


def cmd_list(_: argparse.Namespace) -> int:
    from retain.benchmarks import BENCHMARKS
    from retain.cli.run import default_strategies
    from retain.loggers import LOGGERS
    from retain.metrics.registry import METRICS
    from retain.models import BACKBONES
    from retain.plugins import origin
    from retain.strategies import STRATEGIES

    default = set(default_strategies())
    for title, reg in (("benchmarks", BENCHMARKS), ("strategies", STRATEGIES), ("backbones", BACKBONES)):
        print(f"{title}:" + ("  (* = in the default study of a bare `retain run`)" if reg is STRATEGIES else ""))
        for name, obj in reg.items():
            if reg is STRATEGIES and "+" in name:  # composites built in this process: the parts are listed
                continue
            mark = ("*" if name in default else " ") if reg is STRATEGIES else " "
            print(_line(mark, name, _first_line(obj), origin(obj)))
        if reg is BENCHMARKS:
            print(f"  {'folder:PATH':<18} your images, one folder per class (docs/byo-data.md)")
        if reg is BACKBONES:
            print(f"  {'hf:DIR_OR_ID':<18} a pretrained transformers ViT, from a directory or the local Hugging Face "
                  "cache, never downloaded (docs/pretrained.md)")
            print(f"  {'timm:NAME':<18} a pretrained timm model from the local cache, where timm is installed")
        if reg is STRATEGIES:
            from retain.strategies.compose import summary

            print(f"  {'composites':<18} {summary()}")
    print("metrics:  (report columns, computed from the stored accuracy matrices)")
    for m in METRICS.in_order():
        print(_line(" ", m.name, m.description, origin(m.fn)))
    print("loggers:  (retain run --logger NAME[:ARG])")
    for name, cls in LOGGERS.items():
        print(_line(" ", name, _first_line(cls), origin(cls)))
    return 0
