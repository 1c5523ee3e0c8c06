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


def write_report(store, out: str | Path, *, run_keys=None, study=None, benchmark=None, strategy=None,
                 title: str = "", tensorboard: str | Path | None = None) -> dict[str, Path]:
    """Write report.md, report.html and plots/*.png under ``out`` for the finished runs that
    match every filter; returns the paths written. Raises ConfigError when nothing matches."""
    from retain.report import html, markdown
    from retain.report.build import build_report
    from retain.report.data import select_runs

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("reports need matplotlib: pip install 'retain[report]'") from None
    filters = dict(run_keys=run_keys, study=study, benchmark=benchmark, strategy=strategy)
    runs = select_runs(store, **filters)
    if not runs:
        given = ", ".join(f"{k}={v!r}" for k, v in filters.items() if v is not None and k != "run_keys")
        raise ConfigError(f"{store.path}: no finished runs{' match ' + given if given else ''}")
    failed = [r for r in store.runs(status="failed", study=study, benchmark=benchmark, strategy=strategy)
              if run_keys is None or r["run_key"] in set(run_keys)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    blocks = build_report(store, runs, out, title=title, failed=failed)
    paths = {"markdown": out / "report.md", "html": out / "report.html"}
    _write(paths["markdown"], markdown.render(blocks))
    _write(paths["html"], html.render(blocks, out, title=f"retain report {title}".strip()))
    if tensorboard:
        from retain.report.tensorboard import export

        export(runs, tensorboard)
        paths["tensorboard"] = Path(tensorboard)
    return paths


__all__ = ["write_report"]
