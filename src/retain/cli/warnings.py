"""The warnings `retain run` prints after its results table: each fact once, most severe first.

Order: failed runs (once per strategy, never again as their ``diverged`` event), plasticity
collapse, methods that barely learn (learning accuracy far below naive's:
:mod:`retain.diagnostics.intransigence`; their forgetting is then not told to add constraint),
sudden forgetting, rankings that the 95% intervals leave open
(:func:`retain.diagnostics.variance.overlapping_rankings`), facts about a benchmark (task
dissimilarity: once per benchmark, not once per strategy), buffer events, other kinds, and last
what the bounds did (naive forgetting is expected; bounds get no advice). Advice is chosen by
the method's family (:mod:`retain.diagnostics.advice`), so it never recommends the method run.

Sudden forgetting and the variance check are computed from each run's accuracy matrix when the
warnings are made (:mod:`retain.diagnostics.run_events`, :mod:`retain.metrics.registry`); the
other events are as the run stored them.

Modes: ``summary`` (the default) fits in ``max_lines`` printed lines, merges one kind across the
strategies that share the same advice, and ends with a line saying how much more there is and
where; ``all`` prints one line per strategy and kind, untruncated; ``none`` prints nothing.
Stored task indices are 0-based; every line numbers tasks from 1.
"""

from __future__ import annotations

import re
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from retain.diagnostics import advice as adv
from retain.diagnostics.intransigence import FORGETTING_ADVICE as LOW_LEARNER
from retain.diagnostics.intransigence import low_learners
from retain.diagnostics.run_events import events_of
from retain.diagnostics.variance import RECOMMEND, overlapping_rankings, title
from retain.metrics.matrix import MIN_RUNS_FOR_INTERVAL

MODES = ("all", "summary", "none")
MAX_LINES = 12
Record = dict[str, Any]

# Severity ranks, most severe first.
FAILURE, COLLAPSE, LEARNING, FORGETTING, VARIANCE, BENCHMARK, BUFFER, OTHER, BOUND = range(9)
_RANK = {"plasticity_collapse": COLLAPSE, "sudden_forgetting": FORGETTING,
         "buffer_homogeneous": BUFFER, "buffer_missing_classes": BUFFER}
# Kinds that summary mode merges across strategies: the phrase and the scale of the worst value.
_MERGED = {"sudden_forgetting": "up to {:.1f} points lost to one new task",
           "plasticity_collapse": "learning acc fell up to {:.1f} points as units went dormant"}


@dataclass(frozen=True)
class Finding:
    """One line: ``rank`` orders by severity, ``weight`` within a rank (larger first)."""

    rank: int
    text: str
    weight: float = 0.0

    @property
    def level(self) -> str:
        return "failed" if self.rank == FAILURE else "note" if self.rank in (BENCHMARK, BOUND) else "warning"


def _run_label(r: Record) -> str:
    order = (r.get("extra") or {}).get("order") or 0
    return f"seed {r.get('seed')}" + (f", order {order}" if order else "")


def _after(e: dict[str, Any]) -> str:
    return "" if not isinstance(e.get("task"), int) else f", after task {e['task'] + 1}"


def _one_based_error(r: Record) -> str:
    """The error's first line, with the 0-based task of a divergence message numbered from 1
    (only where the number is the stored index, so a message already 1-based is left alone)."""
    text = (r.get("error") or "unknown error").splitlines()[0]
    for e in r.get("events") or []:
        if e.get("kind") == "diverged" and isinstance(e.get("task"), int):
            text = re.sub(rf"\bin task {e['task']}\b", f"in task {e['task'] + 1}", text, count=1)
    return text if len(text) <= 160 else text[:157] + "..."


class _Study:
    """The records grouped the ways the findings need them."""

    def __init__(self, records: list[Record]):
        self.records = records
        self.multi = len({r.benchmark for r in records}) > 1
        self.runs: dict[tuple[str, str], list[Record]] = defaultdict(list)
        self.run_events: dict[int, list[dict[str, Any]]] = {}  # id(record) -> its events as shown
        self.low = low_learners(records)  # methods that barely learn: advice for forgetting is wrong there
        for r in records:
            self.runs[(r.benchmark, r.strategy)].append(r)
            self.run_events[id(r)] = events_of(r)

    def advice(self, kind: str, bench: str, strat: str, stored: str) -> str:
        """The advice for ``kind`` on this method: none for a bound, :data:`LOW_LEARNER` for
        forgetting where the method barely learns, the family's for advised kinds, else ``stored``."""
        if adv.is_bound(strat):
            return ""
        if kind == "sudden_forgetting" and (bench, strat) in self.low:
            return LOW_LEARNER
        return adv.advice(kind, adv.family_of(strat)) if kind in adv.ADVISED else stored

    def name(self, bench: str, strat: str) -> str:
        return f"{strat} on {bench}" if self.multi else strat

    def events(self) -> dict[tuple[str, str, str], list[tuple[Record, dict]]]:
        """(benchmark, strategy, kind) -> [(run, event)], in record order, without the kinds
        reported elsewhere: divergences (with the failed run) and task dissimilarity (per benchmark)."""
        out: dict[tuple[str, str, str], list[tuple[Record, dict]]] = defaultdict(list)
        for r in self.records:
            for e in self.run_events[id(r)]:
                if e.get("kind") not in ("diverged", "task_dissimilarity"):
                    out[(r.benchmark, r.strategy, e["kind"])].append((r, e))
        return out

    def fired_in(self, hits: list[tuple[Record, dict]], bench: str, strat: str) -> str:
        """``2/3 runs``: in how many of the strategy's runs the kind fired."""
        return f"{len({id(r) for r, _ in hits})}/{len(self.runs[(bench, strat)])} runs"


