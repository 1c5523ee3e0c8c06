"""The results table for other tools: CSV with one number per cell (for pandas, R, a
spreadsheet) and a LaTeX ``tabular`` per benchmark (booktabs) to ``\\input`` into a paper.
``ci95`` / ``±`` is the half-width of the 95% Student-t interval over runs, empty / absent under
:data:`~retain.metrics.matrix.MIN_RUNS_FOR_INTERVAL` runs, as in the Markdown report."""

from __future__ import annotations

import csv
import io

from retain.metrics.matrix import MIN_RUNS_FOR_INTERVAL, confidence_interval
from retain.report.data import Group
from retain.report.tables import measures, params_of


def _number(x: float, digits: int) -> str:
    return f"{x:.{digits + 2}f}"  # two digits more than the tables show: a file is for further work


def results_csv(by_bench: dict[str, list[Group]]) -> str:
    """One row per benchmark and method; per measure ``<key>_mean`` and ``<key>_ci95``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    columns = measures()
    stats = [f"{m.key}_{s}" for m in columns for s in ("mean", "ci95")]
    w.writerow(["benchmark", "method", "strategy", "runs", *stats, "trainable_params"])
    for bench, groups in by_bench.items():
        for g in groups:
            cells = []
            for m in columns:
                v = m.values(g, groups)
                mean, half = confidence_interval(v) if v else (None, None)
                cells += [_number(mean, m.digits) if v else "",
                          _number(half, m.digits) if len(v) >= MIN_RUNS_FOR_INTERVAL else ""]
            params = g.values("trainable_params")
            w.writerow([bench, g.label, g.strategy, len(g.runs)] + cells + [int(params[0]) if params else ""])
    return buf.getvalue()


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def _latex_cell(values: list[float], digits: int) -> str:
    if not values:
        return "--"
    mean, half = confidence_interval(values)
    if len(values) < MIN_RUNS_FOR_INTERVAL:
        return f"${mean:.{digits}f}$ ($n{{=}}{len(values)}$)"
    return f"${mean:.{digits}f} \\pm {half:.{digits}f}$"


#: The compact table's columns (it fits one column of a two-column paper): the headline metrics,
#: then any metric registered by a plugin.
COMPACT = ("avg_acc_pct", "forgetting_pct")


def results_latex(by_bench: dict[str, list[Group]], *, full: bool = False) -> str:
    """A booktabs ``table`` per benchmark, one row per method: by default compact (method,
    average accuracy, forgetting and a plugin's metrics, in ``\\small`` type: one column of a
    paper); ``full``: every
    measure of the results table, runs and trainable parameters (a ``table*`` across the page)."""
    out = ["% retain results; needs \\usepackage{booktabs}. +/- is the 95% Student-t CI half-width over runs."
           + ("" if full else " Compact; `retain report --format latex --latex-full` writes every column.")]
    from retain.metrics.registry import BUILTIN, METRICS

    own = {m.key for m in METRICS.in_order() if m.name not in BUILTIN}  # a plugin's metric: asked for, shown
    columns = measures() if full else tuple(m for m in measures() if m.key in COMPACT or m.key in own)
    for bench, groups in by_bench.items():
        if full:
            header = ["Method", "Runs"] + [latex_escape(m.title) for m in columns] + ["Trainable params"]
        else:
            header = ["Method"] + [latex_escape(m.title) for m in columns]
        env = "table*" if full else "table"
        out += [f"\\begin{{{env}}}[t]", "\\centering"] + ([] if full else ["\\small"]) + [
                f"\\caption{{Results on {latex_escape(bench)}: mean $\\pm$ half-width of the 95\\% Student-$t$ "
                f"confidence interval over runs (mean and $n$ only under {MIN_RUNS_FOR_INTERVAL} runs).}}",
                f"\\label{{tab:retain-{''.join(c if c.isalnum() else '-' for c in bench)}}}",
                "\\begin{tabular}{l" + "r" * (len(header) - 1) + "}", "\\toprule",
                " & ".join(header) + " \\\\", "\\midrule"]
        for g in groups:
            cells = [latex_escape(g.label)] + ([str(len(g.runs))] if full else [])
            cells += [_latex_cell(m.values(g, groups), m.digits) for m in columns]
            if full:
                cells.append(latex_escape(params_of(g)).replace(",", "{,}"))
            out.append(" & ".join(cells) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", f"\\end{{{env}}}", ""]
    return "\n".join(out)
