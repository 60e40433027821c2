"""What keeps the inference process's pauses short: the heap frozen after a swap, ordered request ids."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator

import pytest

from ancora_inference.heap import HeapFreezer, collect_and_freeze
from ancora_inference.runtime import request_id


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_swap_freezes_the_heap_after_the_settle_time(unfrozen: None) -> None:
    async def swap_and_wait() -> tuple[int, int]:
        freezer = HeapFreezer(settle_seconds=0.2)
        freezer.model_swapped()
        await asyncio.sleep(0.05)
        before = gc.get_freeze_count()
        for _ in range(100):
            await asyncio.sleep(0.05)
            if gc.get_freeze_count():
                break
        return before, gc.get_freeze_count()

    before, after = asyncio.run(swap_and_wait())
    assert before == 0
    assert after > 1000


def test_a_newer_swap_reschedules_and_stop_cancels(unfrozen: None) -> None:
    async def swap_twice_then_cancel() -> int:
        freezer = HeapFreezer(settle_seconds=0.3)
        freezer.model_swapped()
        await asyncio.sleep(0.2)
        freezer.model_swapped()  # moves the pass to 0.3 s from now
        await asyncio.sleep(0.2)
        freezer.cancel()
        await asyncio.sleep(0.3)
        return gc.get_freeze_count()

    assert asyncio.run(swap_twice_then_cancel()) == 0


def test_a_cycle_frozen_by_an_earlier_swap_is_freed_by_the_next(unfrozen: None) -> None:
    class Node:
        pass

    first, second = Node(), Node()
    first.other, second.other = second, first  # type: ignore[attr-defined]
    collect_and_freeze()
    alive = sum(isinstance(obj, Node) for obj in gc.get_objects(generation=2))
    del first, second
    collect_and_freeze()
    assert alive == 0  # frozen objects are not in generation 2
    assert not any(isinstance(obj, Node) for obj in gc.get_objects())


def test_generated_request_ids_follow_time_and_callers_ids_are_kept() -> None:
    ids = []
    for _ in range(50):
        ids.append(request_id(None))
        time.sleep(0.0001)
    assert ids == sorted(ids)
    assert len(set(ids)) == 50
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in ids)
    assert request_id("trace-42") == "trace-42"
    assert len(request_id("not a token!")) == 32
