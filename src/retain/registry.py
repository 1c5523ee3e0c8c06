"""An explicit registry: components register themselves by name, users look them up by name."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Generic, TypeVar

from retain.errors import ConfigError

T = TypeVar("T")


def import_submodules(package: str, path) -> None:
    """Import every module of ``package`` (``path``: its ``__path__``), so a module dropped into the
    folder registers what it defines without being listed anywhere."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{info.name}")


class Registry(Generic[T]):
    """Maps names to components (classes or factories) of one kind, e.g. strategies."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._resolvers: list[Callable[[str], bool]] = []
        self._reserved: list[tuple[Callable[[str], bool], str]] = []
        self._resolving: str | None = None  # the name a resolver is registering now

    def add_resolver(self, resolver: Callable[[str], bool], owns: Callable[[str], bool] | None = None,
                     what: str = "") -> None:
        """``resolver(name)`` is asked about names not registered (e.g. ``folder:PATH``, ``er+ewc``);
        it registers the name itself and returns True, or returns False when the name is not its kind.
        ``owns(name)``: the names that only the resolver may register (``what`` says what they are),
        so a plugin cannot shadow them."""
        self._resolvers.append(resolver)
        if owns is not None:
            self._reserved.append((owns, what))

    def _resolve(self, name: str) -> bool:
        if name in self._items:
            return True
        previous, self._resolving = self._resolving, name
        try:
            return any(r(name) for r in self._resolvers)
        finally:
            self._resolving = previous

    def reserved(self, name: str) -> str | None:
        """What a resolver owns ``name`` as (``folder:PATH``, a composite), or None."""
        if name == self._resolving:
            return None
        return next((what for owns, what in self._reserved if owns(name)), None)

    def check_free(self, name: str) -> None:
        """Raise ValueError when ``name`` cannot be registered: taken, or of a kind a resolver owns."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        what = self.reserved(name)
        if what:
            raise ValueError(f"{self.kind} name {name!r} is reserved ({what}); register it under another name")

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator registering its object as ``name``; a name taken or reserved is refused at
        once (before anything that depends on the registration is written) and again on use."""
        self.check_free(name)

        def decorator(obj: T) -> T:
            self.check_free(name)
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            if not self._resolve(name):
                raise KeyError(name)
            return self._items[name]
        except KeyError:
            from retain.suggest import did_you_mean

            known = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; "
                              f"known: {known}") from None

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return self._resolve(name)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())
