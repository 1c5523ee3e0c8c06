"""Components from outside the package: strategies, benchmarks, backbones, metrics and loggers
that a user writes in a file of their own or ships in an installed package.

* A **file** (``retain run --plugin my_method.py``, or ``plugins = ["my_method.py"]`` in a study
  file) is executed as a module of its own; whatever it registers (``@register_strategy``,
  ``@register_benchmark`` ...) is then known by name.
* An **installed package** declares entry points in the groups ``retain.strategies``,
  ``retain.benchmarks``, ``retain.backbones``, ``retain.metrics`` or ``retain.loggers``; each
  points at a module (which registers on import) or at the component itself (registered under the
  entry point's name).

Every run records the source of each non-built-in component it uses (:func:`sources_of`): the
run key hashes it, so a changed plugin reruns its runs, and workers (process pool, Ray) load the
same code before they run anything (:func:`ensure`), shipping the text of modules that cannot be
imported by name there (a plugin file, or the ``__main__`` script that registered a strategy).
"""

from __future__ import annotations

import hashlib
import importlib
import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retain.errors import ConfigError

#: Entry-point group -> the registry it fills (module path, registry attribute, register function).
GROUPS = {
    "retain.strategies": ("retain.strategies", "STRATEGIES"),
    "retain.benchmarks": ("retain.benchmarks", "BENCHMARKS"),
    "retain.backbones": ("retain.models", "BACKBONES"),
    "retain.metrics": ("retain.metrics.registry", "METRICS"),
    "retain.loggers": ("retain.loggers", "LOGGERS"),
}


@dataclass(frozen=True)
class PluginSource:
    """The code of one module a run uses from outside retain: its name, the SHA-256 of its source
    (part of the run key), and the source text itself when workers cannot import it by name."""

    module: str
    sha256: str
    path: str = ""
    text: str | None = None  # None: importable by ``module`` wherever the run executes


#: Plugin modules loaded from files in this process: module name -> its source.
_FILES: dict[str, PluginSource] = {}
#: Modules that entry points loaded: module name -> "package DIST (entry point GROUP:NAME)".
_ENTRY_POINTS: dict[str, str] = {}
#: Components that entry points named directly: id(object) -> where it came from.
_ENTRY_OBJECTS: dict[int, str] = {}
_entry_points_loaded = False


def _module_name(path: Path, sha: str) -> str:
    stem = re.sub(r"\W", "_", path.stem) or "plugin"
    return f"retain_plugin_{stem}_{sha[:10]}"


