"""Learner rank 0's end of `weightSync: nccl` (docs/weight-sync.md).

    every replica's GetStatus      -> its backend and ranks; whether it is in the current group
    a new group when needed        -> a port, a name, each replica's rank offset (rank 0: here)
    UpdateWeights(validate_only)   -> every replica checks the request before anyone waits on it
    UpdateWeights(broadcast) x N   -> run while rank 0 joins the group (a new one) and broadcasts
                                      each tensor, in the order the requests list them

Any failure raises `BroadcastError`, and the group is dropped: the publisher then loads that
version from disk, and stays on disk for the rest of the run.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from azr_contracts.v1 import generator_pb2
from azr_generation.weight_transfer import free_port, send, trainer_group
from azr_learner.clients import GeneratorClient, ServiceUnavailable

log = logging.getLogger(__name__)

ADDRESS_VARIABLE = "AZR_WEIGHT_SYNC_ADDRESS"  # where engines reach the learner: its pod IP in a cluster


class BroadcastError(RuntimeError):
    pass


@dataclass(frozen=True)
class Group:
    name: str
    backend: str
    port: int
    members: tuple[str, ...]      # replica addresses, in rank order
    offsets: tuple[int, ...]      # each member's first rank
    world_size: int


def plan_group(backend: str, members: Sequence[str], ranks: Sequence[int], port: int) -> Group:
    """Rank 0 is the learner; each replica's workers follow, in the order given."""
    offsets, next_rank = [], 1
    for count in ranks:
        offsets.append(next_rank)
        next_rank += count
    return Group(uuid.uuid4().hex[:12], backend, port, tuple(members), tuple(offsets), next_rank)


class WeightBroadcaster:
    def __init__(self, weights: Callable[[], list[tuple[str, torch.Tensor]]], address: str | None = None):
        self.weights = weights  # rank 0's (name, tensor) pairs of the current policy
        self.address = address or os.environ.get(ADDRESS_VARIABLE, "127.0.0.1")
        self.group: Group | None = None
        self._transport = None  # rank 0's end, once joined

    def send(self, version: int, replicas: Sequence[GeneratorClient]) -> float:
        """Load `version` into every replica by broadcast; the seconds it took."""
        start = time.perf_counter()
        try:
            statuses = [client.status() for client in replicas]
        except ServiceUnavailable as exc:
            raise BroadcastError(str(exc)) from None
        backends = {s.transfer_backend for s in statuses}
        if "" in backends or len(backends) != 1:
            disk_only = [c.address for c, s in zip(replicas, statuses) if not s.transfer_backend]
            raise BroadcastError(f"replicas {disk_only} load from disk only" if disk_only else
                                 f"replicas receive by different backends: {sorted(backends)}")
        members = tuple(c.address for c in replicas)
        group = self.group
        if group is None or group.members != members or any(s.transfer_group != group.name for s in statuses):
            self._leave()
            group = self.group = plan_group(backends.pop(), members, [s.transfer_ranks for s in statuses], free_port(self.address))
            log.info("weight broadcast group %s: %d ranks over %s, rendezvous %s:%d", group.name, group.world_size,
                     group.backend, self.address, group.port)
        weights = self.weights()
        metas = [generator_pb2.TensorMeta(name=name, dtype=str(t.dtype).removeprefix("torch."), shape=list(t.shape))
                 for name, t in weights]
        requests = [generator_pb2.UpdateWeightsRequest(version=version, broadcast=generator_pb2.WeightBroadcast(
            backend=group.backend, group=group.name, master_address=self.address, master_port=group.port,
            world_size=group.world_size, rank_offset=offset, tensors=metas)) for offset in group.offsets]
        try:
            for client, request in zip(replicas, requests):
                client.load(request, validate_only=True)
            with ThreadPoolExecutor(len(replicas), thread_name_prefix="broadcast") as pool:
                calls = [pool.submit(client.load, request) for client, request in zip(replicas, requests)]
                if self._transport is None:
                    self._transport = trainer_group(group.backend, self.address, group.port, group.world_size)
                send(self._transport, group.backend, (t for _, t in weights))
                for call in calls:
                    call.result()
        except Exception as exc:
            self._leave()
            raise BroadcastError(f"version {version}: {exc}") from exc
        return time.perf_counter() - start

    def _leave(self) -> None:
        self.group, self._transport = None, None
