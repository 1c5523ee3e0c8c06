"""Pure functions of the accuracy matrix R, where R[i][j] is the accuracy on task j after
training on task i (0-based here). Inputs are never modified. Accuracies are fractions in [0, 1].

References: Chaudhry et al. 2018 (forgetting), Lopez-Paz & Ranzato 2017 (BWT, FWT)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Matrix = Sequence[Sequence[float]] | np.ndarray


def _square(R: Matrix) -> np.ndarray:
    a = np.array(R, dtype=np.float64)  # a copy: callers' lists are never touched
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"accuracy matrix must be square T x T with T >= 1, got shape {a.shape}")
    return a


def average_accuracy(R: Matrix) -> float:
    """ACC: mean accuracy over all tasks after the last one, (1/T) sum_j R[T-1][j]."""
    a = _square(R)
    return float(a[-1].mean())


def average_accuracy_curve(R: Matrix) -> list[float]:
    """A_k = mean_{j<=k} R[k][j]: average accuracy over the tasks seen after each task."""
    a = _square(R)
    return [float(a[k, : k + 1].mean()) for k in range(a.shape[0])]


def forgetting_per_task(R: Matrix, *, include_last: bool = False) -> list[float]:
    """f_j = max_{l<T-1} R[l][j] - R[T-1][j] for each j < T-1 (Chaudhry 2018; may be negative).

    The maximum runs over every earlier row, as in Chaudhry et al. (rows before task j was
    trained included; in class-IL they score 0 on j, so only the rows from j on matter).

    ``include_last=True`` takes the maximum over the last row too (l <= T-1), the definition of
    libraries that report forgetting >= 0: an improved task then counts as 0, not as negative."""
    a = _square(R)
    T = a.shape[0]
    stop = T if include_last else T - 1
    return [float(a[:stop, j].max() - a[T - 1, j]) for j in range(T - 1)]


def forgetting(R: Matrix, *, include_last: bool = False) -> float:
    """Average forgetting over the first T-1 tasks after the last task (0 when T = 1).

    The maximum runs over rows before the last one, so the value can be negative when a task
    improved (backward transfer); libraries that include the last row (``include_last=True``)
    clip it at 0."""
    f = forgetting_per_task(R, include_last=include_last)
    return float(np.mean(f)) if f else 0.0


def backward_transfer(R: Matrix) -> float:
    """BWT = 1/(T-1) sum_{i<T-1} (R[T-1][i] - R[i][i]); 0 when T = 1."""
    a = _square(R)
    T = a.shape[0]
    return float(np.mean(a[-1, :-1] - np.diag(a)[:-1])) if T > 1 else 0.0


def forward_transfer(R: Matrix, baseline: Sequence[float]) -> float:
    """FWT = 1/(T-1) sum_{i>=1} (R[i-1][i] - b_i), b_i the accuracy of the randomly initialised
    model on task i; 0 when T = 1."""
    a = _square(R)
    b = np.asarray(baseline, dtype=np.float64)
    T = a.shape[0]
    if b.shape != (T,):
        raise ValueError(f"baseline must have one accuracy per task ({T}), got shape {b.shape}")
    return float(np.mean([a[i - 1, i] - b[i] for i in range(1, T)])) if T > 1 else 0.0


def learning_accuracy(R: Matrix) -> float:
    """Mean of the diagonal: how well each task was learnt when it was the current one."""
    return float(np.diag(_square(R)).mean())


def summarize(R: Matrix, baseline: Sequence[float] | None = None) -> dict[str, float]:
    """Every scalar metric of one run."""
    out = {
        "avg_acc": average_accuracy(R),
        "forgetting": forgetting(R),
        "bwt": backward_transfer(R),
        "learning_acc": learning_accuracy(R),
    }
    if baseline is not None:
        out["fwt"] = forward_transfer(R, baseline)
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with an integer ``df``: the closed forms of Abramowitz & Stegun
    26.7.3 (odd df) and 26.7.4 (even df), sums of powers of cos(theta), theta = atan(t / sqrt(df))."""
    theta = math.atan(t / math.sqrt(df))
    c2, term, total = math.cos(theta) ** 2, 1.0, 1.0
    if df % 2 == 0:
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return math.sin(theta) * total
    if df == 1:
        return 2 * theta / math.pi
    for k in range(1, (df - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)


def t_quantile(level: float, df: int) -> float:
    """The t with P(|T| <= t) = ``level`` (two-sided) for an integer ``df`` >= 1, by bisection on
    the exact distribution function (scipy's ``t.ppf(0.5 + level / 2, df)`` without importing
    scipy, which costs over a second of every command's start)."""
    if not 0 < level < 1 or df < 1:
        raise ValueError(f"need 0 < level < 1 and df >= 1, got {level}, {df}")
    low, high = 0.0, 1.0
    while _t_central(high, df) < level:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if _t_central(mid, df) < level:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * high:
            break
    return (low + high) / 2


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (half-width 0 for one value)."""
    mean, std = mean_std(values)
    n = len(values)
    if n < 2:
        return mean, 0.0
    return mean, float(t_quantile(level, n - 1) * std / np.sqrt(n))


#: Fewer runs than this give no interval: with n = 2 the Student-t half-width is 12.7 SDs wide.
MIN_RUNS_FOR_INTERVAL = 3


def format_mean_ci(values: Sequence[float], *, scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± h`` with h the 95% Student-t half-width: the one meaning of ± everywhere retain
    prints one (terminal, report, plots, warnings). Below :data:`MIN_RUNS_FOR_INTERVAL` runs: the
    mean and ``(n=N)``, no interval."""
    if len(values) == 0:
        return "—"
    mean, half = confidence_interval(values)
    m = round(mean * scale, digits) + 0.0  # + 0.0: no "-0.0" for a mean that rounds to zero
    if len(values) < MIN_RUNS_FOR_INTERVAL:
        return f"{m:.{digits}f} (n={len(values)})"
    return f"{m:.{digits}f} ± {half * scale:.{digits}f}"
