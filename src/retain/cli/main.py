"""The `retain` command line. Thin: each subcommand lives in ``retain.cli.<name>`` with an
``add_parser(subparsers)`` that registers it and sets ``handler``; errors of bad input exit 2."""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from retain.errors import RetainError

#: Subcommand modules, in the order `retain --help` lists them.
COMMANDS = ["run", "dissimilarity", "report", "list", "data", "pretrain"]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser without prefix matching: `--seed 1` must not silently mean `--seeds 1`.
    Subcommands (and theirs) inherit the class, so the rule holds everywhere."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        self.given = sys.argv[1:] if args is None else list(args)  # a subcommand's own words, for its --help
        self._refuse_repeats(self.given)
        return super().parse_known_args(args, namespace)

    def add_subparsers(self, **kwargs):
        self.commands = super().add_subparsers(**kwargs)
        return self.commands

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but words no parser took are refused by the subcommand they were given to,
        so the error points to `retain run --help` (not `retain --help`) and names the closest flag."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self
            while getattr(parser, "commands", None) is not None and getattr(ns, parser.commands.dest, None):
                parser = parser.commands.choices[getattr(ns, parser.commands.dest)]
            parser.error(f"unrecognized arguments: {' '.join(extras)}{_closest_flag(parser, extras)}")
        return ns

    def _refuse_repeats(self, argv: list[str]) -> None:
        """A flag that holds one value, given twice, is an error: argparse would keep the last one
        silently, so `--buffer-size 200 --buffer-size 500` would run one buffer size, not a sweep."""
        argv = argv[: argv.index("--")] if "--" in argv else argv
        for action in self._actions:
            if type(action) is not argparse._StoreAction or not action.option_strings:
                continue
            given = [a for a in argv if a in action.option_strings or a.split("=", 1)[0] in action.option_strings]
            if len(given) > 1:
                self.error(f"{action.option_strings[-1]} was given {len(given)} times; it takes one value "
                           "(to compare several values, list them in a study file: buffer_size = [200, 500], "
                           "see docs/studies.md)")

    def error(self, message: str):
        """One line, exit 2, like every other refusal of bad input (the usage is one --help away);
        an invalid choice names the closest one."""
        from retain.suggest import did_you_mean

        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:
            message += did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        where = self.prog.removeprefix("retain").strip()
        self.exit(2, f"retain: error: {where + ': ' if where else ''}{message} (see `{self.prog} --help`)\n")


def _closest_flag(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """`` (did you mean --buffer-size?)`` for the first unknown flag that is close to a known one."""
    from retain.suggest import did_you_mean

    flags = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    for word in extras:
        if word.startswith("--"):
            hint = did_you_mean(word.split("=", 1)[0], flags)
            if hint:
                return hint
    return ""


def build_parser() -> argparse.ArgumentParser:
    from retain import __version__

    parser = Parser(prog="retain", description="Continual-learning workbench for PyTorch.")
    parser.add_argument("--version", action="version", version=f"retain {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"retain.cli.{name}").add_parser(sub)
    return parser


def _plugin_files(argv: list[str]) -> list[str]:
    """The ``--plugin FILE`` arguments, read before the parser exists: a plugin's strategies bring
    their own hyperparameter flags, which the parser must know."""
    out = []
    for i, word in enumerate(argv):
        if word == "--plugin" and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif word.startswith("--plugin="):
            out.append(word.split("=", 1)[1])
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from retain.plugins import load_entry_points, load_files

        load_entry_points()
        load_files(_plugin_files(argv))
        parser = build_parser()  # a plugin's hyperparameter may clash with a flag: one line too
    except RetainError as exc:
        print(f"retain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while plugins load (or a plugin raising it)
        print("retain: interrupted while loading plugins", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    args.argv = argv  # `retain run --ddp N` starts its ranks with the same arguments
    try:
        return int(args.handler(args) or 0)
    except RetainError as exc:
        print(f"retain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("retain: interrupted", file=sys.stderr)
        return 130
