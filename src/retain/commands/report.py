"""`retain report`: render report.md, report.html and plots/*.png from the store alone, for any
subset of its runs (--study, --benchmark, --strategy), optionally TensorBoard event files."""

from __future__ import annotations

import argparse
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
    from retain.errors import StoreError
    from retain.report import write_report
    from retain.store import Store

    path = Path(args.store)
    if not path.is_file():
        raise StoreError(f"{path}: no results store there (run `retain run` first, or give the store's path)")
    store = Store(path)
    paths = write_report(store, args.out or path.parent, study=args.study, benchmark=args.benchmark,
                         strategy=args.strategy, title=args.title or ", ".join(args.study or []),
                         tensorboard=args.tensorboard)
    for kind, p in paths.items():
        print(f"{kind}: {p}")
    return 0
