"""Concurrent requests gathered into one call: the pattern of Ray Serve's `@serve.batch`.

    batcher = MicroBatcher(lambda requests: [score(r) for r in requests], max_batch_size=64)
    answer = await batcher(request)        # from many coroutines at once

Requests that arrive while a batch is being computed wait for the next one, so under load the
batches grow by themselves and the cost of a forward pass is shared; a lone request waits at most
`max_wait_seconds` for company. The batch function runs in a worker thread, one batch at a time,
so the event loop keeps accepting requests while it computes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    def __init__(self, function: Callable[[list[Item]], list[Result]], *, max_batch_size: int = 64,
                 max_wait_seconds: float = 0.001):
        if max_batch_size < 1 or max_wait_seconds < 0:
            raise ValueError(f"max_batch_size must be ≥ 1 and max_wait_seconds ≥ 0, got {max_batch_size}, {max_wait_seconds}")
        self.function = function
        self.max_batch_size = max_batch_size
        self.max_wait_seconds = max_wait_seconds
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nextbest-batch")
        self.batches = 0  # for metrics: calls of `function`
        self.items = 0

    async def __call__(self, item: Item) -> Result:
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait_seconds
            while len(batch) < self.max_batch_size:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            items = [item for item, _ in batch]
            try:
                results = await loop.run_in_executor(self._executor, self.function, items)
                if len(results) != len(items):
                    raise RuntimeError(f"the batch function returned {len(results)} results for {len(items)} items")
            except Exception as error:  # every caller of the batch gets the error, the worker goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.batches += 1
            self.items += len(items)
            for (_, future), result in zip(batch, results):
                if not future.done():  # a caller that gave up (cancelled) is skipped
                    future.set_result(result)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)
