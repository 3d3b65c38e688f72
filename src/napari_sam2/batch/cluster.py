"""The Dask cluster of a batch: a local cluster sized to the machine, or a running one joined by
its scheduler address. Only this module and :mod:`.runner` import ``distributed``."""

from __future__ import annotations

import os
import signal
from typing import Any

__all__ = ["cpu_cores", "default_size", "gpu_count", "local_client", "remote_client"]

#: memory a CPU worker may need (model, movie frames, activations at 1024 px), bytes
WORKER_MEMORY = 4 * 2**30
_INSTALL_HINT = (
    "batch runs need Dask distributed: pip install 'napari-sam2[batch]' "
    "(or pip install 'dask[distributed]')"
)


def require_distributed() -> None:
    """ImportError with the install command when ``distributed`` is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def gpu_count(device: str) -> int:
    """CUDA GPUs a local cluster uses for ``device`` (0 for ``"cpu"``, ``"mps"``, or without
    CUDA)."""
    if device not in ("auto", "cuda"):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_size(device: str = "auto", threads_per_worker: int = 1) -> tuple[int, int]:
    """(worker processes, torch threads per task) for a local cluster on this machine.

    With GPUs (``device`` ``"cuda"``, or ``"auto"`` when CUDA is available): one worker per
    GPU. On CPU: one worker per core, fewer when the memory holds fewer than one
    :data:`WORKER_MEMORY` per worker. Torch threads split the cores between the tasks that run
    at once (``workers x threads_per_worker``).
    """
    import psutil

    cores = cpu_cores()
    gpus = gpu_count(device)
    if gpus:
        n = gpus
    else:
        n = max(1, min(cores, int(psutil.virtual_memory().total // WORKER_MEMORY)))
    return n, max(1, cores // (n * max(1, threads_per_worker)))


def local_client(
    n_workers: int, threads_per_worker: int, dashboard_address: str = ":8787"
) -> tuple[Any, Any]:
    """(Client, LocalCluster) of ``n_workers`` worker processes on this machine.

    The nanny of each worker restarts it when it dies; its tasks go to the other workers.
    """
    require_distributed()
    from distributed import Client, LocalCluster

    from ._worker_plugin import IgnoreCtrlC

    # a worker process started while SIGINT is ignored ignores it too (inherited through exec)
    old = None
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not in the main thread
        old = None
    try:
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=dashboard_address,
        )
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    try:
        client = Client(cluster)
        client.register_plugin(IgnoreCtrlC())  # also for workers restarted later
    except BaseException:
        cluster.close()
        raise
    return client, cluster


def remote_client(address: str, timeout: float = 60.0) -> Any:
    """A Client of the running cluster whose scheduler is at ``address`` (``tcp://host:8786``),
    once at least one worker has joined.

    Raises:
        OSError: no scheduler answers at ``address`` within ``timeout`` seconds.
        TimeoutError: the scheduler has no worker after ``timeout`` seconds.
    """
    require_distributed()
    from distributed import Client

    try:
        client = Client(address, timeout=timeout)
    except OSError as err:
        raise OSError(
            f"no Dask scheduler answers at {address} ({err}); start one with "
            "'dask scheduler' and workers with 'dask worker ADDRESS', or leave out the address "
            "to run on this machine"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        client.close()
        raise TimeoutError(
            f"the scheduler at {address} has no worker after {timeout:.0f} s; start one with "
            f"'dask worker {address}'"
        ) from None
    return client
