"""A Dask client for `resources.dask_scheduler`: a local cluster started and closed by the
run (`local:N`) or a running scheduler (`tcp://host:8786`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from valuegate.errors import ConfigError

log = logging.getLogger(__name__)

INSTALL = "pip install 'valuegate[distributed]'"


def require_dask() -> None:
    """Raise a one-line ConfigError when the Dask packages are not installed."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"resources.dask_scheduler is set but Dask is not installed ({exc}): {INSTALL}"
        ) from None


def local_workers(scheduler: str) -> int | None:
    """N for `local:N`, None for a scheduler address."""
    return int(scheduler.split(":", 1)[1]) if scheduler.startswith("local:") else None


def worker_count(client: Any) -> int:
    """Workers the client's cluster has now (at least 1)."""
    return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))


@contextmanager
def dask_client(resources: Any) -> Iterator[Any]:
    """A `distributed.Client` for `resources.dask_scheduler` (config.schema
    ResourcesConfig), closed on exit. `local:N` starts N worker processes on this
    machine that share its budget: `resources.threads` (default: this process's cores)
    and `resources.max_memory_gb` split between them (Dask spills, then pauses a worker
    near its share), and closes them on exit."""
    require_dask()
    from distributed import Client, LocalCluster

    from valuegate.resources import resolve_threads

    scheduler = resources.dask_scheduler
    workers = local_workers(scheduler)
    if workers is None:
        try:
            client = Client(scheduler, timeout=30)
        except OSError as exc:
            raise ConfigError(
                f"resources.dask_scheduler: cannot reach {scheduler!r} ({exc}). Start "
                "the scheduler (`dask scheduler`) and its workers (`dask worker "
                f"{scheduler}`), or set resources.dask_scheduler: local:2."
            ) from None
        log.info("dask: connected to %s (%d workers)", scheduler, worker_count(client))
        try:
            yield client
        finally:
            client.close()
        return
    threads = max(1, resolve_threads(resources.threads) // workers)
    memory = resources.max_memory_gb / workers
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads,
        processes=True,
        memory_limit=f"{memory:.3f}GiB",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    log.info(
        "dask: a local cluster of %d worker processes (%d thread(s), %.2f GB each)",
        workers,
        threads,
        memory,
    )
    try:
        yield client
    finally:
        client.close()
        cluster.close()
