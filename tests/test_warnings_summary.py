"""The warnings after `retain run`'s table (retain.cli.warnings): each fact once, most
severe first, no advice to the bounds or towards the method being run, a variance alarm only
where the intervals leave a ranking open, failures once, tasks numbered from 1."""

import io
import re
import textwrap

import pytest
from rich.console import Console

from retain.cli.warnings import print_warnings, warning_lines
from retain.diagnostics import advice, collapse, dissimilarity, forgetting
from retain.store.record import RunRecord
from retain.strategies import STRATEGIES

BENCH = "permuted-digits"
# Task 1 (0-based) knocks task 0 down by 30 points: one sudden-forgetting event after it.
R_FORGET = [[0.9, 0.1], [0.6, 0.9]]


def forgetting_event():
    """As older versions stored it: the generic advice, which names replay and EWC."""
    return forgetting.sudden_forgetting_events(R_FORGET, 1)[0]


def dissim_event(value=0.89, task=1):
    return dissimilarity.dissimilarity_events({"dissim_proto_prev": value}, task)[0]


def collapse_event():
    return collapse.collapse_events([0.9] * 5 + [0.8, 0.75, 0.7, 0.6, 0.5], [0.1] * 5 + [0.3] * 5)[0]


def rec(strategy, seed, *, bench=BENCH, events=(), avg=0.5, forg=0.1, status="finished", error=None):
    """A run record. A finished one has a 2-task accuracy matrix with final accuracy ``avg`` and
    forgetting ``forg``, which is also task 1's drop in one task: a sudden-forgetting event when
    above 10 points. The warnings compute metrics and sudden forgetting from that matrix; stored
    sudden-forgetting events (the probes store them too) are left out, so each fact shows once."""
    r = RunRecord(run_key=f"{bench}-{strategy}-{seed}", study="", benchmark=bench, strategy=strategy, seed=seed,
                  status=status, config={}, events=list(events), extra={"order": 0})
    if status == "finished":
        r.acc_matrix, r.baseline = [[avg + forg, 0.0], [avg, avg]], [0.1, 0.1]
    else:
        r.error = error
    return r


def named(line):
    """The strategies a line is about: ``er (seed 0, ...)`` in all mode, ``er (3/3 runs)`` in summary,
    at the start of the line or of a list item (not ``... one new task (seed 0, ...)``)."""
    return set(re.findall(r"(?:^|: |, )([a-z][\w+-]*) \((?:seed \d|\d+/\d+ runs)", line))


@pytest.mark.parametrize("mode", ["summary", "all"])
def test_a_dissimilarity_fact_appears_once_per_benchmark(mode):
    recs = [rec(s, seed, bench=b, events=[dissim_event(0.89 + 0.01 * seed)], avg=0.1 * i + 0.02 * seed)
            for b in (BENCH, "split-digits") for i, s in enumerate(("naive", "er", "ewc")) for seed in range(3)]
    lines = warning_lines(recs, mode)
    facts = [line for line in lines if "differs from" in line]
    assert len(facts) == 2, lines
    assert sum(BENCH in line for line in facts) == 1 and sum("split-digits" in line for line in facts) == 1
    # 0-based task 1 is the second task: it differs from the first.
    assert all("task 2 differs from task 1" in line for line in facts)
    assert not any("replay" in line or named(line) for line in facts)  # about the benchmark, no method advice


@pytest.mark.parametrize("mode", ["summary", "all"])
def test_the_bounds_get_no_advice(mode):
    recs = [rec(s, seed, events=[forgetting_event(), collapse_event()], avg=0.2 + 0.3 * i, forg=0.3)
            for i, s in enumerate(("naive", "joint")) for seed in range(3)]
    lines = warning_lines(recs, mode)
    about = [line for line in lines if named(line) & {"naive", "joint"}]
    assert about and all(named(line) <= {"naive", "joint"} for line in about)
    assert any("sudden forgetting" in line for line in about)  # the fact is still there
    for line in about:
        for word in ("replay", "--strategy", "--redo", "raise", "buffer"):
            assert word not in line, line


@pytest.mark.parametrize("mode", ["summary", "all"])
def test_replay_methods_are_not_told_to_use_replay(mode):
    recs = [rec(s, seed, events=[forgetting_event()], avg=0.2 + 0.3 * i, forg=0.3)
            for i, s in enumerate(("er", "der", "ewc", "si")) for seed in range(3)]
    lines = warning_lines(recs, mode)
    replay = [line for line in lines if named(line) & {"er", "der"}]
    assert replay and all(named(line) <= {"er", "der"} for line in replay), lines
    assert all("replay" not in line and "--strategy" not in line for line in replay), lines
    reg = [line for line in lines if "ewc" in named(line)]
    assert reg and all("--strategy ewc" not in line and "regulariser" not in line for line in reg)
    assert any("--buffer-size" in line for line in replay)  # still told what to do


