"""Answers fetched for one batch of probes, seen only by that batch.

A Detector runs batches of probes side by side: the stability layer's rounds and the regression check
run at once on one target. Each batch prefetches what its probes will ask (one ``systemctl show``, one
batched agent read) and drops it when its probes are done. Kept on the Detector or the agent client,
one batch's drop emptied the other's answers and its probes went back to one command each (26
``systemctl show`` in one apply, measured), and a probe could take an answer another batch fetched.

A :class:`BatchStore` keeps a store per batch in a :mod:`contextvars` variable: :meth:`BatchStore.scope`
opens the batch's store in the calling thread's context, and the probes' threads see it because
:func:`orchestrator.detect.detector.run_probes` runs each probe in a copy of the caller's context.
Outside any scope (a baseline's one-off batch) the owner's own default store is used, as before.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Generic, TypeVar, cast

S = TypeVar("S")

#: owner id -> that owner's store in the current batch; a scope sets a new mapping, never changes one.
_STORES: contextvars.ContextVar[Mapping[int, object]] = contextvars.ContextVar(
    "vmrepair_batch_stores", default=MappingProxyType({}))


class BatchStore(Generic[S]):
    """The store of the current batch of one owner (a ShowBatch, an agent client)."""

    def __init__(self, new: Callable[[], S]) -> None:
        self._new = new
        self._default = new()

    @contextmanager
    def scope(self) -> Iterator[S]:
        """A fresh store for the batch run inside this block (and the threads it starts through
        ``run_probes``), forgotten when the block ends."""
        store = self._new()
        token = _STORES.set({**_STORES.get(), id(self): store})
        try:
            yield store
        finally:
            _STORES.reset(token)

    def current(self) -> S:
        """The current batch's store, or the owner's default one outside any scope."""
        found = self.active()
        return self._default if found is None else found

    def active(self) -> S | None:
        """The current batch's store; None outside any scope."""
        found = _STORES.get().get(id(self))
        return None if found is None else cast(S, found)

    def reset_default(self) -> None:
        self._default = self._new()
