"""Checkpoints at task boundaries, so a killed run resumes where it stopped and ends with the same
accuracy matrix as a run that was never interrupted (bit for bit on CPU).

One file per run, ``<dir>/<run key>.pt``, holding the strategy's ``state_dict()`` (model,
optimiser and whatever the strategy adds: buffer, Fisher, adapters), every random number
generator the run draws from (torch's global generator, the loop's batch generator, Python's
``random`` and numpy's legacy global generator) and the bookkeeping of the tasks done so far.

Safety: the file is written to a temporary name and moved into place with ``os.replace``, so a
kill during the write leaves the previous checkpoint intact. It is read with
``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers: a file whose
pickle would import or call anything else is refused with a DataError, never executed. To keep
that promise on the writing side, :func:`save` refuses state that holds anything but tensors,
numbers, strings, None and lists/tuples/dicts of them (the bookkeeping goes in as JSON).
"""

from __future__ import annotations

import json
import os
import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retain.errors import DataError, weights_only_refusal

FORMAT = 1
_PLAIN = (torch.Tensor, int, float, str, bool, type(None), torch.Size)


def path_for(directory: str | Path, run_key: str) -> Path:
    return Path(directory) / f"{run_key}.pt"


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError naming the first leaf that ``weights_only`` loading would refuse."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, where)
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"checkpoint state {where} is a {type(obj).__name__}; state_dict() must hold only "
                        "tensors, numbers, strings, None and lists/tuples/dicts of them")


