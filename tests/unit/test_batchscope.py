"""Batches of probes run at once keep their own prefetched answers (orchestrator.batchscope)."""

from __future__ import annotations

import threading

from orchestrator.batchscope import BatchStore
from orchestrator.detect.detector import run_probes
from orchestrator.detect.units import ShowBatch, UnitShow
from tests.unit.detect.fakes import FakeHost


def test_outside_a_scope_the_default_store_is_used() -> None:
    store: BatchStore[dict[str, int]] = BatchStore(dict)
    store.current()["a"] = 1
    assert store.current() == {"a": 1}
    with store.scope() as batch:
        assert batch == {} and store.current() is batch
    assert store.current() == {"a": 1}


def test_overlapping_batches_in_two_threads_see_only_their_own_answers() -> None:
    """The stability round and the regression check: the round's batch ends while the regression
    check's probes still read; neither loses its answers nor reads the other's."""
    store: BatchStore[dict[str, str]] = BatchStore(dict)
    long_filled, short_done = threading.Event(), threading.Event()
    seen: dict[str, list[str | None]] = {}

    def read() -> str | None:
        return store.current().get("unit")

    def long_batch() -> None:
        with store.scope():
            run_probes([lambda: store.current().update(unit="long"), lambda: None])   # its prefetch
            long_filled.set()
            short_done.wait(timeout=5)   # the other batch prefetched, read and ended meanwhile
            seen["long"] = run_probes([read, read])

    def short_batch() -> None:
        long_filled.wait(timeout=5)
        with store.scope():
            run_probes([lambda: store.current().update(unit="short"), lambda: None])
            seen["short"] = run_probes([read, read])
        short_done.set()

    threads = [threading.Thread(target=long_batch), threading.Thread(target=short_batch)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == {"long": ["long", "long"], "short": ["short", "short"]}
    assert store.current() == {}


def test_a_show_batch_ending_does_not_empty_another_running_batch() -> None:
    batch = ShowBatch()
    shown = UnitShow({"LoadState": "loaded", "ActiveState": "active"})
    with batch.scope():
        batch._answers.current().answers["nginx.service"] = shown   # what prefetch stores
        with batch.scope():   # another batch starts and ends meanwhile (same thread: nested)
            assert batch.take("nginx.service") is None
            batch.discard()
        assert batch.take("nginx.service") is shown
    assert batch.take("nginx.service") is None


def test_a_show_batch_prefetch_in_a_probe_thread_fills_its_batch_scope() -> None:
    """The Detector prefetches in a worker thread of run_probes; the probes of the batch then read it."""
    shown = {"LoadState": "loaded", "ActiveState": "active", "SubState": "running",
             "UnitFileState": "enabled"}
    transport = FakeHost(units={"a.service": shown}).transport()
    batch = ShowBatch()
    with batch.scope():
        run_probes([lambda: batch.prefetch(transport, ["a.service"]), lambda: None])
        found = run_probes([lambda: batch.take("a.service"), lambda: None])[0]
        assert found is not None and found.properties["ActiveState"] == "active"
    assert batch.take("a.service") is None
