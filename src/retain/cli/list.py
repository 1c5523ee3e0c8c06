"""`retain list`: benchmarks, strategies, backbones, metrics and loggers, one line each, with
where each comes from (built-in, a plugin file, an installed package's entry point)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="list benchmarks, strategies, backbones, metrics and loggers")
    p.add_argument("--plugin", action="append", metavar="FILE.py",
                   help="also list what this plugin file registers, repeatable")
    p.set_defaults(handler=cmd_list)


def plain_markup(text: str) -> str:
    """A docstring's reStructuredText inline markup as plain text: ``beta > 0`` -> beta > 0."""
    import re

    return re.sub(r"``([^`]+)``", r"\1", re.sub(r":\w+:`([^`]+)`", r"\1", text))


def _first_line(obj) -> str:
    return (obj.__doc__ or "").strip().splitlines()[0] if obj.__doc__ else ""


#: Where an entry's description starts: after the mark and an 18-character name column.
INDENT = 21


def _width() -> int:
    """The terminal's width ($COLUMNS where set; 80 when it cannot be told), never below 60."""
    import shutil

    return max(60, shutil.get_terminal_size((80, 24)).columns)


def _line(mark: str, name: str, text: str, where: str) -> str:
    """One entry, its description wrapped to the terminal's width under the description column.
    What a plugin adds has its origin in brackets on the name's line and the description below (a
    path is not wrapped); so does a name longer than its column."""
    import textwrap

    text = plain_markup(text)
    head = f" {mark}{name:<18} " + ("" if where == "built-in" else f"[{where}]")
    if len(head) > INDENT:
        head = head.rstrip() + "\n" + " " * INDENT
    lines = textwrap.wrap(text, _width() - INDENT, break_on_hyphens=False) or [""]
    return head + ("\n" + " " * INDENT).join(lines)


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
            print(_line(" ", "folder:PATH", "your images, one folder per class (docs/byo-data.md)", "built-in"))
            print(_line(" ", "text:PATH", "your text tasks, one folder of JSONL files per task (docs/text.md)",
                        "built-in"))
        if reg is BACKBONES:
            print(_line(" ", "hf:DIR_OR_ID", "a pretrained transformers ViT or text encoder (with its tokenizer), "
                                             "from a directory or the local Hugging Face cache, never downloaded "
                                             "(docs/pretrained.md, docs/text.md)", "built-in"))
            print(_line(" ", "timm:NAME", "a pretrained timm model from the local cache, where timm is installed",
                        "built-in"))
        if reg is STRATEGIES:
            from retain.strategies.compose import summary

            print(_line(" ", "composites", summary(), "built-in"))
    print("metrics:  (report columns, computed from the stored accuracy matrices)")
    for m in METRICS.in_order():
        print(_line(" ", m.name, m.description, origin(m.fn)))
    print("loggers:  (retain run --logger NAME[:ARG])")
    for name, cls in LOGGERS.items():
        print(_line(" ", name, _first_line(cls), origin(cls)))
    return 0
