"""Reports from the store alone: Markdown (README-ready), one self-contained HTML file, PNG
plots, and optionally TensorBoard event files. Nothing here trains or imports training code."""

from __future__ import annotations

import os
from pathlib import Path

from retain.errors import ConfigError


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a reader never sees half a report


#: What ``retain report --format`` can write: the report (Markdown with PNG plots, one HTML file)
#: and the results table alone as CSV or LaTeX.
FORMATS = ("markdown", "html", "csv", "latex")
#: Where the table exports go, next to report.md.
TABLE_FILES = {"csv": "results.csv", "latex": "results.tex"}


def _select(store, filters: dict):
    from retain.report.data import select_runs

    runs = select_runs(store, **filters)
    if not runs:
        given = ", ".join(f"{k}={v!r}" for k, v in filters.items() if v is not None and k != "run_keys")
        raise ConfigError(f"{store.path}: no finished runs{' match ' + given if given else ''}")
    return runs


def render_table(store, fmt: str, *, run_keys=None, study=None, benchmark=None, strategy=None,
                 full_latex: bool = False) -> str:
    """The results table of the matching finished runs as CSV (``fmt="csv"``) or LaTeX (``"latex"``:
    compact, a paper column wide; every column with ``full_latex``)."""
    return _table_text(_select(store, dict(run_keys=run_keys, study=study, benchmark=benchmark, strategy=strategy)),
                       fmt, full_latex)


def _table_text(runs, fmt: str, full_latex: bool = False) -> str:
    from retain.report.data import group_runs
    from retain.report.export import results_csv, results_latex

    by_bench = group_runs(runs)
    return results_csv(by_bench) if fmt == "csv" else results_latex(by_bench, full=full_latex)


#: What the report's plots are saved as (retain's names: ``<benchmark>-<figure>.<ext>``).
PLOT_EXTENSIONS = (".png", ".pdf", ".svg")


def prune_plots(out: Path, blocks, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Delete the plots under ``out/plots`` that retain drew for an earlier report and this one
    does not show (a benchmark no longer in it), or in a format this one did not write (a PDF
    left from an earlier render would be out of date); files of other names are left alone.
    Returns the paths removed."""
    from retain.report.document import Image
    from retain.report.plots import FIGURES

    shown = {Path(b.path).with_suffix("").name for b in blocks if isinstance(b, Image)}
    removed = []
    folder = out / "plots"
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        ours = path.suffix in PLOT_EXTENSIONS and any(path.stem.endswith(f"-{s}") for s, _, _ in FIGURES)
        if ours and path.is_file() and (path.stem not in shown or path.suffix[1:] not in ("png", *formats)):
            path.unlink()
            removed.append(path)
    return removed


def write_report(store, out: str | Path, *, run_keys=None, study=None, benchmark=None, strategy=None,
                 title: str = "", tensorboard: str | Path | None = None,
                 formats: tuple[str, ...] = ("markdown", "html"), plot_formats: tuple[str, ...] = (),
                 dpi: int | None = None, full_latex: bool = False) -> dict[str, Path]:
    """Write, under ``out``, each of ``formats`` for the finished runs that match every filter:
    report.md (with plots/*.png, and each plot also as ``plot_formats``: pdf, svg), report.html
    (plots embedded), results.csv, results.tex (compact; every column with ``full_latex``).
    ``dpi``: the PNGs' resolution. Returns the paths written. Raises ConfigError when nothing
    matches or a plot format is unknown."""
    from retain.report import html, markdown
    from retain.report.build import build_report
    from retain.report.style import VECTOR_FORMATS, output

    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ConfigError(f"unknown report format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    plot_formats = tuple(dict.fromkeys(f for f in plot_formats if f != "png"))
    if set(plot_formats) - set(VECTOR_FORMATS):
        raise ConfigError(f"unknown plot format(s) {', '.join(sorted(set(plot_formats) - set(VECTOR_FORMATS)))}; "
                          f"known: png, {', '.join(VECTOR_FORMATS)}")
    if dpi is not None and not 30 <= dpi <= 1200:
        raise ConfigError(f"--dpi must be between 30 and 1200, got {dpi}")
    filters = dict(run_keys=run_keys, study=study, benchmark=benchmark, strategy=strategy)
    runs = _select(store, filters)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for fmt in (f for f in FORMATS if f in formats and f in TABLE_FILES):
        paths[fmt] = out / TABLE_FILES[fmt]
        _write(paths[fmt], _table_text(runs, fmt, full_latex))
    if "markdown" in formats or "html" in formats:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigError("reports need matplotlib: pip install 'retain[report]'") from None
        done = {r.run_key for r in runs}  # a failure since run again and finished is not a failure now
        failed = [r for r in store.runs(status="failed", study=study, benchmark=benchmark, strategy=strategy)
                  if (run_keys is None or r.run_key in set(run_keys)) and r.run_key not in done]
        with output(plot_formats, dpi):
            blocks = build_report(store, runs, out, title=title, failed=failed)
        prune_plots(out, blocks, plot_formats)
        if "markdown" in formats:
            paths["markdown"] = out / "report.md"
            _write(paths["markdown"], markdown.render(blocks))
        if "html" in formats:
            paths["html"] = out / "report.html"
            _write(paths["html"], html.render(blocks, out, title=f"retain report {title}".strip()))
    if tensorboard:
        from retain.report.tensorboard import export

        export(runs, tensorboard)
        paths["tensorboard"] = Path(tensorboard)
    return paths


__all__ = ["FORMATS", "render_table", "write_report"]
