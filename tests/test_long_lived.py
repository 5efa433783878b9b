"""The servers' garbage-collector settings (common/long_lived.py): start-up objects frozen, young collections
rarer, and reference cycles that die old still collected on the clock."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from common import long_lived


@pytest.fixture
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def old_cycle() -> weakref.ref[Node]:
    """A reference cycle that survives a full collection (so it sits in the oldest generation), then dies."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect()
    return weakref.ref(a)


async def test_start_up_objects_frozen_young_collections_rarer_and_old_cycles_collected(
    collector_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(long_lived, "FULL_COLLECTION_MIN_S", 0.05)
    full = long_lived.settle_collector(asyncio.get_running_loop())
    try:
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == long_lived.YOUNG_GENERATION_THRESHOLD
        dead = old_cycle()
        assert dead() is not None  # only a collection can free a cycle
        for _ in range(40):  # a few allocations only: no young collection would reach the oldest generation
            await asyncio.sleep(0.05)
            if dead() is None:
                break
        assert dead() is None, "the clock's full collection did not run"
    finally:
        full.stop()


def test_full_collections_are_paced_by_their_pause() -> None:
    assert long_lived.next_full_collection_in(0.001) == long_lived.FULL_COLLECTION_MIN_S
    # a pause of 1 s (a heap of millions of objects) waits 1 / share seconds: the collector's CPU share stays capped
    assert long_lived.next_full_collection_in(1.0) == pytest.approx(1.0 / long_lived.FULL_COLLECTION_CPU_SHARE)
