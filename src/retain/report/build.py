"""Assemble the report's blocks from the store: per benchmark the setup, results, comparison,
plots and diagnostics, then the command that reproduces the runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retain.diagnostics import make_event
from retain.diagnostics.advice import split, with_advice
from retain.diagnostics.intransigence import FORGETTING_ADVICE, GAP, low_learners
from retain.diagnostics.run_events import events_of
from retain.metrics.matrix import MIN_RUNS_FOR_INTERVAL
from retain.metrics.registry import BUILTIN, METRICS
from retain.report import plots, tables
from retain.report.data import Group, attach_method_state, group_runs
from retain.report.document import Block, Bullets, Code, Heading, Image, Para
from retain.report.style import method_styles

NOTES = ("± is the half-width of the 95% Student-t confidence interval over the runs (seeds and task orders); "
         f"with fewer than {MIN_RUNS_FOR_INTERVAL} runs a cell shows the mean and n only. Tasks are numbered from 1. "
         "Forgetting follows Chaudhry et al. (2018) with the maximum over rows before the last, so it can be "
         "negative; BWT and FWT follow Lopez-Paz & Ranzato (2017); a method trained once on all tasks (joint) "
         "has only a final accuracy, so its other metrics read —. Forgetting reduction is measured per run "
         "against the mean forgetting of naive fine-tuning in the same setup; compute cost is mean training "
         "time (the optimisation steps only) over naive's; wall time adds building the benchmark and model, "
         "evaluation and the first run's warm-up in each process, and on a shared machine the neighbours' "
         "load. A run trained with others as one vectorised ensemble (batched seeds) has 1/N of the "
         "ensemble's times, marked so, with no spread of its own; compute cost is compared only between "
         "groups trained the same way (one by one, or in ensembles of the same size). Peak memory is the peak "
         "resident memory of each run (an ensemble member's: the ensemble's).")


def metric_notes() -> list[Block]:
    """What each metric not built into retain (a plugin's, or one registered by the user) means,
    from its registration: the built-ins are described in :data:`NOTES`."""
    others = [m for m in METRICS.in_order() if m.name not in BUILTIN]
    if not others:
        return []
    return [Para("Other metrics, computed from the stored accuracy matrices like the rest:"),
            Bullets([f"{m.title}: {m.description}" for m in others])]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


def _diagnostics(store, groups: list[Group], failed: list[dict[str, Any]]) -> list[Block]:
    # Sudden forgetting from the stored matrices, the events that need activations as stored.
    events = {r.id: events_of(r, store.events(r.id)) for g in groups for r in g.runs}
    low = low_learners([r for g in groups for r in g.runs])
    for g in groups:  # a method that barely learns is not told to constrain itself more
        if (g.benchmark, g.strategy) in low:
            finding = low[(g.benchmark, g.strategy)]
            event = make_event("low_learning_accuracy", None, finding.naive - finding.learning_acc, GAP,
                               with_advice(finding.fact(), finding.advice()))
            for r in g.runs:
                events[r.id] = [event] + [{**e, "message": with_advice(split(e["message"])[0], FORGETTING_ADVICE)}
                                          if e["kind"] == "sudden_forgetting" else e for e in events[r.id]]
    blocks: list[Block] = [Heading("Diagnostics", 3)]
    table = tables.diagnostics_table(groups, events)
    blocks.append(table if table else Para("No warnings: no events for these runs."))
    if failed:
        blocks.append(Para(f"{len(failed)} run(s) failed and are not in the tables:"))
        blocks.append(Bullets([f"{r['strategy']} seed {r['seed']} order {r['config'].get('order', 0)}: "
                               f"{r['error']}" for r in failed]))
    return blocks


def benchmark_section(store, benchmark: str, groups: list[Group], out: Path,
                      failed: list[dict[str, Any]], styles: dict[str, tuple[str, str]]) -> list[Block]:
    blocks: list[Block] = [Heading(f"Benchmark: {benchmark}"), Heading("Setup", 3), tables.setup_table(groups),
                           Heading("Results", 3), tables.results_table(groups), Para(NOTES),
                           *metric_notes(), Heading("Comparison", 3), tables.comparison_table(groups),
                           Heading("Plots", 3)]
    for suffix, caption, draw in plots.FIGURES:
        rel = Path("plots") / f"{_slug(benchmark)}-{suffix}.png"
        draw(groups, out / rel, styles)
        blocks.append(Image(rel.as_posix(), caption))
    return blocks + _diagnostics(store, groups, [r for r in failed if r.benchmark == benchmark])


def build_report(store, runs: list[dict[str, Any]], out: Path, *, title: str = "",
                 failed: list[dict[str, Any]] | None = None) -> list[Block]:
    """Every block of the report on ``runs``; writes the plots under ``out/plots``."""
    attach_method_state(store, runs)  # for the memory figure: what each method holds beyond the model
    by_bench = group_runs(runs)
    title = title or ", ".join(sorted({r.study for r in runs} - {""}))
    revisions = sorted({r.revision for r in runs})
    blocks: list[Block] = [Heading(f"retain report{': ' + title if title else ''}", 1),
                           Para(f"{len(runs)} finished runs on {len(by_bench)} benchmark(s), "
                                f"{len({r['strategy'] for r in runs})} strategies; retain "
                                f"{runs[0]['versions'].get('retain', '?')}, torch "
                                f"{runs[0]['versions'].get('torch', '?')}, code revision "
                                f"{', '.join(revisions)}.")]
    styles = method_styles(g.label for groups in by_bench.values() for g in groups)  # one colour a method
    for bench, groups in by_bench.items():
        blocks += benchmark_section(store, bench, groups, out, failed or [], styles)
    commands = sorted({(r.get("extra") or {}).get("command") for r in runs} - {None})
    blocks.append(Heading("Reproduce"))
    if commands:
        blocks += [Para("The runs in this report came from:"), Code("\n".join(commands))]
    else:
        blocks.append(Para("The command was not recorded with these runs."))
    blocks.append(Para("Runs already in the store are reused, so running it again only fills in missing runs; "
                       "`retain report` re-renders this page from the store alone."))
    return blocks
