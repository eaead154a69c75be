"""Jobs on an existing Dask distributed scheduler (`pip install 'btkit[cluster]'`).

Dask rather than Ray: `distributed` is pure Python on top of the NumPy stack
btkit already has, installs from the package index in seconds, speaks to a
plain `dask scheduler` anyone can start, and has an in-process `LocalCluster`
that tests run against. Data every job needs is scattered to each worker once
(`broadcast=True`) and tasks refer to it, so candles cross the network once per
worker, not once per job.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from btkit.domain.errors import ConfigError

J = TypeVar("J")
R = TypeVar("R")

CONNECT_SECONDS = 10.0
WORKERS_SECONDS = 30.0


def missing_extra() -> ConfigError:
    return ConfigError(
        "--cluster needs Dask's distributed package, which is not installed. Install the "
        "extra with `pip install 'btkit[cluster]'` (or drop --cluster to use this machine)."
    )


def run_on_dask(
    address: str,
    task: Callable[[J, Any, Any], R],
    jobs: Sequence[tuple[J, Hashable]],
    shared: Mapping[Any, object],
    common: object,
    on_done: Callable[[R], None],
    *,
    connect_seconds: float = CONNECT_SECONDS,
) -> None:
    """Call `task(job, shared[tag], common)` for each `(job, tag)` on the cluster.

    `on_done` gets each result as it arrives, in the caller's thread; leaving
    early (an error, Ctrl-C) cancels what has not run.
    """
    try:
        import distributed
    except ImportError:
        raise missing_extra() from None
    dask: Any = distributed  # partly typed: its calls are checked by the tests instead
    try:
        client = dask.Client(address, timeout=f"{connect_seconds}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            f"Cannot reach the Dask scheduler at {address!r}: {exc}. Start one (`dask "
            "scheduler`, then `dask worker ADDRESS` on each machine), check the address "
            "(tcp://HOST:8786), or drop --cluster to use this machine."
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKERS_SECONDS)
        except TimeoutError:
            raise ConfigError(
                f"The Dask scheduler at {address} has no workers (waited "
                f"{WORKERS_SECONDS:.0f} s). Start some with `dask worker {address}`."
            ) from None
        placed = {
            tag: client.scatter(value, broadcast=True, hash=False) for tag, value in shared.items()
        }
        everywhere = client.scatter(common, broadcast=True, hash=False)
        futures = [
            client.submit(task, job, placed[tag], everywhere, pure=False) for job, tag in jobs
        ]
        try:
            for future in dask.as_completed(futures, loop=client.loop):
                on_done(future.result())
                future.release()  # else each worker keeps every result it made till the end
        finally:
            client.cancel(futures)
    finally:
        client.close()