def failures(s: _Study) -> list[Finding]:
    """One line per strategy with failed runs: how many, the first error in full."""
    out = []
    for (bench, strat), rs in s.runs.items():
        failed = [r for r in rs if r.get("status", "finished") != "finished"]
        if not failed:
            continue
        text = f"{s.name(bench, strat)}: {len(failed)} of {len(rs)} runs failed ({_run_label(failed[0])}: " \
               f"{_one_based_error(failed[0])}"
        others = [f"{_run_label(r)} ({(r.get('error') or '?').split(':')[0]})" for r in failed[1:]]
        text += (f"; also {', '.join(others)})" if others else ")")
        left = len(rs) - len(failed)
        if 0 < left < MIN_RUNS_FOR_INTERVAL:
            text += f"; n={left}: no interval"
        out.append(Finding(FAILURE, text, len(failed)))
    return out


def per_strategy(s: _Study) -> list[Finding]:
    """One line per (strategy, kind): the first event's fact, advice for the strategy's family,
    and how often the kind fired. Benchmark facts and divergences are reported elsewhere."""
    out = []
    for (bench, strat, kind), hits in s.events().items():
        r, first = hits[0]
        count = f" [{len(hits)} events in {s.fired_in(hits, bench, strat)}]" if len(hits) > 1 else ""
        fact, stored = adv.split(first.get("message", kind))
        msg = adv.with_advice(fact, s.advice(kind, bench, strat, stored))
        rank = BOUND if adv.is_bound(strat) else _RANK.get(kind, OTHER)
        out.append(Finding(rank, f"{s.name(bench, strat)} ({_run_label(r)}{_after(first)}): {msg}{count}",
                           len(hits)))
    return out


def _who(s: _Study, members: list[tuple[str, str, list]]) -> str:
    """``er (3/3 runs), der (2/3 runs)``, or for a long list the names and the runs in all."""
    if len(members) <= 2:
        return ", ".join(f"{s.name(b, st)} ({s.fired_in(h, b, st)})" for b, st, h in members)
    fired = sum(len({id(r) for r, _ in h}) for _, _, h in members)
    return ", ".join(s.name(b, st) for b, st, _ in members) + \
        f" ({fired}/{sum(len(s.runs[(b, st)]) for b, st, _ in members)} runs)"


def merged(s: _Study) -> list[Finding]:
    """Summary mode: one line per kind and advice, across the strategies that share it (a
    family shares its advice; the bounds share a line without advice). The detail is the worst
    event's for the kinds in :data:`_MERGED`, the first event's fact otherwise."""
    groups: dict[tuple[str, str, bool], list[tuple[str, str, list]]] = defaultdict(list)
    for (bench, strat, kind), hits in s.events().items():
        bound = adv.is_bound(strat)
        stored = adv.split(hits[0][1].get("message", kind))[1]
        groups[(kind, s.advice(kind, bench, strat, stored), bound)].append((bench, strat, hits))
    out = []
    for (kind, advice, bound), members in groups.items():
        pick = max if kind in _MERGED else (lambda xs, key: xs[0])
        name, r, e = pick([(s.name(b, st), r, e) for b, st, hits in members for r, e in hits],
                          key=lambda x: x[2].get("value", 0.0))
        value = e.get("value", 0.0)
        fact = (f"{kind.replace('_', ' ')}, {_MERGED[kind].format(100 * value)}" if kind in _MERGED
                else adv.split(e.get("message", kind))[0])
        at = f"{name} " if len(members) > 1 else ""
        text = adv.with_advice(f"{_who(s, members)}: {fact} ({at}{_run_label(r)}{_after(e)})", advice)
        out.append(Finding(BOUND if bound else _RANK.get(kind, OTHER), text, value if kind in _MERGED else 0.0))
    return out


def learning(s: _Study) -> list[Finding]:
    """Methods whose learning accuracy is far below naive's: told to loosen, not tighten."""
    return [Finding(LEARNING, adv.with_advice(f"{s.name(bench, strat)}: {low.fact()}", low.advice()),
                    low.naive - low.learning_acc) for (bench, strat), low in s.low.items()]


