"""Property tests (hypothesis) for the metric functions and the study-file parser: bounds that
must hold for every accuracy matrix, invariances under relabelling tasks where they hold, and
a parser that expands every valid grid and refuses every unknown key or wrong type."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retain.config.run import RunConfig
from retain.errors import ConfigError
from retain.metrics import matrix as M

acc = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def matrices(draw, min_t: int = 1, max_t: int = 6):
    t = draw(st.integers(min_t, max_t))
    return [[draw(acc) for _ in range(t)] for _ in range(t)]


@st.composite
def matrix_and_perm(draw, min_t: int = 2):
    R = draw(matrices(min_t=min_t))
    return R, draw(st.permutations(range(len(R))))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@given(matrices())
def test_bounds_hold_for_every_matrix(R):
    assert 0.0 <= M.average_accuracy(R) <= 1.0
    assert 0.0 <= M.learning_accuracy(R) <= 1.0
    assert all(0.0 <= a <= 1.0 for a in M.average_accuracy_curve(R))
    assert -1.0 <= M.forgetting(R) <= 1.0
    assert -1.0 <= M.backward_transfer(R) <= 1.0
    assert all(f >= 0.0 for f in M.forgetting_per_task(R, include_last=True))
    assert M.forgetting(R, include_last=True) >= 0.0
    assert M.forgetting(R, include_last=True) >= M.forgetting(R)  # a max over more rows
    assert M.average_accuracy_curve(R)[-1] == M.average_accuracy(R)


@given(matrices(), st.data())
def test_fwt_is_bounded_by_the_baseline(R, data):
    b = [data.draw(acc) for _ in R]
    fwt = M.forward_transfer(R, b)
    assert -1.0 <= fwt <= 1.0
    if len(R) > 1:  # FWT can never exceed the best the model could do above the baseline
        assert fwt <= max(1.0 - x for x in b[1:]) + 1e-12


@given(matrices())
def test_inputs_are_never_modified(R):
    before = copy.deepcopy(R)
    M.summarize(R, [0.1] * len(R))
    M.forgetting_per_task(R, include_last=True)
    assert R == before


@given(matrix_and_perm())
def test_acc_does_not_depend_on_how_the_tasks_are_numbered(mp):
    R, perm = mp
    relabelled = [[row[p] for p in perm] for row in R]  # evaluate the same tasks in another column order
    assert _close(M.average_accuracy(relabelled), M.average_accuracy(R))


@given(matrices(min_t=2))
def test_forgetting_matches_the_textbook_max_when_unseen_tasks_score_zero(R):
    """Chaudhry 2018 takes the max over all rows before the last; retain starts it at the row where
    the task is learnt (rows before it measure an unseen task). In class-IL an unseen task scores
    0, and there the two agree. Forgetting is not invariant to renumbering the tasks in general:
    it depends on the order of training by definition."""
    a = np.tril(np.asarray(R))  # zero above the diagonal: unseen classes are never predicted
    T = len(R)
    textbook = np.mean([a[: T - 1, j].max() - a[T - 1, j] for j in range(T - 1)])
    assert _close(M.forgetting(a.tolist()), float(textbook))


@given(matrix_and_perm(min_t=2))
def test_bwt_and_learning_acc_are_invariant_to_a_joint_relabelling(mp):
    """Renumbering the earlier tasks consistently (rows and columns alike) keeps the diagonal and
    the last row's entries paired, so BWT and the learning accuracy do not change."""
    R, _ = mp
    T = len(R)
    perm = list(np.random.default_rng(T).permutation(T - 1)) + [T - 1]
    a = np.asarray(R)[perm][:, perm]
    assert _close(M.backward_transfer(a.tolist()), M.backward_transfer(R))
    assert _close(M.learning_accuracy(a.tolist()), M.learning_accuracy(R))


@given(st.integers(2, 6), st.data())
def test_forgetting_is_minus_bwt_when_accuracy_only_falls_after_learning(T, data):
    R = [[data.draw(acc) for _ in range(T)] for _ in range(T)]
    for j in range(T):  # each column non-increasing from the diagonal down, and below it before
        for i in range(j + 1, T):
            R[i][j] = min(R[i][j], R[i - 1][j])
        for i in range(j):
            R[i][j] = min(R[i][j], R[j][j])
    assert _close(M.forgetting(R), -M.backward_transfer(R))
    assert _close(M.forgetting(R, include_last=True), M.forgetting(R))


@given(st.lists(acc, min_size=1, max_size=6))
def test_no_change_means_no_forgetting(final):
    R = [list(final) for _ in final]  # every row the same: nothing forgotten, nothing gained
    assert M.forgetting(R) == 0.0 and M.backward_transfer(R) == 0.0


# ---- the study-file parser -------------------------------------------------------------------
pytest.importorskip("retain.config.study_file")
from retain.config.study_file import parse_study  # noqa: E402

_FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Names a benchmark table may hold: every run setting, and its options table.
_KEYS = {f.name for f in dataclasses.fields(RunConfig)} | {"options"}


@_FAST
@given(seeds=st.integers(1, 4), epochs=st.lists(st.integers(1, 9), min_size=1, max_size=3, unique=True),
       lrs=st.lists(st.sampled_from([0.01, 0.05, 0.1, 0.5]), min_size=1, max_size=2, unique=True))
def test_a_valid_grid_expands_to_every_combination(seeds, epochs, lrs):
    text = (f"[study]\nseeds = {seeds}\n[settings]\nepochs = {epochs}\n[benchmarks.synthetic]\n"
            f"[strategies.naive]\nsettings = {{ lr = {lrs} }}\n[strategies.joint]\n")
    configs = parse_study(text, check_data=False).configs
    naive = [c for c in configs if c.strategy == "naive"]
    assert len(naive) == seeds * len(epochs) * len(lrs)
    assert {(c.seed, c.epochs, c.lr) for c in naive} == {(s, e, lr) for s in range(seeds) for e in epochs
                                                           for lr in lrs}
    assert len({c.key for c in configs}) == len(configs)  # no run twice


@_FAST
@given(key=st.from_regex(r"[a-z][a-z_]{2,12}", fullmatch=True).filter(lambda k: k not in _KEYS))
def test_an_unknown_setting_is_refused_with_its_line(key):
    text = f"[study]\nseeds = 1\n[benchmarks.synthetic]\n{key} = 3\n[strategies.naive]\n"
    with pytest.raises(ConfigError, match=rf"<study>:4: benchmarks\.synthetic\.{key}: unknown setting"):
        parse_study(text, check_data=False)


@_FAST
@given(name=st.sampled_from(["epochs", "batch_size", "tasks"]),
       value=st.one_of(st.from_regex(r"[a-z0-9 ]{1,5}", fullmatch=True).map(lambda s: f'"{s}"'),
                       st.booleans().map(lambda b: str(b).lower()), st.just("[[1]]")))
def test_a_wrong_type_is_refused_naming_the_key(name, value):
    text = f"[study]\nseeds = 1\n[settings]\n{name} = {value}\n[benchmarks.synthetic]\n[strategies.naive]\n"
    with pytest.raises(ConfigError, match=rf"<study>:4: settings\.{name}: must be"):
        parse_study(text, check_data=False)
