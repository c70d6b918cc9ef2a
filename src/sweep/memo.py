"""The process's in-memory caches, in one object: named dict slots and registered lru_caches, all emptied by
`CACHE.clear()` (tests clear it before each one; a sweep worker keeps it for its whole life).

A module asks for its slot once, at import: `_MEMORY = CACHE.slot("data.features.memory")` is a plain dict
that lives as long as the process; `@CACHE.lru_cache(maxsize=4)` is functools.lru_cache, registered here.
`clear()` empties the dicts in place, so every module's reference stays the live slot."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


class ProcessCache:
    """Named caches of one process: `slot(name)` the dict of that name, `lru_cache(...)` a registered
    functools.lru_cache, `clear()` all of them (or the named ones), `sizes()` what each holds."""

    def __init__(self) -> None:
        self._slots: dict[str, dict] = {}
        self._functions: dict[str, Callable[..., Any]] = {}

    def slot(self, name: str) -> dict:
        """The dict named `name`, made on first use; the same dict for every later call (a reloaded module
        finds its entries)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a cache slot needs a non-empty name, e.g. 'data.features.memory'; got {name!r}")
        if name in self._functions:
            raise ValueError(f"cache name {name!r} is an lru_cache already: give the slot another name")
        return self._slots.setdefault(name, {})

    def lru_cache(self, maxsize: int | None = 128) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """functools.lru_cache(maxsize), registered under the function's module and name."""

        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            cached = functools.lru_cache(maxsize=maxsize)(fn)
            name = f"{fn.__module__.removeprefix('sweep.')}.{fn.__qualname__}"
            if name in self._slots:
                raise ValueError(f"cache name {name!r} is a slot already: rename the function or the slot")
            self._functions[name] = cached  # a reloaded module replaces its function
            return cached

        return wrap

    def names(self) -> list[str]:
        return sorted([*self._slots, *self._functions])

    def sizes(self) -> dict[str, int]:
        """Entries held by each cache, by name."""
        held = {name: len(d) for name, d in self._slots.items()}
        held.update({name: fn.cache_info().currsize for name, fn in self._functions.items()})
        return dict(sorted(held.items()))

    def clear(self, *names: str) -> None:
        """Empty the named caches, or all of them: the next call of each cached function computes again."""
        unknown = [n for n in names if n not in self._slots and n not in self._functions]
        if unknown:
            raise KeyError(f"no cache named {unknown[0]!r}: the registered ones are {', '.join(self.names())}")
        for name in names or self.names():
            if name in self._slots:
                self._slots[name].clear()
            else:
                self._functions[name].cache_clear()


CACHE = ProcessCache()