def benchmark_facts(s: _Study) -> list[Finding]:
    """Task dissimilarity, once per benchmark: it is a property of the data, not of a method."""
    by_bench: dict[str, list[tuple[Record, dict]]] = defaultdict(list)
    for r in s.records:
        by_bench[r.benchmark] += [(r, e) for e in s.run_events[id(r)] if e.get("kind") == "task_dissimilarity"]
    out = []
    for bench, hits in by_bench.items():
        if not hits:
            continue
        vals = sorted(e["value"] for _, e in hits)
        tasks = sorted({e["task"] for _, e in hits if isinstance(e.get("task"), int)})
        where = (f"task {tasks[0] + 1} differs from task {tasks[0]}" if len(tasks) == 1 else
                 f"tasks {', '.join(str(t + 1) for t in tasks)} differ from the task before")
        value = f"{vals[0]:.2f}" if vals[-1] - vals[0] < 0.005 else f"{vals[0]:.2f}-{vals[-1]:.2f}"
        runs = len({id(r) for r, _ in hits})
        total = sum(r.get("status", "finished") == "finished" for (b, _), rs in s.runs.items() if b == bench
                    for r in rs)  # failed runs keep no probe events
        seen = "" if runs == total else f", in {runs} of {total} runs"
        out.append(Finding(BENCHMARK, f"{bench} (a fact of the benchmark): {where} by {value} > "
                                      f"{hits[0][1].get('threshold', 0.0):.2f} (heuristic gate{seen}); expect "
                                      "forgetting; see `retain dissimilarity`", runs))
    return out


def variance(s: _Study, *, merge: bool) -> list[Finding]:
    """Rankings the 95% intervals leave open; merged per (benchmark, metric) in summary mode."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for o in overlapping_rankings(s.records):
        groups[(o.benchmark, o.metric) if merge else (o.benchmark, o.metric, o.strategies)].append(o.describe())
    out = []
    for key, chains in groups.items():
        where = f"{key[0]}, " if s.multi else ""
        out.append(Finding(VARIANCE, f"{where}{title(key[1])}: {'; '.join(chains)} overlap "
                                     f"(± 95% CI), so their order is not established; {RECOMMEND}"))
    return out


def findings(records: list[Record], mode: str = "summary") -> list[Finding]:
    """Every finding for ``records`` (run records, failed ones included), most severe first."""
    if mode not in MODES:
        raise ValueError(f"warnings mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "none" or not records:
        return []
    s = _Study(records)
    events = merged(s) if mode == "summary" else per_strategy(s)
    out = failures(s) + learning(s) + events + variance(s, merge=mode == "summary") + benchmark_facts(s)
    return sorted(out, key=lambda f: (f.rank, -f.weight))


def _cost(line: str, width: int | None) -> int:
    return max(1, len(textwrap.wrap(line, width))) if width else 1


def select(records: list[Record], mode: str = "summary", *, max_lines: int = MAX_LINES,
           width: int | None = None) -> tuple[list[Finding], str | None]:
    """The findings to print and the closing line (None in ``all``/``none`` mode). In summary
    mode the lines, wrapped at ``width`` if given, and the closing line fit in ``max_lines``."""
    found = findings(records, mode)
    if mode != "summary" or not found:
        return found, None
    n_events = sum(len(events_of(r)) for r in records)
    shown, used = [], 0
    for i, f in enumerate(found):
        hidden = len(found) - i - 1
        footer_cost = _cost(_footer(hidden, n_events), width)
        if shown and used + _cost(f"{f.level}: {f.text}", width) + footer_cost > max_lines:
            break
        shown.append(f)
        used += _cost(f"{f.level}: {f.text}", width)
    hidden = len(found) - len(shown)
    # Nothing hidden and every event on a line of its own: a footer would only repeat the count.
    return shown, _footer(hidden, n_events) if hidden or n_events > len(shown) else None


def _footer(hidden: int, n_events: int) -> str:
    more = f"{hidden} more not shown; " if hidden else ""
    events = "the one event is" if n_events == 1 else f"all {n_events} events are"
    return f"{more}{events} in the store and the report: `--warnings all` or `retain report`"


def warning_lines(records: list[Record], mode: str = "summary", *, max_lines: int = MAX_LINES,
                  width: int | None = None) -> list[str]:
    """The lines :func:`print_warnings` prints, as plain text (``level: text``)."""
    shown, footer = select(records, mode, max_lines=max_lines, width=width)
    return [f"{f.level}: {f.text}" for f in shown] + ([footer] if footer else [])


def print_warnings(records: list[Record], console: Any, mode: str = "summary", *,
                   max_lines: int = MAX_LINES) -> None:
    """Print the warnings for ``records`` (`retain run` calls this after its table) on a rich
    console; summary mode fits ``max_lines`` lines as wrapped at the console's width."""
    from rich.text import Text

    shown, footer = select(records, mode, max_lines=max_lines, width=getattr(console, "width", None))
    style = {"failed": "red", "warning": "yellow", "note": "cyan"}
    for f in shown:
        console.print(Text.assemble((f.level, style[f.level]), f": {f.text}"))
    if footer:
        console.print(Text(footer, style="dim"))
