"""Concurrent requests gathered into one call: the pattern of Ray Serve's `@serve.batch`.

    batcher = MicroBatcher(lambda requests: [score(r) for r in requests], max_batch_size=64)
    answer = await batcher(request)        # from many coroutines at once

The batch function runs on the event loop, right after the requests that are ready in the same turn
of the loop: under load the loop is busy while a batch computes, the requests that arrive meanwhile
are all read in its next turn, and so the batches grow by themselves and the cost of a forward pass
is shared. A lone request is not held back (`max_wait_seconds` > 0 makes it wait for company). On
the loop, not in a worker thread: a forward pass of a few rows is mostly Python and holds the GIL
anyway, and a thread hop costs more than it overlaps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    def __init__(self, function: Callable[[list[Item]], list[Result]], *, max_batch_size: int = 64,
                 max_wait_seconds: float = 0.0):
        if max_batch_size < 1 or max_wait_seconds < 0:
            raise ValueError(f"max_batch_size must be ≥ 1 and max_wait_seconds ≥ 0, got {max_batch_size}, {max_wait_seconds}")
        self.function = function
        self.max_batch_size = max_batch_size
        self.max_wait_seconds = max_wait_seconds
        self._pending: list[tuple[Item, asyncio.Future]] = []
        self._flush_handle: asyncio.Handle | None = None
        self.batches = 0  # for metrics: calls of `function`
        self.items = 0

    async def __call__(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((item, future))
        if self._flush_handle is None:  # call_soon: after the other callbacks already ready in this turn
            self._flush_handle = (loop.call_later(self.max_wait_seconds, self._flush) if self.max_wait_seconds
                                  else loop.call_soon(self._flush))
        return await future

    def _flush(self) -> None:
        self._flush_handle = None
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch_size], self._pending[self.max_batch_size:]
            batch = [(item, future) for item, future in batch if not future.done()]  # a caller that gave up is skipped
            if not batch:
                continue
            try:
                results = self.function([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"the batch function returned {len(results)} results for {len(batch)} items")
            except Exception as error:  # every caller of the batch gets the error; the next batch goes on
                for _, future in batch:
                    future.set_exception(error)
                continue
            self.batches += 1
            self.items += len(batch)
            for (_, future), result in zip(batch, results):
                future.set_result(result)

    async def close(self) -> None:
        """Answer what is pending, then stop."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush()
