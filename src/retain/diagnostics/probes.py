"""The after-task hook that runs every diagnostic probe and appends to ``result.probes`` (one
dict per task: ``task`` and name -> float) and ``result.events`` (see retain.diagnostics).

Cheap by design: activation probes (dormant units, ranks) use one fixed batch of the current task's test set (256
samples) and a forward pass with hooks on the ReLU layers; task dissimilarity embeds 256
training samples of each task once, in a fixed random embedding. Each call records its own
cost as the probe ``probe_seconds``. Measured on 2 shared CPU cores, MLP 100-100, naive:
about 0.02 s a task (permuted digits trains 0.17 s a task, permuted MNIST 1.7 s), so they are
on by default; the Gaussian OTDD adds about 0.1 s a task and is off unless ``otdd=True``
(``retain dissimilarity`` always computes it). Probes use no random numbers from the
run's generators, so they never change a run's results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from retain.diagnostics import advice, buffer, collapse, forgetting
from retain.diagnostics import dissimilarity as dis


@dataclass
class ProbeConfig:
    """Settings of the per-task probes and of the thresholds that turn them into events."""

    batch: int = field(default=256, metadata={"help": "probe batch: test samples of the current task"})
    tau: float = field(default=0.025, metadata={"help": "ReDo dormant threshold on the normalised score"})
    forgetting_threshold: float = field(default=0.10, metadata={"help": "one-task drop that is an event"})
    collapse_window: int = field(default=10, metadata={"help": "tasks over which learning acc must fall (at "
                                                              "most the benchmark's tasks, at least 4)"})
    collapse_min_drop: float = field(default=0.05, metadata={"help": "fall of learning acc over the window"})
    dissimilarity: bool = field(default=True, metadata={"help": "measure task dissimilarity"})
    otdd: bool = field(default=False, metadata={"help": "also the Gaussian OTDD (~0.1 s a task; off by default)"})
    gate: float = field(default=dis.HEURISTIC_GATE,
                        metadata={"help": "dissimilarity gate for an event (a heuristic, no primary source)"})
    buffer_min_entropy: float = field(default=0.5, metadata={"help": "normalised class entropy floor"})


def relu_activations(model: nn.Module, x: Tensor) -> list[Tensor]:
    """Outputs of every ReLU module of ``model`` on ``x`` (eval mode, no grad)."""
    acts: list[Tensor] = []
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:  # a transformer's GELUs: nothing to record, so no forward pass (2 s a task on MiniLM)
        return acts
    hooks = [m.register_forward_hook(lambda _m, _i, out: acts.append(out.detach())) for m in relus]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return acts


def activation_probes(model: nn.Module, x: Tensor, tau: float) -> dict[str, float]:
    """Dormant fractions (all ReLU units pooled and per layer), ranks of the last layer, mean |w|."""
    acts = relu_activations(model, x)
    out: dict[str, float] = {"mean_abs_w": collapse.mean_abs_weight(model)}
    if not acts:
        return out
    units = sum(a.shape[1] for a in acts)
    out["dormant_redo"] = sum(collapse.dormant_fraction(a, tau) * a.shape[1] for a in acts) / units
    out["dormant_1pct"] = sum(collapse.inactive_fraction(a) * a.shape[1] for a in acts) / units
    for k, a in enumerate(acts):
        out[f"dormant_redo_l{k}"] = collapse.dormant_fraction(a, tau)
    out["erank"] = collapse.effective_rank(acts[-1])
    out["srank99"] = float(collapse.energy_rank(acts[-1]))
    return out


#: The entries of a strategy's state_dict that are the model's and the optimiser's, not the method's.
_NOT_THE_METHODS = ("model", "optimizer", "scaler", "task")


def _tensor_bytes(obj: Any, seen: set[tuple[int, int]]) -> int:
    """The bytes of the tensors in ``obj``, each tensor's own elements (a member's view into an
    ensemble's stacked storage counts its slice, not the whole stack), a tensor seen twice once."""
    if isinstance(obj, Tensor):
        nbytes = obj.numel() * obj.element_size()
        key = (obj.data_ptr() if obj.device.type != "meta" else id(obj), nbytes)
        if key in seen:
            return 0
        seen.add(key)
        return nbytes
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v, seen) for v in obj)
    return 0


def method_state_mb(strategy: Any) -> float:
    """What the method itself holds beyond the model and its optimiser, in MiB: the tensors of its
    checkpoint state (replay buffer with its logits, EWC's Fishers and anchors, SI's importances,
    LwF's teacher, ...), each tensor once. 0 for naive fine-tuning."""
    try:
        state = strategy.state_dict()
    except Exception:  # noqa: BLE001 - a probe never fails a run
        return 0.0
    own = {k: v for k, v in state.items() if k not in _NOT_THE_METHODS} if isinstance(state, dict) else {}
    return _tensor_bytes(own, set()) / 2**20


