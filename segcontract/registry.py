"""One registry shape for everything chosen by name: model families, runtimes, client writers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Entries keyed by their own ``key`` attribute, in registration order.

    ``register`` works as a class decorator or on an instance; ``lookup`` raises ``error`` (the
    caller's own exception type) naming the choices, where ``registry[name]`` raises KeyError.
    """

    def __init__(self, kind: str, key: str = "name", error: Callable[[str], Exception] = LookupError):
        self.kind, self._key, self._error = kind, key, error
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        name = getattr(entry, self._key)
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        if name not in self._entries:
            raise self._error(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}")
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
