"""`retain report`: render report.md, report.html and plots/*.png from the store alone, for any
subset of its runs (--study, --benchmark, --strategy), optionally TensorBoard event files."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write the Markdown/HTML report and plots of runs in a store")
    p.add_argument("store", nargs="?", default="retain-results/retain.db",
                   help="the SQLite store (default retain-results/retain.db)")
    p.add_argument("--out", help="folder for report.md, report.html and plots/ (default: the store's folder)")
    p.add_argument("--study", action="append", help="only runs of this study (repeatable)")
    p.add_argument("--benchmark", action="append", help="only runs on this benchmark (repeatable)")
    p.add_argument("--strategy", action="append", help="only runs of this strategy (repeatable)")
    p.add_argument("--title", default="", help="a title for the report (default: the study names)")
    p.add_argument("--tensorboard", metavar="DIR", help="also export the runs as TensorBoard event files")
    p.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from retain.report import write_report
    from retain.store import Store

    path = Path(args.store)
    store = Store(path, readonly=True)  # a report never changes the store, and works in a read-only folder
    out = Path(args.out) if args.out else path.parent
    _check_writable(out)
    paths = write_report(store, out, study=args.study, benchmark=args.benchmark,
                         strategy=args.strategy, title=args.title or ", ".join(args.study or []),
                         tensorboard=args.tensorboard)
    for kind, p in paths.items():
        print(f"{kind}: {p}")
    return 0


def _check_writable(out: Path) -> None:
    """One line before any rendering when the report cannot be written (e.g. the store's folder
    is read-only: the store can be read there, the report needs --out)."""
    from retain.errors import ConfigError

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the report there ({exc.strerror}); give --out DIR") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"{out}: cannot write the report there (not writable); give --out DIR")