def test_no_family_is_advised_its_own_kind_of_method():
    for name, cls in STRATEGIES.items():
        for kind in ("sudden_forgetting", "plasticity_collapse"):
            text = advice.advice(kind, cls.family)
            if cls.family == "bound":
                assert text == ""
            same = [n for n, c in STRATEGIES.items() if c.family == cls.family]
            assert not any(f"--strategy {n}" in text for n in same), (name, text)
            if cls.family == "replay":
                assert "replay" not in text
            if cls.family == "regularisation":
                assert "regulariser" not in text and "--strategy ewc" not in text
    assert advice.family_of("no-such-method") == "other"


def groups(spec):
    """(strategy, avg acc values) -> finished records at n = len(values)."""
    return [rec(s, seed, avg=v, forg=0.0) for s, vals in spec for seed, v in enumerate(vals)]


def test_variance_alarm_fires_for_close_overlapping_groups_only():
    close = groups([("er", [0.74, 0.78, 0.76]), ("der", [0.73, 0.77, 0.755])])
    lines = warning_lines(close, "summary")
    alarms = [line for line in lines if "not established" in line]
    assert len(alarms) == 1 and "er 76.0 ±" in alarms[0] and "der" in alarms[0] and "avg acc" in alarms[0]
    # Far apart at n = 3, though each interval is wide (the old rule fired at > 5 points of width).
    far = groups([("er", [0.70, 0.80, 0.75]), ("naive", [0.35, 0.45, 0.40])])
    from retain.diagnostics.variance import group_intervals

    assert all(2 * ci["avg_acc"]["half"] > 0.05 for ci in group_intervals(far).values())
    assert not any("not established" in line for line in warning_lines(far, "all"))
    # Two runs a group: no interval, so no alarm.
    assert not any("not established" in line for line in warning_lines(groups([("er", [0.7, 0.8]),
                                                                             ("der", [0.72, 0.79])]), "all"))


def test_variance_alarm_uses_the_ci_half_width():
    close = groups([("er", [0.74, 0.78, 0.76]), ("der", [0.73, 0.77, 0.755])])
    from retain.metrics.matrix import format_mean_ci

    line = next(line for line in warning_lines(close, "all") if "not established" in line)
    assert f"er {format_mean_ci([0.74, 0.78, 0.76])}" in line  # 76.0 ± 5.0, not the full width 9.9
    assert "± 5.0" in line and "95% CI" in line


DIVERGED = ("DivergedError: loss became non-finite in task 3, epoch 0 with lr 0.1; lower --lr")


def failed_study():
    bad = rec("online-lora", 1, status="failed", error=DIVERGED)
    bad.events = [{"task": 3, "kind": "diverged", "value": 0.0, "threshold": 0.0,
                      "message": "loss became non-finite in task 3, epoch 0 with lr 0.1; lower --lr"}]
    return [rec("online-lora", 0, avg=0.5), bad, rec("online-lora", 2, avg=0.52), rec("er", 0, avg=0.8)]


@pytest.mark.parametrize("mode", ["summary", "all"])
def test_a_failed_run_is_reported_once(mode):
    lines = warning_lines(failed_study(), mode)
    hits = [line for line in lines if "non-finite" in line]
    assert len(hits) == 1 and hits[0] == lines[0], lines  # once, and first
    assert hits[0].startswith("failed: online-lora: 1 of 3 runs failed (seed 1: DivergedError")
    assert "in task 4," in hits[0]  # stored task index 3 is the fourth task
    assert "n=2: no interval" in hits[0]


def test_a_divergence_message_already_one_based_is_left_alone():
    recs = failed_study()
    recs[1]["error"] = DIVERGED.replace("task 3", "task 4")
    (line,) = [line for line in warning_lines(recs, "all") if "non-finite" in line]
    assert "in task 4," in line and "task 5" not in line


