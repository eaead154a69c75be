"""One thread that runs a store's blocking writes, so no fsync or commit runs on the loop.

Coroutines hand a write to the thread and await its result; the thread takes
every write queued meanwhile as one batch, so a store can commit them together
(group commit) while each caller still gets its own result or its own error.
`SerialConnection` lets the thread and the loop's synchronous readers share one
sqlite3 connection, one thread at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar

from btkit.domain.errors import StorageError

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

MAX_BATCH = 512
"""Writes committed together at most; bounds one transaction's time and size."""


@dataclass(eq=False)
class Job(Generic[T]):
    """One queued write: a synchronous call whose result goes back to its awaiting caller."""

    call: Callable[[], T]
    future: concurrent.futures.Future[T] = field(default_factory=concurrent.futures.Future)
    outcome: tuple[bool, Any] | None = None
    """(True, result) or (False, exception) once run; sent only when `resolve` is called."""

    def run(self) -> None:
        try:
            self.outcome = (True, self.call())
        except Exception as exc:
            self.outcome = (False, exc)

    def resolve(self) -> None:
        assert self.outcome is not None
        ok, value = self.outcome
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


BatchRunner = Callable[[Sequence[Job[Any]]], None]
"""Runs every job of a batch (`Job.run`) and resolves each only once its work is durable."""


class WriterThread:
    """A store's writer thread, started at the first write and joined by `close`."""

    def __init__(self, name: str, run_batch: BatchRunner) -> None:
        self._name = name
        self._run_batch = run_batch
        self._queue: deque[Job[Any]] = deque()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches = 0
        """Batches run so far (tests read it to see writes committed together)."""

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on the writer thread; returns once the batch is durable.

        A caller cancelled before its write started drops that write; once started,
        the write completes (the caller just no longer waits for it).
        """
        job: Job[T] = Job(lambda: fn(*args, **kwargs))
        with self._changed:
            if self._closed:
                raise StorageError(f"{self._name}: the store is closed; nothing was written.")
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._queue.append(job)
            self._changed.notify()
        return await asyncio.wrap_future(job.future)

    def close(self) -> None:
        """Finish every queued write, then stop and join the thread."""
        with self._changed:
            self._closed = True
            self._changed.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._closed:
                    self._changed.wait()
                if not self._queue:
                    return
                count = min(len(self._queue), MAX_BATCH)
                taken = [self._queue.popleft() for _ in range(count)]
            batch = [job for job in taken if job.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            self.batches += 1
            try:
                self._run_batch(batch)
            except BaseException as exc:  # a bug in the batch runner: never leave a caller hanging
                log.exception("%s: a write batch failed", self._name)
                for job in batch:
                    job.fail(exc)


class Rows:
    """A statement's rows, fetched while the connection was held."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class SerialConnection:
    """A sqlite3 connection used by one thread at a time.

    Each statement runs and is fetched under `lock`; a transaction holds `lock`
    (reentrant) from BEGIN to COMMIT, so another thread's statement never runs
    inside it nor sees its uncommitted rows.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.lock = threading.RLock()

    def execute(self, sql: str, parameters: Sequence[object] = ()) -> Rows:
        with self.lock:
            cursor = self._db.execute(sql, parameters)
            return Rows(cursor.fetchall(), cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self.lock:
            self._db.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def close(self) -> None:
        with self.lock:
            self._db.close()
