"""The micro-batcher: concurrent calls share one batch call, answers go back in order, errors reach each caller."""

from __future__ import annotations

import asyncio
import time

import pytest

from nextbest.serving.batching import MicroBatcher


def test_concurrent_calls_are_answered_from_shared_batches_in_order():
    seen: list[list[int]] = []

    def square(items: list[int]) -> list[int]:
        seen.append(items)
        time.sleep(0.01)  # a forward pass: later arrivals queue behind it and form the next batch
        return [i * i for i in items]

    async def main() -> list[int]:
        batcher = MicroBatcher(square, max_batch_size=16, max_wait_seconds=0.005)
        answers = await asyncio.gather(*(batcher(i) for i in range(100)))
        await batcher.close()
        return answers

    assert asyncio.run(main()) == [i * i for i in range(100)]
    assert sum(map(len, seen)) == 100 and max(map(len, seen)) == 16 and len(seen) <= 10


def test_a_lone_call_waits_at_most_the_wait_time():
    async def main() -> float:
        batcher = MicroBatcher(lambda items: items, max_batch_size=64, max_wait_seconds=0.02)
        started = time.perf_counter()
        await batcher("x")
        elapsed = time.perf_counter() - started
        await batcher.close()
        return elapsed

    assert asyncio.run(main()) < 0.2


def test_an_error_in_the_batch_reaches_every_caller_and_the_batcher_goes_on():
    def fragile(items: list[int]) -> list[int]:
        if -1 in items:
            raise ValueError("bad item")
        return items

    async def main() -> tuple[list, int]:
        batcher = MicroBatcher(fragile, max_batch_size=8, max_wait_seconds=0.01)
        outcomes = await asyncio.gather(batcher(1), batcher(-1), return_exceptions=True)
        after = await batcher(2)
        await batcher.close()
        return outcomes, after

    outcomes, after = asyncio.run(main())
    assert all(isinstance(o, ValueError) for o in outcomes) and after == 2


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch_size must be ≥ 1"):
        MicroBatcher(lambda items: items, max_batch_size=0)