def many_events_study():
    """Eleven strategies, three seeds, every kind of event, two failures, overlapping groups."""
    names = [n for n in STRATEGIES.names()]
    recs = []
    for i, s in enumerate(names):
        for seed in range(3):
            if s in ("online-lora", "ode-memory") and seed == 1:
                recs.append(rec(s, seed, status="failed", error=DIVERGED))
                continue
            ev = [dissim_event(0.9), forgetting_event(), forgetting_event(), collapse_event(),
                  {"task": 2, "kind": "buffer_homogeneous", "value": 0.3, "threshold": 0.5,
                   "message": "replay buffer is homogeneous: class entropy 0.30 (normalised) < 0.50; use "
                              "class-balanced sampling or a larger buffer"},
                  {"task": 2, "kind": "new_kind", "value": 1.0, "threshold": 0.0, "message": f"{s} did a thing"}]
            recs.append(rec(s, seed, events=ev, avg=0.5 + 0.01 * (i // 2) + 0.03 * seed, forg=0.1 + 0.02 * seed))
    return recs


def test_summary_fits_a_dozen_lines_most_severe_first_and_says_where_the_rest_is():
    recs = many_events_study()
    lines = warning_lines(recs, "summary")
    assert 5 <= len(lines) <= 12
    assert lines[0].startswith("failed:") and lines[1].startswith("failed:")
    assert "--warnings all" in lines[-1] and "retain report" in lines[-1] and "more not shown" in lines[-1]
    assert sum("differs from" in line for line in lines) <= 1
    wrapped = warning_lines(recs, "summary", width=80)
    assert sum(len(textwrap.wrap(line, 80)) for line in wrapped) <= 12
    everything = warning_lines(recs, "all")
    assert len(everything) > len(lines)  # all mode is not truncated
    assert all(any(f"{s} (seed" in line for line in everything) for s in STRATEGIES.names())


def test_print_modes_and_the_old_name():
    from retain.diagnostics.probes import print_event_warnings

    recs = failed_study()

    def printed(fn, *args):
        buf = io.StringIO()
        fn(recs, Console(file=buf, width=300), *args)
        return buf.getvalue()

    assert printed(print_warnings, "none") == ""
    assert printed(print_warnings, "summary") == printed(print_event_warnings)
    assert "non-finite" in printed(print_warnings, "all")
    with pytest.raises(ValueError, match="warnings mode"):
        warning_lines(recs, "some")


def test_probes_advise_by_family_and_number_tasks_from_one():
    from retain.config.run import RunConfig
    from retain.diagnostics.probes import make_probe_hooks
    from retain.training.loop import run_experiment

    for name, has_advice in (("naive", False), ("ewc", True)):
        res = run_experiment(RunConfig(benchmark="synthetic", strategy=name, tasks=3), after_task=make_probe_hooks())
        forgot = [e for e in res.events if e["kind"] == "sudden_forgetting"]
        assert forgot, name
        for e in forgot:
            assert (";" in e["message"]) == has_advice, e["message"]
            assert f"training task {e['task'] + 1} dropped" in e["message"]


def test_event_messages_number_tasks_from_one():
    assert "training task 2 dropped task 1 by 30.0" in forgetting_event()["message"]
    assert dissim_event(task=1)["message"].startswith("benchmark: task 2 differs from task 1")
    recs = [rec("ewc", 0, events=[forgetting_event()], forg=0.3)]
    (line,) = warning_lines(recs, "all")
    assert "(seed 0, after task 2)" in line


@pytest.mark.parametrize("mode", ["summary", "all"])
def test_a_method_that_barely_learns_is_told_to_loosen_not_to_raise_the_penalty(mode):
    def run(strategy, seed, learn):  # 3 tasks; each task loses 30 of its points to the next
        R = [[learn, 0.0, 0.0], [learn - 0.3, learn, 0.0], [learn - 0.35, learn - 0.3, learn]]
        return RunRecord(run_key=f"{strategy}{seed}", study="", benchmark=BENCH, strategy=strategy, seed=seed,
                         status="finished", config={}, acc_matrix=R, baseline=[0.1] * 3, extra={"order": 0})

    recs = [run("naive", s, 0.95) for s in range(3)] + [run("ewc", s, 0.40) for s in range(3)]
    text = "\n".join(warning_lines(recs, mode))
    assert "ewc: learning accuracy 40.0% against naive's 95.0%" in text and "lower the penalty" in text
    assert "raise the penalty" not in text and "reference bound: no advice" not in text
    er = [run("naive", s, 0.95) for s in range(3)] + [run("ewc", s, 0.90) for s in range(3)]
    assert "raise the penalty" in "\n".join(warning_lines(er, mode))  # one that learns is still told so


def test_no_closing_line_when_every_event_is_shown():
    lines = warning_lines([rec("er", 0, events=[dissim_event()], forg=0.0)], "summary")
    assert len(lines) == 1 and "events" not in lines[0]
