"""azr's gloo weight-transfer engine for vLLM's workers (imported in their processes).

vLLM's NCCL engine needs CUDA. This one is the same engine with gloo for the wire, so the
learner-to-engine broadcast runs, and is tested, on machines without GPUs: it keeps the NCCL
engine's rendezvous fields, its layerwise reload (start and finish) and its update info
(names, dtypes, shapes), and replaces only how the group is joined and how a tensor arrives.
"""

from __future__ import annotations

import contextlib

import torch
from vllm.distributed.weight_transfer.factory import WeightTransferEngineFactory
from vllm.distributed.weight_transfer.nccl_engine import NCCLWeightTransferEngine

from azr_generation.weight_transfer import VLLM_BACKENDS, GlooGroup


class GlooWeightTransferEngine(NCCLWeightTransferEngine):
    def init_transfer_engine(self, init_info) -> None:
        parallel = self.parallel_config
        # This worker's rank among all of its engine's workers, as vLLM's NCCL engine counts it.
        worker = parallel.data_parallel_index * parallel.world_size + parallel.rank
        self.model_update_group = GlooGroup(init_info.master_address, init_info.master_port,
                                            init_info.rank_offset + worker, init_info.world_size)

    def update_weights(self, update_info: dict) -> None:
        # The base class then synchronizes an accelerator, which a CPU does not have; gloo's
        # broadcast has finished when it returns.
        self.receive_weights(self.parse_update_info(update_info))

    def receive_weights(self, update_info) -> None:
        if self.model_update_group is None:
            raise RuntimeError("weights sent before the group was joined (init_weight_transfer_engine)")
        for name, dtype_name, shape in zip(update_info.names, update_info.dtype_names, update_info.shapes):
            # Received in host memory, as a checkpoint's tensors are read: the model's loaders
            # copy them to its device (a GPU too, where gloo stands in for NCCL in tests).
            weight = torch.empty(shape, dtype=getattr(torch, dtype_name))
            self.model_update_group.broadcast(weight)
            self.model.load_weights([(name, weight)])


def register() -> None:
    """Idempotent: the extension module is imported once per worker process, and again in tests."""
    with contextlib.suppress(ValueError):  # registered already
        WeightTransferEngineFactory.register_engine(VLLM_BACKENDS["gloo"], GlooWeightTransferEngine)
