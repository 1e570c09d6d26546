"""Fire-and-forget tasks that are neither lost nor silent.

The event loop keeps only weak references to tasks, so a task nobody holds can vanish
mid-run; and an exception in a task nobody awaits is reported only when it is collected.
`spawn` holds the task until it ends and logs how it failed.
"""

import asyncio
import logging

log = logging.getLogger("glasses.tasks")

_running: set[asyncio.Task] = set()


def spawn(coro, name: str | None = None) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _running.add(task)
    task.add_done_callback(_done)
    return task


def _done(task: asyncio.Task) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        e = task.exception()
        log.error("task %s failed: %s: %s", task.get_name(), type(e).__name__, e,
                  exc_info=(type(e), e, e.__traceback__))