class Probes:
    """Callable after-task hook for :func:`retain.training.loop.run_experiment` (one per run: it keeps
    the per-task embeddings and histories it needs)."""

    def __init__(self, config: ProbeConfig | None = None):
        self.cfg = config or ProbeConfig()
        self.feats: list[Tensor] = []
        self.labels: list[Tensor] = []
        self.learn: list[float] = []
        self.dormant: list[float] = []
        self.embed: dis.RandomReLUEmbedding | None = None
        self.over_gate = False

    def __call__(self, ctx: Any) -> None:
        t0 = time.perf_counter()
        t, cfg, exps = ctx.task, self.cfg, ctx.benchmark.experiences
        exp, R = exps[t], ctx.acc_matrix
        family = getattr(ctx.strategy, "family", "other")  # advice fits the method (none for the bounds)
        probes: dict[str, Any] = {"task": t, "learning_acc": R[t][t],
                                  "method_state_mb": method_state_mb(ctx.strategy)}
        # A strategy that trains once at the end (joint) has untrained rows before it: their
        # accuracies say nothing about forgetting or plasticity, so they raise no such event.
        learns = not getattr(ctx.strategy, "trains_once", False)
        events = []
        if t > 0 and learns:
            events += forgetting.sudden_forgetting_events(R, t, cfg.forgetting_threshold,
                                                          advice=advice.advice("sudden_forgetting", family))
        probes.update(forgetting.forgetting_probes(R, t))
        x = exp.prepare(exp.test_x[: cfg.batch]).to(getattr(ctx.strategy, "device", "cpu"))  # where the model is
        probes.update(activation_probes(ctx.strategy.model, x, cfg.tau))
        self.learn.append(R[t][t])
        self.dormant.append(probes.get("dormant_redo", 0.0))
        # A 5-task benchmark is checked over its 5 tasks: a fixed 10 would never fire on it.
        window = max(4, min(cfg.collapse_window, len(exps)))
        probes["learning_acc_slope"] = collapse.slope(self.learn[-window:])
        if learns:
            events += collapse.collapse_events(self.learn, self.dormant, window=window,
                                                 min_drop=cfg.collapse_min_drop,
                                                 advice=advice.advice("plasticity_collapse", family))
        seen = {c for e in exps[: t + 1] for c in e.classes}
        buf = buffer.buffer_probes(ctx.strategy.stats(), seen, t + 1)
        probes.update(buf)
        events += buffer.buffer_events(buf, t, min_entropy=cfg.buffer_min_entropy)
        if cfg.dissimilarity:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):  # small matrices: BLAS threads only contend
                d = self._dissimilarity(exp, t)
            probes.update(d)
            over = dis.dissimilarity_events(d, t, cfg.gate)
            events += over if not self.over_gate else []  # report crossings, not every task above it
            self.over_gate = bool(over) if t > 0 else self.over_gate
        probes["probe_seconds"] = time.perf_counter() - t0
        if ctx.result is not None:
            ctx.result.probes.append(probes)
            ctx.result.events.extend(events)

    def state_dict(self) -> dict[str, Any]:
        """What the probes carry from task to task, for checkpoints (retain.training.checkpoint); the random
        embedding is not saved: it is rebuilt from its fixed seed."""
        return {"feats": list(self.feats), "labels": list(self.labels), "learn": list(self.learn),
                "dormant": list(self.dormant), "over_gate": self.over_gate}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.feats, self.labels = list(state["feats"]), list(state["labels"])
        self.learn, self.dormant = list(state["learn"]), list(state["dormant"])
        self.over_gate = bool(state["over_gate"])

    def _dissimilarity(self, exp, t: int) -> dict[str, float]:
        x = exp.train_x[: self.cfg.batch]
        x = exp.featurize(x) if exp.featurize is not None else exp.prepare(x)  # token ids: their hashed counts
        if self.embed is None:
            self.embed = dis.RandomReLUEmbedding(x[0].numel(), width=64, seed=0)
        self.feats.append(self.embed(x))
        self.labels.append(exp.train_y[: self.cfg.batch])
        return dis.dissimilarity_probes(self.feats, self.labels, t, otdd=self.cfg.otdd)


def make_probe_hooks(config: ProbeConfig | None = None) -> list[Probes]:
    """The after_task hooks for one run (build a fresh list per run)."""
    return [Probes(config)]


def print_event_warnings(records: list[dict[str, Any]], console: Any, *, mode: str = "summary") -> None:
    """Print the warnings for ``records`` after `retain run`'s table: kept for callers of the
    earlier name; see :func:`retain.cli.warnings.print_warnings`."""
    from retain.cli.warnings import print_warnings

    print_warnings(records, console, mode)