def rng_state(loop_generator: torch.Generator) -> dict[str, Any]:
    """Every generator a run may draw from, as tensors and plain values."""
    kind, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, mt, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "loop": loop_generator.get_state(),
        "python": [version, list(mt), py_gauss],
        "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
    }
    # CUDA keeps one generator per device (dropout, randn on the device); saved only once CUDA is in use,
    # so a CPU run neither initialises CUDA nor changes its checkpoint.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], loop_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    loop_generator.set_state(state["loop"])
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state:
        if not torch.cuda.is_available():
            raise DataError("the checkpoint holds CUDA random states but CUDA is not available here; "
                            "resume on a machine with the run's device")
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, *, run_key: str, task: int, strategy_state: dict[str, Any], rng: dict[str, Any],
         progress: dict[str, Any], hooks: dict[str, Any] | None = None) -> None:
    """Write the checkpoint after ``task`` atomically (temporary file, fsync, ``os.replace``)."""
    _check_plain(strategy_state, "strategy")
    _check_plain(hooks or {}, "hooks")
    blob = {"format": FORMAT, "run_key": run_key, "task": task, "strategy": strategy_state, "rng": rng,
            "progress": json.dumps(progress), "hooks": hooks or {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        torch.save(blob, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load(path: Path, *, run_key: str) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none. Refuses (DataError) a file that is
    corrupt, holds anything but tensors and plain values, or belongs to another run."""
    if not path.exists():
        return None
    if not path.is_file():
        raise DataError(f"{path}: the checkpoint path is not a file; remove it to start the run afresh")
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol warns; the refusal below says it all
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: checkpoint refused: it holds objects other than tensors and plain values "
                        f"({weights_only_refusal(str(exc))}); delete it to start the run afresh") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{path}: checkpoint is corrupt or truncated ({exc.__class__.__name__}); "
                        "delete it to start the run afresh") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise DataError(f"{path}: not a retain checkpoint of format {FORMAT}; delete it to start afresh")
    if blob.get("run_key") != run_key:
        raise DataError(f"{path}: checkpoint belongs to run {blob.get('run_key')!r}, expected {run_key!r}")
    try:
        blob["progress"] = json.loads(blob["progress"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise damaged(path, "no readable progress record") from None
    problem = _contents_problem(blob)
    if problem:
        raise damaged(path, problem)
    return blob


def damaged(path: Path, what: str) -> DataError:
    """The refusal of a checkpoint that loads safely but is wrong inside. The file is moved aside
    (``NAME.pt.damaged``, kept for a look), so the next run of the command starts the run afresh
    instead of failing on it again."""
    aside = path.with_name(path.name + ".damaged")
    try:
        os.replace(path, aside)
        fix = f"moved it to {aside.name}, so running the command again starts the run afresh"
    except OSError:
        fix = "delete it to start the run afresh"
    return DataError(f"{path}: checkpoint is damaged inside ({what}); {fix}")


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def _contents_problem(blob: dict[str, Any]) -> str | None:
    """What is wrong with a safely loaded checkpoint's structure, or None (the shapes of the
    strategy's tensors are checked when they are loaded into it)."""
    task = blob.get("task")
    if not isinstance(task, int) or isinstance(task, bool) or task < 0:
        return f"task {task!r} is not a task index"
    state = blob.get("strategy")
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or not state["model"]:
        return "no model state"
    rng = blob.get("rng")
    if not isinstance(rng, dict) or not all(isinstance(rng.get(k), torch.Tensor) and rng[k].dtype == torch.uint8
                                            for k in ("torch", "loop")):
        return "no random generator states"
    python, numpy = rng.get("python"), rng.get("numpy")
    if not (isinstance(python, list) and len(python) == 3 and isinstance(numpy, dict)
            and isinstance(numpy.get("key"), torch.Tensor)):
        return "bad Python or numpy generator state"
    if not isinstance(blob.get("hooks", {}), dict):
        return "bad hook states"
    progress = blob["progress"]
    if not isinstance(progress, dict) or any(k not in progress for k in _PROGRESS_FIELDS):
        return "an incomplete progress record"
    rows, baseline = progress["acc_matrix"], progress["baseline"]
    if not _numbers(baseline) or not baseline:
        return "a bad baseline row"
    if (not isinstance(rows, list) or len(rows) != task + 1
            or any(not _numbers(r) or len(r) != len(baseline) or not all(0.0 <= v <= 1.0 for v in r) for r in rows)):
        return f"an accuracy matrix that is not {task + 1} rows of {len(baseline)} accuracies in [0, 1]"
    for name in ("task_seconds", "eval_seconds", "losses"):
        if not isinstance(progress[name], list) or len(progress[name]) != task + 1:
            return f"{name} is not one value per task done"
    return None


def _stateful(hooks) -> dict[str, Any]:
    """Hooks with state to save, keyed by class name and rank among hooks of that class (so a
    checkpoint matches them even when stateless hooks are added or removed)."""
    out: dict[str, Any] = {}
    for h in hooks or ():
        if hasattr(h, "state_dict") and hasattr(h, "load_state_dict"):
            base = type(h).__name__
            out[f"{base}#{sum(k.startswith(base + '#') for k in out)}"] = h
    return out


#: RunResult fields that grow task by task and so must survive a restart.
_PROGRESS_FIELDS = ("acc_matrix", "baseline", "task_seconds", "eval_seconds", "losses", "stats", "probes",
                    "events", "wall_seconds")


def _jsonable(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


class Checkpointer:
    """What the run loop calls: :meth:`resume` before the first task, :meth:`save` after every
    task's evaluation and hooks, :meth:`finish` once the run is done (the file is removed, since the
    finished run lives in the store from then on)."""

    def __init__(self, directory: str | Path, run_key: str):
        self.path = path_for(directory, run_key)
        self.run_key = run_key

    def resume(self, strategy, loop_generator: torch.Generator, result, hooks=()) -> int:
        """Restore the last boundary into ``strategy``, the generators, ``result`` and the after-task
        ``hooks`` that keep state (those with ``state_dict``/``load_state_dict``, such as the
        probes); return the index of the first task still to train (0 when there is none)."""
        blob = load(self.path, run_key=self.run_key)
        if blob is None:
            return 0
        from retain.training.device import tensors_to

        task, tasks = int(blob["task"]), len(result.baseline)
        if task >= tasks or len(blob["progress"]["baseline"]) != tasks:
            raise damaged(self.path, f"written after task {task + 1} of {len(blob['progress']['baseline'])}, and "
                                     f"the run has {tasks} tasks")
        states = blob["hooks"]
        for name in _stateful(hooks):
            if name not in states:
                raise DataError(f"{self.path}: checkpoint holds no state for {name}; it was written by a run "
                                "with other hooks or fixes. Delete it to start the run afresh")
        try:  # the shapes and contents only the strategy, hooks and generators can judge
            strategy.load_state_dict(tensors_to(blob["strategy"], strategy.device))  # read onto the CPU first
            for name, hook in _stateful(hooks).items():
                hook.load_state_dict(states[name])
            set_rng_state(blob["rng"], loop_generator)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            reason = " ".join(line.strip() for line in str(exc).strip().splitlines())[:200]  # torch: line 2 says what
            raise damaged(self.path, f"{type(exc).__name__}{': ' + reason if reason else ''}") from None
        for name, value in blob["progress"].items():
            setattr(result, name, value)
        result.events.append({"task": task, "kind": "resumed", "value": None, "threshold": None,
                              "message": f"resumed from the checkpoint written after task {task}"})
        return task + 1

    def save(self, task: int, strategy, loop_generator: torch.Generator, result, elapsed: float,
             hooks=()) -> None:
        progress = {name: getattr(result, name) for name in _PROGRESS_FIELDS}
        progress["wall_seconds"] = result.wall_seconds + elapsed
        progress = json.loads(json.dumps(progress, default=_jsonable))
        # A hook that keeps state across tasks without exposing it could not be resumed exactly.
        hook_states = {name: h.state_dict() for name, h in _stateful(hooks).items()}
        save(self.path, run_key=self.run_key, task=task, strategy_state=strategy.state_dict(),
             rng=rng_state(loop_generator), progress=progress, hooks=hook_states)

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)
