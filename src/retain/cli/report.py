"""`retain report`: render report.md, report.html and plots/*.png from the store alone, for any
subset of its runs (--study, --benchmark, --strategy); or the results table as CSV / LaTeX;
optionally TensorBoard event files."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write the Markdown/HTML report and plots of runs in a store, or the results "
                                      "table as CSV/LaTeX",
                       description="Render a report of the finished runs in a store. ± everywhere in it is the "
                                   "half-width of the 95% Student-t confidence interval over runs; with fewer "
                                   "than 3 runs only the mean and n are shown. csv and latex write the results "
                                   "table alone, next to the report (results.csv, results.tex).")
    p.add_argument("store", nargs="?", default="retain-results/retain.db",
                   help="the SQLite store (default retain-results/retain.db)")
    p.add_argument("--out", help="folder to write into (default: the store's folder); '-' prints a csv or latex "
                                 "table to stdout instead")
    p.add_argument("--format", action="append", choices=("markdown", "html", "csv", "latex"), dest="formats",
                   help="what to write (repeatable; default markdown and html): markdown = report.md with "
                        "plots/*.png, html = report.html (self-contained), csv = results.csv (one row per benchmark "
                        "and method; <measure>_mean and <measure>_ci95 columns, ci95 empty under 3 runs), "
                        "latex = results.tex (a booktabs table per benchmark: compact, method, average accuracy and "
                        "forgetting, a paper column wide; --latex-full for every column)")
    p.add_argument("--latex-full", action="store_true",
                   help="the LaTeX table with every column of the results table (a table* across the page)")
    p.add_argument("--plot-format", action="append", choices=("png", "pdf", "svg"), dest="plot_formats",
                   help="also save every plot in this format beside its PNG, repeatable (pdf, svg: vector, for a "
                        "paper); the report shows the PNGs")
    p.add_argument("--dpi", type=int, help="resolution of the PNG plots (default 110: the HTML page's width; "
                                           "300 for print)")
    p.add_argument("--study", action="append", help="only runs of this study (repeatable)")
    p.add_argument("--benchmark", action="append", help="only runs on this benchmark (repeatable)")
    p.add_argument("--strategy", action="append", help="only runs of this strategy (repeatable)")
    p.add_argument("--plugin", action="append", metavar="FILE.py",
                   help="a Python file that registers metrics (or the strategies whose descriptions the report "
                        "shows), repeatable; its metrics become columns for every run in the store")
    p.add_argument("--title", default="", help="a title for the report (default: the study names)")
    p.add_argument("--tensorboard", metavar="DIR", help="also export the runs as TensorBoard event files")
    p.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from retain.errors import ConfigError, StoreError
    from retain.report import render_table, write_report
    from retain.store import Store

    path = Path(args.store)
    if not path.exists():
        raise StoreError(f"{path}: no results store there (run `retain run` first, or give the store's path)")
    store = Store(path, readonly=True)  # a report never changes the store, and works in a read-only folder
    formats = tuple(dict.fromkeys(args.formats or ("markdown", "html")))
    filters = dict(study=args.study, benchmark=args.benchmark, strategy=args.strategy)
    if args.out == "-":
        if len(formats) != 1 or formats[0] not in ("csv", "latex"):
            raise ConfigError("--out - prints one table: use it with exactly one of --format csv, --format latex")
        sys.stdout.write(render_table(store, formats[0], **filters, full_latex=args.latex_full))
        return 0
    out = Path(args.out) if args.out else path.parent
    if args.dpi is not None and not 30 <= args.dpi <= 1200:  # before the folder is made
        raise ConfigError(f"--dpi must be between 30 and 1200, got {args.dpi}")
    _check_writable(out)
    paths = write_report(store, out, **filters, title=args.title or ", ".join(args.study or []),
                         tensorboard=args.tensorboard, formats=formats, plot_formats=tuple(args.plot_formats or ()),
                         dpi=args.dpi, full_latex=args.latex_full)
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
