"""The `retain` command line. Thin: each subcommand lives in ``retain.commands.<name>`` with an
``add_parser(subparsers)`` that registers it and sets ``handler``; errors of bad input exit 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from retain.errors import RetainError

#: Subcommand modules, in the order `retain --help` lists them.
COMMANDS = ["run", "study", "report", "list", "data"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retain", description="Continual-learning workbench for PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"retain.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except RetainError as exc:
        print(f"retain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("retain: interrupted", file=sys.stderr)
        return 130
