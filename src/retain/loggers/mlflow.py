"""``--logger mlflow[:URI]``: one MLflow run per retain run, in the tracking store at URI, else
$MLFLOW_TRACKING_URI, else a local file store at OUT/mlruns (``mlflow ui --backend-store-uri
OUT/mlruns`` shows it). The experiment is $MLFLOW_EXPERIMENT_NAME, else the study's name, else
"retain". Params: the resolved config, flattened (``params.buffer_size``); metrics: ``train/loss``
per step, ``accuracy/task_J`` and ``seen/METRIC`` per task (step = tasks trained), ``final/METRIC``.
The client API is used, not MLflow's global active run, so runs in one process never mix."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from retain.errors import ConfigError
from retain.loggers.base import Logger, RunInfo, register_logger, require

_PARAMS_PER_CALL, _METRICS_PER_CALL = 100, 1000  # MLflow's log_batch limits
_PARAM_CHARS = 500  # the smallest value limit among MLflow versions (newer ones allow 6000)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"a.b": "value"}; lists and other values as JSON text."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:_PARAM_CHARS]
    return out


#: Seconds to wait for a tracking server before the first run, and per request during runs.
CONNECT_SECONDS = 5
#: Retries of a failed request during runs (MLflow's default of 7, with backoff, waits minutes).
REQUEST_RETRIES = 2


def check_reachable(uri: str, flag: str) -> None:
    """Refuse an http(s) tracking server that does not accept a connection within
    CONNECT_SECONDS, before any run; and bound MLflow's own timeouts and retries during the runs
    (environment variables, so pool workers inherit them; a value the user set is kept)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return  # a file store or a database: nothing to reach
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(CONNECT_SECONDS * 2))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(REQUEST_RETRIES))
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"{flag}: {uri!r} has no valid port") from None
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=CONNECT_SECONDS):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise ConfigError(f"{flag}: cannot reach the tracking server at {parts.hostname}:{port} ({reason}; waited "
                          f"up to {CONNECT_SECONDS} s); start it, or log to a local file store with --logger mlflow"
                          ) from None


@register_logger("mlflow")
class MLflowLogger(Logger):
    """--logger mlflow[:URI]: one MLflow run per run (default a file store at OUT/mlruns)."""

    @classmethod
    def prepare(cls, arg: str | None) -> str | None:
        require("mlflow", "mlflow", "mlflow")
        if arg and "://" not in arg and not arg.startswith("file:"):  # a plain path: a file store there
            return Path(arg).expanduser().resolve().as_uri()
        flag = f"--logger mlflow{':' + arg if arg else ''}"
        check_reachable(arg or os.environ.get("MLFLOW_TRACKING_URI") or "", flag)
        return arg

    def _uri(self) -> str:
        uri = self.arg or os.environ.get("MLFLOW_TRACKING_URI") or (self.out / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):
            # MLflow 3 refuses its file store unless told otherwise (it prefers a database, which
            # mlflow-skinny cannot open); a file store is the dependency-free default asked for here.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        return uri

    def _experiment(self, client, name: str) -> str:
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(name)
        except Exception:  # noqa: BLE001 - another worker created it first
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def start_run(self, info: RunInfo) -> None:
        require("mlflow", "mlflow", "mlflow")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self._uri())
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or info.study or "retain"
        tags = {"retain.run_key": info.key, "retain.strategy": info.strategy, "retain.benchmark": info.benchmark,
                "retain.seed": str(info.seed), "retain.order": str(info.order), "retain.study": info.study}
        self.run_id = self.client.create_run(self._experiment(self.client, name), run_name=info.label,
                                             tags=tags).info.run_id
        params = [Param(k, v) for k, v in sorted(flatten(info.config).items())]
        for i in range(0, len(params), _PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=params[i: i + _PARAMS_PER_CALL])
        self.tasks = 0

    def _log(self, metrics: list) -> None:
        for i in range(0, len(metrics), _METRICS_PER_CALL):
            self.client.log_batch(self.run_id, metrics=metrics[i: i + _METRICS_PER_CALL])

    def _log_at(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._log([Metric(k, float(v), now, step) for k, v in values.items()])

    def log_steps(self, task: int, first_step: int, losses: list[float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._log([Metric("train/loss", float(v), now, first_step + i) for i, v in enumerate(losses)])

    def log_task(self, task: int, accuracies: list[float], metrics: dict[str, float]) -> None:
        self.tasks = task + 1
        values = {f"accuracy/task_{j}": v for j, v in enumerate(accuracies, start=1)}
        values.update({f"seen/{k}": v for k, v in metrics.items()})
        self._log_at(values, self.tasks)

    def end_run(self, status: str, metrics: dict[str, float]) -> None:
        self._log_at({f"final/{k}": v for k, v in metrics.items()}, self.tasks)
        self.client.set_terminated(self.run_id, "FINISHED" if status == "finished" else "FAILED")
        self.run_id = None

    def close(self) -> None:
        if getattr(self, "run_id", None):  # ended without end_run (a hook failed): not left "RUNNING"
            self.client.set_terminated(self.run_id, "KILLED")
            self.run_id = None
