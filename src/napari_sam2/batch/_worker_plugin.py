"""A Dask worker plugin for the local cluster of a batch (imported only when one starts, since
it needs ``distributed``)."""

from __future__ import annotations

import signal
from typing import Any

from distributed import WorkerPlugin

__all__ = ["IgnoreCtrlC"]


class IgnoreCtrlC(WorkerPlugin):
    """The worker processes of a local cluster ignore SIGINT, so Ctrl-C in the terminal reaches
    only the driver, which stops the batch cleanly (the cluster's workers share the terminal's
    process group). Applied to every worker, also one restarted after a crash."""

    name = "napari-sam2-ignore-ctrl-c"

    def setup(self, worker: Any) -> None:  # noqa: ARG002 - WorkerPlugin signature
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread of the worker process: nothing to do
            pass
