"""Task dissimilarity in [0, 1], measured in a fixed embedding so the number does not move as
the model trains.

Two measures:

- ``prototype``: 1 - cosine similarity of class prototypes (class means of the embedded
  inputs). When two tasks share labels (domain-IL) each task's prototypes are centred on that
  task's own mean first, so the number compares how the classes are laid out rather than the
  overall brightness of the input; cosines are clipped at 0, so the value lies in [0, 1].
  Tasks with disjoint labels compare their (uncentred) task means instead.
- ``otdd``: a Gaussian approximation of the optimal-transport dataset distance (Alvarez-Melis &
  Fusi, NeurIPS 2020). Each class is a Gaussian; the cost of matching class a of one task with
  class b of the other is OTDD's point cost, the feature term plus the label term, both
  approximated by the Bures-Wasserstein distance between the two Gaussians: 2 W2^2(N_a, N_b).
  The class-level optimal transport (weights = class frequencies) is solved exactly as a linear
  program. **Scaling**: the result is divided by the cost of the independent coupling
  (every class matched with every class in proportion), which bounds it from above because
  W2^2(P, Q) <= |mu_P - mu_Q|^2 + tr S_P + tr S_Q. So 0 means identical class-conditional
  Gaussians and 1 means the best matching is no better than matching at random.

The gate of 0.73 above which continual learning is said to falter is a **heuristic** from the
project's seed; no primary source for it was found. It is a parameter, not a law:
``retain dissimilarity`` measures where a strategy actually falters.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from retain.diagnostics import Event, make_event

HEURISTIC_GATE = 0.73  # heuristic, no primary source (see module docstring)


class RandomReLUEmbedding:
    """A fixed, seeded random projection followed by ReLU: relu(x W), W ~ N(0, 1/d)."""

    def __init__(self, in_features: int, width: int = 64, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(in_features, width, generator=g) / in_features ** 0.5

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        return torch.relu(x.reshape(x.shape[0], -1).float() @ self.weight)


def _prototypes(f: np.ndarray, y: np.ndarray) -> dict[int, np.ndarray]:
    return {int(c): f[y == c].mean(0) for c in np.unique(y)}


def _cos_dist(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 0.0
    if na == 0 or nb == 0:
        return 1.0
    return float(min(1.0, max(0.0, 1.0 - float(a @ b) / (na * nb))))  # rounding can push cos past 1


def prototype_dissimilarity(fa: Tensor, ya: Tensor, fb: Tensor, yb: Tensor) -> float:
    """1 - cos of class prototypes (see the module docstring), in [0, 1]; 0 for identical tasks."""
    a, b = np.asarray(fa, np.float64), np.asarray(fb, np.float64)
    pa, pb = _prototypes(a, np.asarray(ya)), _prototypes(b, np.asarray(yb))
    shared = sorted(set(pa) & set(pb))
    if not shared:
        return _cos_dist(a.mean(0), b.mean(0))
    ca, cb = np.mean(list(pa.values()), 0), np.mean(list(pb.values()), 0)
    return float(np.mean([_cos_dist(pa[c] - ca, pb[c] - cb) for c in shared]))


def _gaussians(f: np.ndarray, y: np.ndarray, ridge: float) -> list[tuple[float, np.ndarray, np.ndarray]]:
    out = []
    for c in np.unique(y):
        x = f[y == c]
        cov = np.cov(x, rowvar=False) if len(x) > 1 else np.zeros((f.shape[1], f.shape[1]))
        out.append((len(x) / len(f), x.mean(0), np.atleast_2d(cov) + ridge * np.eye(f.shape[1])))
    return out


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def bures_w2(m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray,
             sqrt_s1: np.ndarray | None = None) -> float:
    """Squared 2-Wasserstein distance between N(m1, s1) and N(m2, s2) (closed form);
    ``sqrt_s1`` may pass a precomputed s1^(1/2)."""
    r = _sqrtm_psd(s1) if sqrt_s1 is None else sqrt_s1
    cross = np.linalg.eigvalsh(r @ s2 @ r)
    bures = np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(cross, 0, None)).sum()
    return float(max(0.0, ((m1 - m2) ** 2).sum() + bures))


def _ot(cost: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    from scipy.optimize import linprog

    n, m = cost.shape
    a_eq = np.zeros((n + m, n * m))
    for i in range(n):
        a_eq[i, i * m:(i + 1) * m] = 1
    for j in range(m):
        a_eq[n + j, j::m] = 1
    res = linprog(cost.ravel(), A_eq=a_eq, b_eq=np.concatenate([p, q]), bounds=(0, None), method="highs")
    return float(res.fun)


def otdd_gaussian(fa: Tensor, ya: Tensor, fb: Tensor, yb: Tensor, ridge: float = 1e-6) -> float:
    """Gaussian-approximation OTDD scaled to [0, 1] by the independent coupling's cost."""
    ga = _gaussians(np.asarray(fa, np.float64), np.asarray(ya), ridge)
    gb = _gaussians(np.asarray(fb, np.float64), np.asarray(yb), ridge)
    roots = [_sqrtm_psd(s1) for _, _, s1 in ga]  # one square root per class, not per pair
    cost = np.array([[2 * bures_w2(m1, s1, m2, s2, r) for _, m2, s2 in gb] for (_, m1, s1), r in zip(ga, roots)])
    indep = np.array([[2 * (((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2)) for _, m2, s2 in gb]
                      for _, m1, s1 in ga])
    p, q = np.array([w for w, *_ in ga]), np.array([w for w, *_ in gb])
    bound = float(p @ indep @ q)
    return float(np.clip(_ot(cost, p, q) / bound, 0.0, 1.0)) if bound > 0 else 0.0


def dissimilarity_probes(feats: list[Tensor], labels: list[Tensor], t: int, *, otdd: bool = True,
                         max_past: int = 4096) -> dict[str, float]:
    """Task t against task t-1 (``dissim_*_prev``) and against all earlier tasks pooled
    (``dissim_*_past``, an evenly strided subset of at most ``max_past`` samples so the cost stays
    flat over long sequences); {} for the first task."""
    if t == 0:
        return {}
    past_f, past_y = torch.cat(feats[:t]), torch.cat(labels[:t])
    if len(past_y) > max_past:
        keep = torch.linspace(0, len(past_y) - 1, max_past).long()
        past_f, past_y = past_f[keep], past_y[keep]
    out = {"dissim_proto_prev": prototype_dissimilarity(feats[t - 1], labels[t - 1], feats[t], labels[t]),
           "dissim_proto_past": prototype_dissimilarity(past_f, past_y, feats[t], labels[t])}
    if otdd:
        out["dissim_otdd_prev"] = otdd_gaussian(feats[t - 1], labels[t - 1], feats[t], labels[t])
        out["dissim_otdd_past"] = otdd_gaussian(past_f, past_y, feats[t], labels[t])
    return out


def dissimilarity_events(probes: dict[str, float], task: int, gate: float = HEURISTIC_GATE) -> list[Event]:
    """An event when task ``task`` (0-based, as stored) is more dissimilar than ``gate`` from the
    previous one. It is a fact about the benchmark, the same whatever the method, so the message
    (tasks numbered from 1) gives no advice to the method; it points to the study that measures
    where a method falters."""
    v = probes.get("dissim_proto_prev")
    if v is None or v <= gate:
        return []
    msg = (f"benchmark: task {task + 1} differs from task {task}: dissimilarity {v:.2f} > {gate:.2f} (a heuristic "
           "gate, no primary source), so expect forgetting where earlier tasks are not protected; "
           "`retain dissimilarity` measures where a method falters")
    return [make_event("task_dissimilarity", task, v, gate, msg)]
