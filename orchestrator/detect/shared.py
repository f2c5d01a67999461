"""Answers that the probes of one detector run share: asked once, by the first probe that needs them.

Several probes of a run need the same fact about the target: every ``port:`` probe the list of
listening sockets, every ``writable:`` probe the accounts of /etc/passwd and /etc/group. Each asking
for itself would cost one command or agent read per probe; a :class:`RunShared` asks once per run.

The Detector opens a :meth:`RunShared.scope` around every batch of probes it runs (``run``,
``run_components``, ``run_named``) that uses the value. Inside the scope, the first probe that calls
:meth:`RunShared.get` loads the value while the others wait for it (probes run in threads), and every
later call reuses it; when the scope closes the value is forgotten, so the next run, after a repair
say, asks afresh. Outside any scope (:meth:`Detector.run_probe`) every call loads. Two runs of one
Detector at once (the stability rounds and the regression check on the target run side by side for
the whole period) each have their own value (:mod:`orchestrator.batchscope`): a round never judges
with an answer loaded rounds ago by the other run.

A load that raises is not remembered: the error reaches the probe that asked, and the next probe
tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from orchestrator.agent.api import AgentRead
from orchestrator.batchscope import BatchStore

T = TypeVar("T")


class RunShared(Generic[T]):
    """One value shared by the probes of a run; ``first_reads`` are the agent reads its loader starts
    with (the Detector adds them, once, to the run's batched agent call)."""

    def __init__(self, name: str, load: Callable[[], T], first_reads: tuple[AgentRead, ...] = ()) -> None:
        self.name = name
        self.first_reads = first_reads
        self._load = load
        self._slots: BatchStore[_Slot[T]] = BatchStore(_Slot)

    def scope(self) -> AbstractContextManager[object]:
        """Share the value among the calls of :meth:`get` made in this run (this block, and the probe
        threads it starts through ``run_probes``) until the block ends."""
        return self._slots.scope()

    def get(self) -> T:
        """The value: loaded now outside a scope; inside one, loaded by the run's first caller.

        Raises:
            whatever the loader raises (typically TransportError: the target cannot be reached).
        """
        slot = self._slots.active()
        if slot is None:
            return self._load()
        with slot.lock:
            # Loading under the lock is the point: the run's other probes wait for this answer.
            if slot.value is None:
                slot.value = (self._load(),)
            return slot.value[0]


class _Slot(Generic[T]):
    """One run's value of a RunShared (a 1-tuple, so a loaded None is told from "not loaded")."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: tuple[T] | None = None


class CommandMemo:
    """Answers of commands run during one detector run, by argv: several probes asking the same
    question (``dpkg --verify -- systemd`` for every component systemd ships) start one process.
    The first caller of an argv runs it while later callers of that argv wait for its answer; an
    exception (a timeout) is remembered like an answer, so it is not waited out again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, ...], tuple[threading.Event, list[object]]] = {}

    def run(self, key: tuple[str, ...], call: Callable[[], T]) -> T:
        """``call()``'s answer for ``key``, computed once.

        Raises:
            whatever ``call`` raised (for every caller of that key).
        """
        with self._lock:
            slot = self._answers.get(key)
            owner = slot is None
            if slot is None:
                slot = (threading.Event(), [])
                self._answers[key] = slot
        done, box = slot
        if owner:
            try:
                box.append(call())
            except BaseException as exc:
                box.append(_Raised(exc))
                raise
            finally:
                done.set()
        done.wait()
        answer = box[0]
        if isinstance(answer, _Raised):
            raise answer.exc
        return answer  # type: ignore[return-value]


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def shared_commands(name: str) -> RunShared[CommandMemo]:
    """A :class:`CommandMemo` per detector run (outside a run, a fresh one per probe: nothing kept)."""
    return RunShared(name, CommandMemo)
