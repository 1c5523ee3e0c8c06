"""Published protocols as data: ``presets/<name>.toml`` holds a benchmark's protocol and each
method's best hyperparameters per buffer size, with the source they were read from.

A preset only supplies defaults; explicit command-line values always win. Schema::

    name, description, default_buffer_size
    [source]            paper, hyperparameters (where the values come from)
    [protocol]          RunConfig fields: benchmark, tasks, scenario, backbone, hidden, batch_size, ...
    [methods.<name>]    values for a method without a buffer (RunConfig fields or hyperparameters)
    [methods.<name>.<buffer size>]  the same, per buffer size
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from retain.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@dataclass
class PresetSettings:
    """What a preset says for one strategy: RunConfig fields, strategy hyperparameters, notes."""

    run: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Preset:
    name: str
    description: str
    source: dict[str, str]
    protocol: dict[str, Any]
    methods: dict[str, dict[str, Any]]
    default_buffer_size: int | None = None

    def settings(self, strategy: str, buffer_size: int | None = None) -> PresetSettings:
        """Protocol values plus ``strategy``'s best values at ``buffer_size`` (or the default)."""
        from retain.config.run import RunConfig

        run_fields = {f.name for f in dataclasses.fields(RunConfig)}
        out = PresetSettings()
        values = dict(self.protocol)
        entry = self.methods.get(strategy)
        if entry is None:
            out.notes.append(f"preset {self.name} has no values for {strategy!r}; using its protocol only")
        elif any(k.isdigit() for k in entry):
            size = buffer_size if buffer_size is not None else self.default_buffer_size
            sized = entry.get(str(size))
            if sized is None:
                have = ", ".join(sorted((k for k in entry if k.isdigit()), key=int))
                out.notes.append(f"preset {self.name} has no {strategy} values for buffer size {size} "
                                 f"(it has {have}); using its protocol only")
            else:
                values |= {"buffer_size": size, **sized}
        else:
            values |= entry
        for key, value in values.items():
            if key in run_fields:
                out.run[key] = tuple(value) if key == "hidden" else value
            else:
                out.params[key] = value
        return out


def preset_names() -> list[str]:
    folder = resources.files("retain.config") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> Preset:
    """Read ``presets/<name>.toml``; ConfigError naming the file and field on anything wrong."""
    names = preset_names()
    if name not in names:
        from retain.suggest import did_you_mean

        raise ConfigError(f"unknown preset {name!r}{did_you_mean(name, names)}; known: {', '.join(names) or 'none'}")
    path = resources.files("retain.config") / "presets" / f"{name}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset file {path}: {exc}") from None
    for key in ("protocol", "methods", "source"):
        if not isinstance(data.get(key), dict):
            raise ConfigError(f"preset file {path}: missing table [{key}]")
    return Preset(name=data.get("name", name), description=data.get("description", ""), source=data["source"],
                  protocol=data["protocol"], methods=data["methods"],
                  default_buffer_size=data.get("default_buffer_size"))


def preset_values(preset: Preset | None, strategy: str, explicit_run: dict[str, Any],
                  explicit_params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The run settings and hyperparameters one strategy's runs set: explicit values (those not
    None) over the preset's. Whatever neither sets stays None, for
    :meth:`retain.config.run.RunConfig.resolve` to fill from its one source of defaults."""
    given_run = {k: v for k, v in explicit_run.items() if v is not None}
    given_params = {k: v for k, v in explicit_params.items() if v is not None}
    if preset is None:
        return given_run, given_params, []
    found = preset.settings(strategy, given_params.get("buffer_size"))
    return found.run | given_run, found.params | given_params, found.notes
