"""Weights by broadcast, learner to engines (`weightSync: nccl`, docs/weight-sync.md): the wire.

The learner is rank 0 of a group of 1 + every engine worker of every replica. It opens the
rendezvous, every replica's workers join it (`init_weight_transfer_engine`), and each policy
version is then one broadcast per tensor, in the order of the UpdateWeights request's
`tensors`, received by vLLM's weight-transfer engine of the replica's backend:

- `nccl` on GPUs: vLLM's own NCCL engine, and on the learner vLLM's `trainer_init` (a
  `StatelessProcessGroup` over a TCP store, then a PyNccl communicator), so both sides speak
  one vLLM version's protocol;
- `gloo` on CPUs: the same flow over `torch.distributed`'s gloo (`GlooGroup`), received by
  azr's engine registered in vLLM's registry (`azr_generation.vllm_weight_transfer`).

This module imports torch only: the learner sends with it without importing vLLM's engine.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import timedelta

import torch
import torch.distributed as dist

NCCL = "nccl"
GLOO = "gloo"
BACKENDS = (NCCL, GLOO)
VLLM_BACKENDS = {NCCL: "nccl", GLOO: "azr_gloo"}  # the name each has in vLLM's engine registry
TRAINER_RANK = 0
# A replica still generating a batch joins when that batch ends; a CPU batch can take minutes.
TIMEOUT = timedelta(seconds=1800)


def backend_for(on_gpu: bool) -> str:
    """NCCL on GPUs, gloo on CPUs. `AZR_WEIGHT_TRANSFER_BACKEND=gloo` takes gloo on a GPU too:
    NCCL cannot put two ranks on one card, so a machine of one GPU tests vLLM's side of the
    transfer (its engine registry, the layerwise reload on CUDA) that way."""
    backend = os.environ.get("AZR_WEIGHT_TRANSFER_BACKEND") or (NCCL if on_gpu else GLOO)
    if backend not in BACKENDS:
        raise ValueError(f"AZR_WEIGHT_TRANSFER_BACKEND={backend!r}: use one of {', '.join(BACKENDS)}")
    return backend


def free_port(address: str) -> int:
    """A port nothing listens on now (vLLM's rendezvous binds the number it is given)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


class GlooGroup:
    """A process group of its own over a TCP store: vLLM's workers already belong to their
    engine's default group, and the learner's ranks to theirs, so this one is built directly
    rather than through `init_process_group`. Rank 0 hosts the store."""

    def __init__(self, address: str, port: int, rank: int, world_size: int, timeout: timedelta = TIMEOUT):
        store = dist.TCPStore(address, port, world_size, is_master=rank == TRAINER_RANK, wait_for_workers=False,
                              timeout=timeout)
        self.rank, self.world_size = rank, world_size
        self.group = dist.ProcessGroupGloo(dist.PrefixStore("azr-weights", store), rank, world_size, timeout)

    def broadcast(self, tensor: torch.Tensor, src: int = TRAINER_RANK) -> None:
        options = dist.BroadcastOptions()
        options.rootRank = src
        self.group.broadcast([tensor], options).wait()


def trainer_group(backend: str, address: str, port: int, world_size: int):
    """Rank 0's end of the group; returns once every engine worker has joined."""
    if backend == GLOO:
        return GlooGroup(address, port, TRAINER_RANK, world_size)
    from vllm.distributed.weight_transfer.nccl_common import trainer_init

    return trainer_init({"master_address": address, "master_port": port, "world_size": world_size})


def send(group, backend: str, tensors: Iterable[torch.Tensor]) -> None:
    """Broadcast each tensor in turn, as the receivers' engines expect them (unpacked: the
    one form vLLM 0.26's and 0.32's NCCL engines both take with the same update info)."""
    if backend == GLOO:
        for tensor in tensors:
            group.broadcast(tensor.detach().contiguous())
        return
    stream = torch.cuda.current_stream()
    for tensor in tensors:
        group.broadcast(tensor.detach().contiguous(), src=TRAINER_RANK, stream=stream)
    stream.synchronize()
