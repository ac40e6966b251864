"""The Dask client a batch submits its runs to: an embedded LocalCluster, or an existing cluster's scheduler.

Without a scheduler address, ``dask_client`` starts a ``LocalCluster`` of ``workers`` worker processes with one
thread each (one run per process: papermill's working-directory handling is not thread-safe), without a dashboard,
and closes it afterwards. With an address (``tcp://HOST:PORT``) it connects to a cluster someone started
(``dask scheduler`` and ``dask worker``, dask-jobqueue's ``SLURMCluster``, Kubernetes) and leaves it running. The
batch then does exactly the same thing either way.

Resources: a grid may declare what each run needs (``resources: {GPU: 1}``); Dask then runs it only on a worker
offering that much (``dask worker --resources "GPU=1"``) and never more runs at once than the worker offers. The
embedded cluster's workers each offer what one run needs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: How long connecting to a scheduler may take before the batch gives up.
CONNECT_SECONDS = 30
#: How long the embedded cluster waits for a lost worker's replacement to register before giving up on it (Dask's
#: default, 15 s, is shorter than a worker's start on a busy machine: it imports torch with the workbench).
LOST_WORKER_TIMEOUT = "10 minutes"


@contextmanager
def dask_client(scheduler: str | None, workers: int, resources: dict[str, float]) -> Iterator[Any]:
    """A ``distributed.Client``: on a new LocalCluster of ``workers`` single-threaded processes (each offering
    ``resources``), or connected to ``scheduler``; closed (with the LocalCluster) when the block ends.

    Raises:
        ValueError: naming ``--scheduler`` when no scheduler answers there, or ``resources`` when the cluster's
            workers offer none of a resource the runs need.
        ImportError: without Dask distributed (it comes with ``pip install "workbench[batch]"``).
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as error:
        raise ImportError(f'batches run on Dask distributed: pip install "workbench[batch]" ({error})') from None
    with dask.config.set({"distributed.deploy.lost-worker-timeout": LOST_WORKER_TIMEOUT}):
        cluster = None
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                resources=resources or None,
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout=CONNECT_SECONDS)
            except (OSError, TimeoutError, ValueError) as error:
                raise ValueError(
                    f"--scheduler {scheduler}: no Dask scheduler answered ({error}); start one with `dask scheduler` "
                    "and workers with `dask worker ADDRESS`, or leave --scheduler out for a local cluster"
                ) from None
        try:
            if cluster is None:
                check_resources(client, resources, scheduler)
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def check_resources(client: Any, resources: dict[str, float], scheduler: str | None) -> None:
    """Refuse a grid whose runs need a resource no worker of the cluster offers (they would wait forever); a
    cluster without workers yet (an adaptive one) is given the benefit of the doubt.

    Raises:
        ValueError: naming the resource and how to offer it.
    """
    offered = [info.get("resources", {}) for info in client.scheduler_info()["workers"].values()]
    if not offered:
        return
    for name, amount in resources.items():
        if not any(worker.get(name, 0) >= amount for worker in offered):
            raise ValueError(
                f"resources: each run needs {name}={amount:g}, which no worker of the cluster at {scheduler} offers; "
                f'start workers with `dask worker {scheduler} --resources "{name}={amount:g}"`'
            )