def _execute(name: str, text: str, path: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module  # before executing: dataclasses and pickling look the module up
    try:
        exec(compile(text, path, "exec"), module.__dict__)
    except ConfigError:
        sys.modules.pop(name, None)
        raise
    except KeyboardInterrupt:  # Ctrl-C, or a plugin raising it: the caller says "interrupted"
        sys.modules.pop(name, None)
        raise
    except (Exception, SystemExit) as exc:  # sys.exit() at import must not end retain as if all ran
        sys.modules.pop(name, None)
        line = next((f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == path), None)
        what = (f"called sys.exit({exc.code!r}) while being loaded; a plugin only defines and registers"
                if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}")
        raise ConfigError(f"plugin {path}{f':{line}' if line else ''}: {what}") from None
    return module


def load_file(path: str | Path) -> PluginSource:
    """Execute the plugin file at ``path`` once per content (loading it again is a no-op)."""
    path = Path(path).expanduser()
    if path.suffix != ".py":
        raise ConfigError(f"plugin {path}: expected a Python file (.py)")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"plugin {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"plugin {path}: not a UTF-8 text file") from None
    sha = hashlib.sha256(text.encode()).hexdigest()
    resolved = str(path.resolve())
    name = _module_name(path, sha)
    if name not in sys.modules:
        _execute(name, text, resolved)
    source = PluginSource(module=name, sha256=sha, path=resolved, text=text)
    _FILES[name] = source
    return source


def load_files(paths) -> list[PluginSource]:
    return [load_file(p) for p in paths or ()]


def load_entry_points() -> None:
    """Load every installed package's retain entry points (once per process)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for group in GROUPS:
        load_group(group)


def load_group(group: str) -> None:
    """Load the entry points of one group; a plugin that fails to load is a one-line ConfigError
    naming it (its package is broken or half-installed: fix or uninstall it)."""
    from importlib.metadata import entry_points

    module, attr = GROUPS[group]
    for ep in entry_points(group=group):
        where = f"package {ep.dist.name if ep.dist else '?'} (entry point {group}:{ep.name})"
        try:
            obj = ep.load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of foreign code: say which plugin
            kind = group.removeprefix("retain.").removesuffix("s")
            raise ConfigError(f"{kind} plugin {ep.name!r} ({ep.value}) failed to load: "
                              f"{type(exc).__name__}: {exc}") from None
        if isinstance(obj, types.ModuleType):  # the module registered what it holds on import
            _ENTRY_POINTS.setdefault(obj.__name__, where)
            continue
        _ENTRY_POINTS.setdefault(getattr(obj, "__module__", ep.module), f"package {ep.dist.name if ep.dist else '?'}")
        _ENTRY_OBJECTS[id(obj)] = where
        registry = getattr(importlib.import_module(module), attr)
        reserved = registry.reserved(ep.name) if hasattr(registry, "reserved") else None
        if reserved:  # it would shadow a resolver's name (a composite such as er+ewc, folder:PATH)
            raise ConfigError(f"{where}: the name {ep.name!r} is reserved ({reserved}); register it under "
                              "another name")
        if ep.name not in registry:
            _register(group, registry, ep.name, obj)


def _register(group: str, registry, name: str, obj: Any) -> None:
    if group == "retain.strategies":
        from retain.strategies import register_strategy

        register_strategy(name)(obj)
    elif group == "retain.benchmarks":
        from retain.benchmarks import register_benchmark

        register_benchmark(name)(obj)
    elif group == "retain.metrics":
        # A metric needs its label and description, which only @register_metric gives: the entry
        # point may name the decorated function (its import registered it under its own name), not
        # register a bare one.
        from retain.registry import Registry

        if not any(m.fn is obj for _, m in Registry.items(registry)):
            raise ConfigError(f"metric plugin {name!r}: {getattr(obj, '__qualname__', obj)!r} is not registered "
                              "by @register_metric; name its module or a decorated function")
    else:
        registry.register(name)(obj)


def origin(obj: Any) -> str:
    """Where a registered component comes from, for `retain list`."""
    module = getattr(obj, "__module__", "") or ""
    if module == "retain" or module.startswith("retain."):
        return "built-in"
    if module in _FILES:
        return f"file {_FILES[module].path}"
    if id(obj) in _ENTRY_OBJECTS:
        return _ENTRY_OBJECTS[id(obj)]
    if module in _ENTRY_POINTS:
        return _ENTRY_POINTS[module]
    return f"module {module}"


def _parts(obj: Any) -> list[Any]:
    """A composite component's parts (e.g. the strategies of ``er+ewc``), else the object itself."""
    parts = getattr(obj, "components", None)
    return [obj, *parts] if parts else [obj]


def _source_of(module: str) -> PluginSource | None:
    if module == "retain" or module.startswith("retain.") or not module:
        return None
    if module in _FILES:
        return _FILES[module]
    mod = sys.modules.get(module)
    path = getattr(mod, "__file__", None)
    if not path:
        return PluginSource(module=module, sha256="")  # defined interactively: nothing to hash
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return PluginSource(module=module, sha256="", path=path)
    sha = hashlib.sha256(text.encode()).hexdigest()
    importable = module not in ("__main__", "__mp_main__")
    return PluginSource(module=module, sha256=sha, path=path, text=None if importable else text)


def loaded_files() -> tuple[PluginSource, ...]:
    """Every plugin file loaded in this process (workers load them all: a file may hold a logger
    or a metric that no run's strategy, benchmark or backbone names)."""
    return tuple(_FILES[k] for k in sorted(_FILES))


def sources_of(*objs: Any) -> tuple[PluginSource, ...]:
    """The non-built-in modules that define ``objs`` (strategy class, benchmark and backbone
    factories), sorted by module name; empty for a run of built-ins only."""
    found: dict[str, PluginSource] = {}
    for obj in objs:
        for part in _parts(obj):
            src = _source_of(getattr(part, "__module__", "") or "")
            if src is not None:
                found[src.module] = src
    return tuple(found[k] for k in sorted(found))


def ensure(sources) -> None:
    """Make the plugin code in ``sources`` loaded in this process (a worker): import what is
    importable by name, execute the shipped text of the rest. Entry points load too."""
    load_entry_points()
    for src in sources or ():
        if src.module in sys.modules and src.module not in ("__main__",):
            continue
        if src.text is None:
            try:
                importlib.import_module(src.module)
            except ImportError as exc:
                raise ConfigError(f"plugin module {src.module} cannot be imported here: {exc}") from None
            continue
        name = _module_name(Path(src.path or src.module), src.sha256)
        if name not in sys.modules:
            main = sys.modules.get("__mp_main__")  # multiprocessing already ran the driver's script here
            if src.module == "__main__" and main is not None and getattr(main, "__file__", None) == src.path:
                continue
            _execute(name, src.text, src.path or name)
        _FILES.setdefault(name, PluginSource(name, src.sha256, src.path, src.text))
