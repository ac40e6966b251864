"""Training and curvature on several processes with torch.distributed (launched by torchrun).

* ``context``: this process's rank and the process group, initialised from torchrun's environment (gloo on the
  CPU, NCCL on CUDA), and the device it trains on.
* ``sharding``: each process's shard of every step's batch and of the probe batch.
* ``passes``: the passes of one training step (micro-batches, m-sharpness, DistributedDataParallel with
  ``perturbation_sync`` "local" or "global"), the counted all-reduces, and a clear error when a peer is lost.
* ``averaging``: averages across processes (``RankAverage``), Hessian-vector products averaged across shards
  (``RankAveragedOperator``; ``HessianOperator(..., process_group=...)`` uses it), and the all-reduce counter.
* ``launch``: ``workbench train --nproc-per-node N``, which runs torch's own launcher (torch.distributed.run).

The Trainer uses them by itself when started under torchrun; see the README's "Scaling out".
"""

from workbench.distributed.context import (
    DistributedContext,
    distributed_context,
    main_first,
    release_process_group,
    training_device,
)

__all__ = ["DistributedContext", "distributed_context", "main_first", "release_process_group", "training_device"]
