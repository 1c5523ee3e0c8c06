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
        raise DataError(f"{path}: checkpoint has no readable progress record; delete it to start afresh") from None
    return blob


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

        strategy.load_state_dict(tensors_to(blob["strategy"], strategy.device))  # read onto the CPU first
        states = blob["hooks"]
        for name, hook in _stateful(hooks).items():
            if name not in states:
                raise DataError(f"{self.path}: checkpoint holds no state for {name}; it was written by a run "
                                "with other hooks or fixes. Delete it to start the run afresh")
            hook.load_state_dict(states[name])
        set_rng_state(blob["rng"], loop_generator)
        for name, value in blob["progress"].items():
            setattr(result, name, value)
        task = int(blob["task"])
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
